"""``scopeseg evaluate`` and ``scopeseg tune-threshold``: thin shells over ``scopeseg.evaluate``."""

from __future__ import annotations

import json
import math
from pathlib import Path

from . import arg, command


def _fmt(v) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if math.isinf(v) else f"{v:.4f}")
    return str(v)


@arg("gt", help="ground truth: COCO JSON / data-set folder, mask folder, or MedSAM npz folder (gts)")
@arg("pred", help="predictions: COCO results JSON, mask folder, npz folder (segs), or TAPIS frame JSON")
@arg(
    "--protocol",
    default="binary",
    help="binary, medsam-laptop, endovis, semantic, coco, tapis-map50, video; trailing key=value items set its "
    "parameters (binary: tolerance percentile convention empty spacing score_thr; medsam-laptop: variant "
    "tolerance; endovis: num_classes; semantic: num_classes ignore_index; coco: iou_type; video: "
    "skip_first_last bound_th)",
)
@arg("--out", metavar="DIR", default=None, help="write metrics.json, per_item.csv and report.html here")
@command(
    "evaluate", help="score predictions against ground truth under a named metric protocol", overrides=True
)
def _evaluate(args) -> int:
    from ..evaluate import evaluate, save_results

    overrides = dict(o.split("=", 1) for o in args.overrides)
    result = evaluate(args.gt, args.pred, args.protocol, **overrides)
    print(f"protocol {result.protocol}: {len(result.items)} items")
    for k, v in result.metrics.items():
        if isinstance(v, dict):
            print(f"  {k}: " + ", ".join(f"{n}={_fmt(x)}" for n, x in v.items()))
        else:
            print(f"  {k}: {_fmt(v)}")
    if args.out:
        paths = save_results(result, args.out, args.gt, args.pred)
        print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0


@arg(
    "probs",
    help="folder of .npy/.npz float probability maps named like the GT masks, or a saved model folder",
)
@arg("gt", help="mask folder (or COCO data set) with the matching ground truth")
@arg("--thresholds", default=None, help="comma-separated thresholds (default 0.10,0.15,...,0.90)")
@arg("--kernels", default="0,3,5", help="comma-separated opening kernel sizes (0 = none)")
@arg("--metric", default="dice", choices=["dice", "iou"], help="per-image score to maximise (mean)")
@arg("--out", metavar="FILE", default=None, help="write the full grid as JSON")
@command(
    "tune-threshold", help="grid-search probability threshold and opening kernel on saved probability maps"
)
def _tune(args) -> int:
    from ..errors import ConfigError
    from ..evaluate import tune_threshold_folders
    from ..io import write_json

    try:
        thresholds = None if args.thresholds is None else [float(t) for t in args.thresholds.split(",") if t]
        kernels = [int(k) for k in args.kernels.split(",") if k]
    except ValueError:
        raise ConfigError("--thresholds / --kernels must be comma-separated numbers") from None
    r = tune_threshold_folders(args.probs, args.gt, thresholds, kernels, args.metric)
    b = r["best"]
    print(
        f"best {r['metric']} {b['score']:.4f} at threshold {b['threshold']:g}, opening kernel {b['kernel']} "
        f"({r['num_items']} items, {len(r['grid'])} settings)"
    )
    if args.out:
        write_json(Path(args.out), r, indent=2)
        print(f"wrote {args.out}")
    else:
        print(json.dumps(b))
    return 0
