"""``scopeseg benchmark MODEL key=value...``: model-only and end-to-end latency per engine on this host."""

from __future__ import annotations

from . import arg, build_config_of, command, config_keys


@arg("model", help="checkpoint folder (model.safetensors + config.json) or a dense export folder")
@arg("--json", action="store_true", help="print the whole result as JSON instead of the table")
@command(
    "benchmark",
    help="time a semantic model per engine and precision on this CPU: model-only and end to end (read -> "
    "preprocess -> model -> postprocess -> write), one process per engine, interleaved rounds",
    keys=config_keys("scopeseg.inference.benchmark", "BenchmarkConfig"),
)
def _benchmark(args) -> int:
    import json

    from ..inference.benchmark import BenchmarkConfig, format_table, run_benchmark

    cfg = build_config_of(BenchmarkConfig, args.overrides, "benchmark")
    result = run_benchmark(args.model, cfg)
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0
