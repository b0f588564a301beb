"""Real polyp data: ImageNet-pretrained encoders vs the same UNet from random init, same budget, 3 seeds.

Train on the polyp pairs of ``/work/shared/data`` (``kvasir_seg``, ``kvasir_seg_256``,
``endotect2020_polyp_unclear``), test on ``cvc_clinicdb_unclear`` (another hospital and camera, so no
near-duplicate frames leak). Each source folder is converted with the ``mask-folder`` converter to the
canonical data set, the three training sets are merged; every run uses ``scopeseg.train.train`` with the
same epochs, batch size, resolution, lr schedule and augmentation, pretrained=true vs pretrained=false.
Validation runs only at the last epoch (on 3 training images), so the saved model is the last one: no model
selection on the test set. Test Dice = mean over test images of the foreground Dice at the images' own size
(``evaluate_checkpoint``: the binary protocol). Finished runs are cached in the work folder, so an interrupted run resumes.
Results: ``benchmarks/results/real_polyp_pretrained.{json,md}``.
Run: ``.venv/bin/python benchmarks/real_polyp_pretrained.py [--models unet-lite0,unet-mbv2] [--epochs 10]``.
Skips (exit 0) when the shared data is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
DATA = Path(os.environ.get("SCOPESEG_SHARED_DATA", "/work/shared/data"))
TRAIN_SOURCES = ("kvasir_seg", "kvasir_seg_256", "endotect2020_polyp_unclear")
TEST_SOURCE = "cvc_clinicdb_unclear"
GOAL_GAP = 0.05


def missing_sources(data: Path, names: tuple[str, ...]) -> list[str]:
    """The source folders (with images/ and masks/) absent under ``data``."""
    return [n for n in names if not ((data / n / "images").is_dir() and (data / n / "masks").is_dir())]


def convert_sources(data: Path, names: tuple[str, ...], dst: Path) -> dict[str, Path]:
    """Convert each ``images/`` + ``masks/`` source folder to a canonical data set under ``dst`` (cached)."""
    from scopeseg.data.formats import convert

    out = {}
    for n in names:
        target = dst / n
        if not (target / "annotations.json").is_file():
            convert(data / n, target, from_format="mask-folder", overwrite=True)
        out[n] = target
    return out


def merged_dataset(parts: list[Path], out_json: Path) -> Path:
    """Merge canonical data sets that live under ``out_json``'s folder into one JSON (images not copied)."""
    from scopeseg.data.coco import CocoDataset, load_dataset

    if not out_json.is_file():
        merged = CocoDataset.merge([load_dataset(p) for p in parts], root=out_json.parent)
        merged.save(out_json)
    return out_json


def evaluate_checkpoint(checkpoint: str | Path, data: str | Path, batch_size: int = 4) -> dict[str, Any]:
    """Binary foreground Dice of a checkpoint on a canonical data set, at the images' own size.

    Scored by the binary protocol (``metrics.protocols``) with empty rule ``one`` (a frame with empty ground
    truth and an empty prediction scores 1); pooled Dice from the pixel counts summed over the frames.
    """

    from scopeseg.data.coco import load_dataset
    from scopeseg.data.datasets import build_class_map
    from scopeseg.inference.semantic import Predictor
    from scopeseg.metrics.overlap import confusion, dice_from_counts
    from scopeseg.metrics.protocols import score_pairs
    from scopeseg.train.semantic import predict_pairs

    predictor = Predictor.from_pretrained(checkpoint, batch_size=batch_size)
    ds = load_dataset(data)
    class_map, _ = build_class_map(ds, "binary", None)
    pairs = predict_pairs(predictor, ds, sorted(ds.images), class_map)
    result = score_pairs("binary", pairs, empty="one", surface=False)
    tp, fp, fn = (int(sum(c)) for c in zip(*(confusion(p.pred, p.gt) for p in pairs)))
    pixels = int(sum(p.gt.size for p in pairs))
    return {
        "summary": {
            "images": len(result.items),
            "dice_mean_per_image": result.metrics["mean_dice"],
            "iou_mean_per_image": result.metrics["mean_iou"],
            "dice_pooled_foreground": float(dice_from_counts(tp, fp, fn)),
        },
        "counts": {"pixels": pixels, "tp": tp, "fp": fp, "fn": fn},
        "per_image": [
            {"file_name": ds.images[p.extra["image_id"]]["file_name"], "dice": r["dice"], "iou": r["iou"]}
            for p, r in zip(pairs, result.items)
        ],
    }


def machine() -> dict[str, Any]:
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "loadavg_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }


def mean_std(xs: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value)."""
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def run_one(args, model: str, pretrained: bool, seed: int, train_json: Path, val_dir: Path, test_dir: Path):
    """Train one (model, init, seed) and score it on the test set; cached as ``bench.json`` in its run."""
    from scopeseg.io import write_json
    from scopeseg.train import train
    from scopeseg.train.semantic import SemanticTrainConfig

    run_dir = args.work / "runs" / f"{model}-{'imagenet' if pretrained else 'random'}-s{seed}"
    cached = run_dir / "bench.json"
    budget = budget_of(args)
    if cached.is_file():
        rec = json.loads(cached.read_text())
        if rec.get("budget") == budget:
            return rec
    # a fresh run: Lightning would version new checkpoints (best-v1.ckpt) next to stale ones
    shutil.rmtree(run_dir, ignore_errors=True)
    cfg = SemanticTrainConfig(
        model=model,
        pretrained=pretrained,
        data=str(train_json),
        val_data=str(val_dir),
        out=str(run_dir),
        seed=seed,
        val_every=args.epochs,
        report=False,
        accelerator="cpu",
        **budget,
    )
    t0 = time.time()
    res = train(cfg)
    ev = evaluate_checkpoint(res["best"], test_dir)
    rec = {
        "model": model,
        "pretrained": pretrained,
        "seed": seed,
        "budget": budget,
        "train_seconds": round(res["train_seconds"], 1),
        "wall_seconds": round(time.time() - t0, 1),
        "loadavg_1": round(os.getloadavg()[0], 2),
        "test_dice": ev["summary"]["dice_mean_per_image"],
        "test_iou": ev["summary"]["iou_mean_per_image"],
        "test_dice_pooled": ev["summary"]["dice_pooled_foreground"],
        "per_image": ev["per_image"],
    }
    write_json(cached, rec, indent=2)
    return rec


def budget_of(args) -> dict[str, Any]:
    return {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "schedule": "cosine",
        "warmup_steps": args.warmup_steps,
        "weight_decay": 1e-4,
        "train_size": list(args.size),
        "augment": "default",
        "loss": "dice:1,bce:1",
        "mode": "binary",
    }


def summarise(records: list[dict], models: list[str]) -> dict[str, Any]:
    """Per model: mean ± std test Dice for each init, the gap and the per-seed paired differences."""
    rows = {}
    for m in models:
        pre = {r["seed"]: r["test_dice"] for r in records if r["model"] == m and r["pretrained"]}
        rnd = {r["seed"]: r["test_dice"] for r in records if r["model"] == m and not r["pretrained"]}
        if not pre or not rnd:
            continue
        (pm, ps), (rm, rs) = mean_std(list(pre.values())), mean_std(list(rnd.values()))
        paired = [pre[s] - rnd[s] for s in sorted(set(pre) & set(rnd))]
        rows[m] = {
            "imagenet_dice_mean": pm,
            "imagenet_dice_std": ps,
            "random_dice_mean": rm,
            "random_dice_std": rs,
            "gap": pm - rm,
            "paired_gaps": paired,
            "seeds": sorted(set(pre) & set(rnd)),
        }
    best = max(rows, key=lambda m: rows[m]["imagenet_dice_mean"]) if rows else None
    return {
        "per_model": rows,
        "best_pretrained": best,
        "best_gap": rows[best]["gap"] if best else None,
        "goal": f"best pretrained encoder beats random init by >= {GOAL_GAP} mean test Dice",
        "goal_met": bool(best and rows[best]["gap"] >= GOAL_GAP),
    }


def markdown(out: dict[str, Any]) -> str:
    b = out["budget"]
    s = out["summary"]
    loads = [r["loadavg_1"] for r in out["runs"]] or [float("nan")]
    lines = [
        "# Real polyps: ImageNet-pretrained encoder vs random init",
        "",
        f"Train: {', '.join(out['train_sources'])} ({out['train_images']} images); "
        f"test: {out['test_source']} ({out['test_images']} images, another source), Dice at the images' own size.",
        f"Budget per run (identical for both inits): {b['epochs']} epochs x {out['steps_per_epoch']} steps, "
        f"batch {b['batch_size']}, {b['train_size'][0]}x{b['train_size'][1]}, AdamW lr {b['lr']} cosine, "
        f"loss {b['loss']}, augment {b['augment']}; seeds {out['seeds']}. Last-epoch model (no selection on test).",
        f"Machine: {out['machine']['cpu_count']} CPU cores shared with other jobs, "
        f"{out['machine']['torch_threads']} torch thread(s); 1-min load average at the end of each run "
        f"{min(loads):.1f}-{max(loads):.1f}, so train seconds are noisy.",
        "",
        "| model | ImageNet init Dice | random init Dice | gap | per-seed gaps |",
        "|---|---|---|---|---|",
    ]
    for m, r in s["per_model"].items():
        gaps = ", ".join(f"{g:+.3f}" for g in r["paired_gaps"])
        lines.append(
            f"| {m} | {r['imagenet_dice_mean']:.3f} ± {r['imagenet_dice_std']:.3f} | "
            f"{r['random_dice_mean']:.3f} ± {r['random_dice_std']:.3f} | {r['gap']:+.3f} | {gaps} |"
        )
    lines += [
        "",
        "mean ± sample std (ddof=1) over seeds of the per-image mean test Dice.",
        f"Goal ({s['goal']}): **{'met' if s['goal_met'] else 'NOT met'}** "
        f"(best pretrained: {s['best_pretrained']}, gap {s['best_gap']:+.3f}).",
        "",
        "| run | test Dice | pooled Dice | train s |",
        "|---|---|---|---|",
    ]
    for r in out["runs"]:
        init = "imagenet" if r["pretrained"] else "random"
        lines.append(
            f"| {r['model']} {init} s{r['seed']} | {r['test_dice']:.3f} | {r['test_dice_pooled']:.3f} "
            f"| {r['train_seconds']:.0f} |"
        )
    lines += ["", f"Command: `{out['command']}`", ""]
    return "\n".join(lines)


def parse_size(text: str) -> tuple[int, int]:
    h, w = text.lower().split("x")
    return int(h), int(w)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="unet-lite0,unet-mbv2")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup-steps", type=int, default=0)
    ap.add_argument("--size", type=parse_size, default=(128, 128), help="training size HxW")
    ap.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: fastest on oversubscribed shared cores)"
    )
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--work", type=Path, default=Path("runs/bench_real_polyp"))
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    missing = missing_sources(args.data, (*TRAIN_SOURCES, TEST_SOURCE))
    if missing:
        print(f"skipped: shared data not found under {args.data} (missing {', '.join(missing)})")
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from scopeseg import progress
    from scopeseg.data.coco import load_dataset
    from scopeseg.io import write_json, write_text

    progress.set_enabled(False)
    torch.set_num_threads(args.threads)
    models = [m for m in args.models.split(",") if m]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    args.work = args.work.resolve()
    srcs = convert_sources(args.data, (*TRAIN_SOURCES, TEST_SOURCE), args.work / "data")
    train_json = merged_dataset([srcs[n] for n in TRAIN_SOURCES], args.work / "data" / "train.json")
    n_train = len(load_dataset(train_json).images)
    start_machine = machine()
    records = []
    for model in models:
        for seed in seeds:
            for pretrained in (True, False):
                rec = run_one(
                    args, model, pretrained, seed, train_json, srcs["kvasir_seg"], srcs[TEST_SOURCE]
                )
                records.append(rec)
                print(
                    f"{model} {'imagenet' if pretrained else 'random  '} seed {seed}: "
                    f"test Dice {rec['test_dice']:.3f} ({rec['train_seconds']:.0f} s)",
                    flush=True,
                )
    out = {
        "benchmark": "real_polyp_pretrained",
        "train_sources": list(TRAIN_SOURCES),
        "test_source": TEST_SOURCE,
        "train_images": n_train,
        "test_images": len(load_dataset(srcs[TEST_SOURCE]).images),
        "steps_per_epoch": n_train // args.batch_size,
        "budget": budget_of(args),
        "seeds": seeds,
        "machine": start_machine,
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "summary": summarise(records, models),
        "runs": records,
        "command": "python benchmarks/real_polyp_pretrained.py " + " ".join(sys.argv[1:]),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "real_polyp_pretrained.json", out, indent=2)
    write_text(args.out / "real_polyp_pretrained.md", markdown(out))
    print(markdown(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
