"""``scopeseg evaluate`` and ``scopeseg tune-threshold``: thin shells over ``scopeseg.evaluate``."""

from __future__ import annotations

import json
import math

from . import arg, build_config_of, command, config_keys


def _fmt(v) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if math.isinf(v) else f"{v:.4f}")
    return str(v)


def _protocol_keys() -> str:
    from ..evaluate import describe_protocols

    lines = [
        "keys: protocol=NAME (default binary), then that protocol's parameters (key=default);",
        "  runner=local|ray address=auto|HOST:PORT workers=N threads=N: score videos on Ray workers",
        "  (binary, semantic and video protocols; the same numbers as runner=local)",
    ]
    for p in describe_protocols():
        params = " ".join(f"{k}={v!r}" for k, v in p["params"].items()) or "-"
        lines.append(f"  {p['name']:<14} {params}")
    return "\n".join(lines)


@arg(
    "gt",
    help="ground truth: COCO JSON / data-set folder, mask folder, or MedSAM npz folder (gts)",
)
@arg(
    "pred",
    help="predictions: a predicted data set folder (predict/segment OUT/predicted), COCO results JSON, mask "
    "folder, npz folder (segs), or TAPIS frame JSON",
)
@arg("out", nargs="?", default=None, help="optional folder for metrics.json, per_item.csv and report.html")
@arg("--overwrite", action="store_true", help="replace an existing OUT")
@command(
    "evaluate",
    help="score predictions against ground truth under a named metric protocol (protocol=NAME key=value...)",
    keys=_protocol_keys,
    data=True,
    data_files=False,  # scores annotations: ground truth without its images is fine
)
def _evaluate(args) -> int:
    from ..archive.runner import RunnerConfig
    from ..config import parse_overrides
    from ..evaluate import evaluate, save_results
    from ..io import check_output

    if args.out:
        check_output(args.out, args.overwrite)  # before the scoring: a refused command costs nothing
    params = parse_overrides(args.overrides)
    protocol = str(params.pop("protocol", "binary"))
    keys = RunnerConfig.model_fields
    spread = build_config_of(RunnerConfig, {k: params.pop(k) for k in list(params) if k in keys}, "evaluate")
    result = evaluate(args.gt, args.pred, protocol, **spread.model_dump(), **params)
    print(f"protocol {result.protocol}: {len(result.items)} items")
    for k, v in result.metrics.items():
        if isinstance(v, dict):
            print(f"  {k}: " + ", ".join(f"{n}={_fmt(x)}" for n, x in v.items()))
        else:
            print(f"  {k}: {_fmt(v)}")
    if args.out:
        paths = save_results(result, args.out, args.gt, args.pred, args.overwrite)
        print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0


@arg(
    "probs",
    help="folder of .npy/.npz float probability maps named like the GT masks, or a saved model folder",
)
@arg("gt", help="mask folder (or COCO data set) with the matching ground truth")
@arg("out", nargs="?", default=None, help="optional JSON file for the full grid")
@arg("--overwrite", action="store_true", help="replace an existing OUT")
@command(
    "tune-threshold",
    help="grid-search probability threshold and opening kernel on saved probability maps",
    keys=config_keys("scopeseg.evaluate", "TuneConfig"),
)
def _tune(args) -> int:
    from ..evaluate import TuneConfig, tune_threshold_folders
    from ..io import check_output, write_json

    if args.out:
        check_output(args.out, args.overwrite)
    cfg = build_config_of(TuneConfig, args.overrides, "tune-threshold")
    r = tune_threshold_folders(args.probs, args.gt, cfg.thresholds, cfg.kernels, cfg.metric)
    b = r["best"]
    print(
        f"best {r['metric']} {b['score']:.4f} at threshold {b['threshold']:g}, opening kernel {b['kernel']} "
        f"({r['num_items']} items, {len(r['grid'])} settings)"
    )
    if args.out:
        write_json(args.out, r, indent=2)
        print(f"wrote {args.out}")
    else:
        print(json.dumps(b))
    return 0
