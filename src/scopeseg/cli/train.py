"""``scopeseg train`` and ``scopeseg presets``: config-driven training."""

from __future__ import annotations

import json
from pathlib import Path

from . import arg, command


@command(
    "train",
    help="train a model from a preset and key=value overrides (preset=unet-lite0 data=DIR epochs=3)",
    overrides=True,
    data=True,
)
def _train(args) -> int:
    from ..config import build_config
    from ..train import train

    cfg = build_config(overrides=args.overrides, task="semantic")  # task of the preset, else semantic
    result = train(cfg)
    if "best" in result:
        print(f"best checkpoint: {result['best']}")
        if result.get("metrics"):
            print(
                "validation: "
                + json.dumps({k: v for k, v in result["metrics"].items() if k != "conventions"})
            )
            if (Path(result["run_dir"]) / "report.html").is_file():  # instance runs write no report
                print(f"report: {result['run_dir']}/report.html")
    return 0


@arg("--task", help="only presets of this task")
@command("presets", help="list the YAML presets (shipped with scopeseg or registered by a plugin)")
def _presets(args) -> int:
    from ..config import list_presets

    for name, meta in list_presets().items():
        if args.task and meta["task"] != args.task:
            continue
        print(f"{name:28s} {meta['task']:12s} {meta['description']}")
    return 0
