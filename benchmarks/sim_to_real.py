"""Sim-to-real: a model trained only on synthetic scope videos, scored on real laparoscopic frames.

Binary instrument Dice of a checkpoint (default ``runs/demo/train/best``, the one ``make demo`` trains) on
the real surgical frames of ``/work/shared/data``: ``cholecseg8k_clip`` (12 consecutive frames, grasper
~1-2 % of the frame), ``cholecinstanceseg_vid03_unclear`` (3 frames, one with no tool) and
``endoscapes2023_vid04_unclear`` (2 frames), each from its binary tool masks (``masks/``, converted with the
``mask-folder`` converter), predicted and scored at the frames' own size (854x480). No threshold goal: an
honest number. When the checkpoint is missing, a quick synthetic-only model is trained first (``--minutes``).
Results: ``benchmarks/results/sim_to_real.{json,md}``.
Run: ``.venv/bin/python benchmarks/sim_to_real.py [CHECKPOINT]``. Skips (exit 0) without the shared data.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_polyp_pretrained import (  # noqa: E402
    DATA,
    RESULTS,
    convert_sources,
    evaluate_checkpoint,
    machine,
    missing_sources,
)

SOURCES = ("cholecseg8k_clip", "cholecinstanceseg_vid03_unclear", "endoscapes2023_vid04_unclear")
DEFAULT_CHECKPOINT = Path("runs/demo/train/best")


def train_synthetic(work: Path, minutes: float, seed: int = 0) -> Path:
    """A quick synthetic-only binary instrument model (the demo's recipe, smaller), returns its checkpoint."""
    from scopeseg.config import build_config
    from scopeseg.data.synthetic import SynthConfig, generate
    from scopeseg.train import train

    data = work / "synthetic"
    if not (data / "annotations.json").is_file():
        generate(data, SynthConfig(videos=4, frames=20, size=(480, 736), seed=seed))
    cfg = build_config(
        preset="unet-lite0",
        overrides=[
            f"data={data}",
            f"out={work / 'train'}",
            "overwrite=true",  # a rerun of the benchmark retrains
            f"max_minutes={minutes}",
            "epochs=100",
            "mode=binary",
            "categories=[supercategory:instrument]",
            f"seed={seed}",
            "report=false",
        ],
        task="semantic",
    )
    return Path(train(cfg)["best"])


def pixel_fractions(counts: dict[str, int]) -> dict[str, float]:
    """Share of pixels that are tool in the ground truth and in the prediction (summed pixel counts)."""
    total = max(int(counts["pixels"]), 1)
    return {
        "gt_fraction": (counts["tp"] + counts["fn"]) / total,
        "pred_fraction": (counts["tp"] + counts["fp"]) / total,
    }


def checkpoint_info(ckpt: Path) -> dict[str, Any]:
    """What the checkpoint is: its config, training data digest, and the demo's held-out number if known."""
    cfg = json.loads((ckpt / "config.json").read_text())
    info: dict[str, Any] = {
        "path": str(ckpt),
        "model": cfg.get("name"),
        "classes": cfg.get("classes"),
        "input_size": cfg.get("input_size"),
        "encoder_weights": cfg.get("encoder_weights"),
    }
    manifest = ckpt / "manifest.json"
    if manifest.is_file():
        m = json.loads(manifest.read_text())
        info["data_digest"] = m.get("data_digest")
        info["git_commit"] = m.get("git_commit")
    demo = ckpt.parent.parent / "demo.json"
    if demo.is_file():
        held = json.loads(demo.read_text()).get("held_out") or {}
        info["synthetic_held_out_dice"] = held.get("dice_mean_per_image")
    return info


def markdown(out: dict[str, Any]) -> str:
    c = out["checkpoint"]
    lines = [
        "# Sim-to-real: synthetic-trained model on real laparoscopic frames",
        "",
        f"Checkpoint `{c['path']}`: {c['model']} ({c.get('encoder_weights') or 'random'} encoder), "
        f"trained on synthetic videos only at {c.get('input_size')}; predicted and scored at the frames' own size.",
    ]
    if c.get("synthetic_held_out_dice") is not None:
        lines.append(f"Its Dice on held-out synthetic videos (demo): {c['synthetic_held_out_dice']:.3f}.")
    lines += [
        "",
        "| source | frames | Dice (mean per frame) | Dice (pooled pixels) | IoU (mean per frame) "
        "| tool pixels GT % | predicted % |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in [*out["sources"].items(), ("all", out["all"])]:
        s = r.get("summary", r)
        lines.append(
            f"| {name} | {s['images']} | {s['dice_mean_per_image']:.3f} | {s['dice_pooled_foreground']:.3f} "
            f"| {s['iou_mean_per_image']:.3f} | {100 * r['gt_fraction']:.1f} | {100 * r['pred_fraction']:.1f} |"
        )
    lines += [
        "",
        "Per-frame Dice: a frame with empty ground truth and an empty prediction scores 1 (else 0). "
        "Pooled Dice sums pixel counts over the frames of a source first.",
        "No threshold goal; these frames are a different domain (real tissue, smoke, real tools).",
        "",
        f"Command: `{out['command']}`",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", nargs="?", type=Path, default=DEFAULT_CHECKPOINT)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--work", type=Path, default=Path("runs/bench_sim_to_real"))
    ap.add_argument("--minutes", type=float, default=4.0, help="training time when no checkpoint exists")
    ap.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: fastest on oversubscribed shared cores)"
    )
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    missing = missing_sources(args.data, SOURCES)
    if missing:
        print(f"skipped: shared data not found under {args.data} (missing {', '.join(missing)})")
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from scopeseg import progress
    from scopeseg.io import write_json, write_text
    from scopeseg.metrics.overlap import dice_from_counts

    progress.set_enabled(False)
    torch.set_num_threads(args.threads)
    ckpt = args.checkpoint
    trained_here = False
    if not (ckpt / "config.json").is_file():
        print(f"no checkpoint at {ckpt}: training a synthetic-only model for {args.minutes:g} min first")
        ckpt = train_synthetic(args.work, args.minutes)
        trained_here = True
    srcs = convert_sources(args.data, SOURCES, args.work / "data")
    sources = {name: evaluate_checkpoint(ckpt, path) for name, path in srcs.items()}
    rows = [r for s in sources.values() for r in s["per_image"]]
    counts = {k: sum(s["counts"][k] for s in sources.values()) for k in ("pixels", "tp", "fp", "fn")}
    n = len(rows)
    for r in [*sources.values()]:
        r.update(pixel_fractions(r["counts"]))
    out = {
        "benchmark": "sim_to_real",
        "checkpoint": {**checkpoint_info(ckpt), "trained_by_this_script": trained_here},
        "sources": sources,
        "all": {
            "images": n,
            "dice_mean_per_image": sum(r["dice"] for r in rows) / n,
            "iou_mean_per_image": sum(r["iou"] for r in rows) / n,
            "dice_pooled_foreground": float(dice_from_counts(counts["tp"], counts["fp"], counts["fn"])),
            **pixel_fractions(counts),
        },
        "machine": machine(),
        "command": "python benchmarks/sim_to_real.py " + " ".join(sys.argv[1:]),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "sim_to_real.json", out, indent=2)
    write_text(args.out / "sim_to_real.md", markdown(out))
    print(markdown(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
