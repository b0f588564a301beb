"""Ablation of the instance family: plain Mask2Former, +text (LEMIS), each SiMaskFormer switch, and all.

Every variant trains the same tiny preset (``mask2former-tiny``, its ``mask_pool`` off unless named) on the
same synthetic training videos for the same wall-clock budget (``--minutes``), then its best checkpoint is scored on held-out videos (other generator
seeds): COCO segm AP, AP50, AP75 (faster-coco-eval) and TAPIS mAP@0.5 (VOC-style, per-class score
distributions). Budgets and steps done are recorded: variants that cost more per step get fewer steps.
Results: ``benchmarks/results/instance_ablation.{json,md}`` with the CPU model and flags.
Run: ``.venv/bin/python benchmarks/instance_ablation.py --train DATA --heldout DATA [--minutes 2.5]``
(make the data with ``scopeseg synth TRAIN videos=1200 frames=1 size=240x368 seed=11 polyp_prob=0`` and
``scopeseg synth HELDOUT videos=16 frames=4 size=240x368 seed=2 polyp_prob=0``: many short videos generalise).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"

VARIANTS: dict[str, dict[str, Any]] = {  # most informative first: a cut budget drops the last ones
    "plain": {},
    "+text": {"model": "lemis-lite0", "text": "cross_attention"},
    "all": {
        "model": "lemis-lite0",
        "text": "cross_attention",
        "quality_head": True,
        "shared_matching": True,
        "refine": True,
        "box_head": True,
        "mask_pool": True,
    },
    "+quality": {"quality_head": True},
    "+shared_matching": {"shared_matching": True},
    "+refine": {"refine": True},
    "+box": {"box_head": True},
    "+mask_pool": {"mask_pool": True},
}


def cpu_info() -> dict[str, Any]:
    model, flags = "?", []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model == "?":
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                have = set(line.split(":", 1)[1].split())
                flags = [
                    f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile") if f in have
                ]
    except OSError:
        pass
    return {"cpu": model, "flags": flags, "cores": os.cpu_count()}


def run_conditions() -> dict[str, Any]:
    """What the machine was doing at the end of a measurement: 1/5/15-min load and torch threads."""
    import torch

    return {"load_average": [round(v, 2) for v in os.getloadavg()], "torch_threads": torch.get_num_threads()}


def run_variant(name: str, extra: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    from scopeseg.config import build_config
    from scopeseg.data.coco import load_dataset
    from scopeseg.inference.instance import InstancePredictor, evaluate_instances
    from scopeseg.train.loop import load_result, train

    out = Path(args.runs) / name.replace("+", "plus_")
    overrides = [
        "preset=mask2former-tiny",
        f"data={args.train}",
        f"out={out}",
        f"max_minutes={args.minutes}",
        f"epochs={args.epochs}",
        "overwrite=true",
        f"seed={args.seed}",
        "mask_pool=false",  # the preset's one addition to Mask2Former: off unless the variant sets it
    ] + [f"{k}={v}" for k, v in extra.items()]
    cfg = build_config(None, overrides=overrides)
    t0 = time.time()
    train(cfg)
    seconds = time.time() - t0
    result = load_result(out)
    predictor = InstancePredictor.from_pretrained(Path(out) / "best", batch_size=4, min_score=0.0)
    scores = evaluate_instances(predictor, load_dataset(args.heldout))
    return {
        "variant": name,
        "settings": extra,
        "train_seconds": round(seconds, 1),
        "epochs_run": result.get("epochs_run"),
        "val_ap50": (result.get("metrics") or {}).get("val_ap50"),
        **{k: round(v, 4) if isinstance(v, float) else v for k, v in scores.items()},
    }


def table(rows: list[dict[str, Any]]) -> str:
    head = "| variant | segm AP | AP50 | AP75 | TAPIS mAP@0.5 | bbox AP50 | epochs | train s |\n|---|---|---|---|---|---|---|---|\n"
    body = "".join(
        f"| {r['variant']} | {r['segm_AP']:.3f} | {r['segm_AP50']:.3f} | {r['segm_AP75']:.3f} | "
        f"{r['tapis_map50']:.3f} | {r['bbox_AP50']:.3f} | {r['epochs_run']} | {r['train_seconds']:.0f} |\n"
        for r in rows
    )
    return head + body


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", required=True, help="training data set (synthetic videos)")
    ap.add_argument("--heldout", required=True, help="held-out data set (other generator seed)")
    ap.add_argument("--minutes", type=float, default=2.5, help="training budget per variant (wall clock)")
    ap.add_argument(
        "--epochs", type=int, default=100, help="upper bound on epochs (the budget usually stops first)"
    )
    ap.add_argument(
        "--variants", default=",".join(VARIANTS), help="comma-separated subset of " + ",".join(VARIANTS)
    )
    ap.add_argument("--runs", default="runs/instance_ablation", help="where the variants' runs go")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--budget", type=float, default=19.0, help="stop before a variant that would end past this (min)"
    )
    ap.add_argument("--out", default=str(RESULTS / "instance_ablation"), help="results path without suffix")
    args = ap.parse_args()
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"error: unknown variants {unknown} (known: {', '.join(VARIANTS)})")
    rows: list[dict[str, Any]] = []
    t0, skipped = time.time(), []
    for k, name in enumerate(names):
        spent = (time.time() - t0) / 60
        per = spent / k if k else args.minutes * 1.3
        if args.budget and spent + per > args.budget:  # the next variant would not fit: say so, keep the rest
            skipped = names[k:]
            break
        rows.append(run_variant(name, VARIANTS[name], args))
        print(json.dumps(rows[-1]), flush=True)
        write_results(rows, args, names[k + 1 :])  # after every variant: a killed run keeps what it measured
    md = write_results(rows, args, skipped)
    print(md)


def write_results(rows: list[dict[str, Any]], args: argparse.Namespace, missing: list[str]) -> str:
    info = {
        **cpu_info(),
        "minutes_per_variant": args.minutes,
        **run_conditions(),
        "train": args.train,
        "heldout": args.heldout,
        "not_run": missing,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"info": info, "rows": rows}, indent=2))
    md = (
        f"Instance ablation: {args.minutes} min of training per variant (mask2former-tiny), held-out synthetic "
        f"videos; CPU {info['cpu']} ({', '.join(info['flags'])}), {info['cores']} cores, {info['torch_threads']} torch "
        f"threads, load average {info['load_average']}.\n\n" + table(rows)
    )
    if missing:
        md += f"\nNot run (time budget): {', '.join(missing)}\n"
    out.with_suffix(".md").write_text(md)
    return md


if __name__ == "__main__":
    main()
