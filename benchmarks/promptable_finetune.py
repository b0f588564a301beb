"""LiteMedSAM fine-tuned on the OTHER sources of ../shared/data, scored on each held-out source group.

Two groups: colonoscopy polyps (kvasir_seg, kvasir_seg_256, cvc_clinicdb_unclear, endotect2020_polyp_unclear)
and laparoscopic / robotic instruments (cholecseg8k_clip, cholecinstanceseg_vid03_unclear,
endoscapes2023_vid04_unclear, endovis17_unclear). For each group, LiteMedSAM is fine-tuned (preset
litemedsam-finetune, encoder frozen by default to fit a 2-core CPU) on the other group's objects (canonical
COCO built from the masks, one annotation per object) and evaluated on this group with the protocol of
benchmarks/promptable_accuracy.py (MedSAM-laptop DSC / NSD, one GT box per object).
Run: ``.venv/bin/python benchmarks/promptable_finetune.py`` -> benchmarks/results/promptable_finetune.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from promptable_accuracy import DATA, ROOT, boxes_of, items  # noqa: E402

GROUPS = {
    "polyp": ["kvasir_seg", "kvasir_seg_256", "cvc_clinicdb_unclear", "endotect2020_polyp_unclear"],
    "surgical": [
        "cholecseg8k_clip",
        "cholecinstanceseg_vid03_unclear",
        "endoscapes2023_vid04_unclear",
        "endovis17_unclear",
    ],
}


def build_dataset(sources: list[str], out: Path) -> Path:
    """Canonical data set (images copied, one annotation per object) from the sources' masks."""
    from scopeseg.data.coco import CocoDataset
    from scopeseg.io import image_size

    ds = CocoDataset()
    cat = ds.add_category("object")
    out.mkdir(parents=True, exist_ok=True)
    for source in sources:
        for image_path, labels in items(source):
            name = f"{source}__{image_path.name}"
            link = out / name
            if not link.exists():  # a copy in the work folder (the data root may not be left by links)
                shutil.copyfile(image_path, link)
            h, w = image_size(image_path)
            img = ds.add_image(name, h, w)
            for k in range(1, labels.max() + 1):
                ds.add_annotation(img, cat, labels == k)
    ds.save(out / "annotations.json")
    return out


def evaluate(model_dir: str, sources: list[str], threads: int) -> dict:
    from scopeseg.inference.medsam_io import segment_2d
    from scopeseg.inference.prompt import PromptPredictor
    from scopeseg.io import read_image
    from scopeseg.metrics.medsam import medsam_cvpr24

    p = PromptPredictor.from_pretrained(model_dir, engine="onnx", threads=threads)
    out = {}
    for source in sources:
        cases = items(source)
        scores = [medsam_cvpr24(segment_2d(p, read_image(i), boxes_of(lab)), lab) for i, lab in cases]
        out[source] = {
            "images": len(cases),
            "dsc": float(np.mean([s["dsc"] for s in scores])),
            "nsd": float(np.mean([s["nsd"] for s in scores])),
        }
        print(model_dir, source, json.dumps(out[source]), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/scopeseg_finetune")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--freeze-encoder", default="true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "promptable_finetune"))
    args = ap.parse_args()
    import torch

    from scopeseg.config import build_config
    from scopeseg.train import train

    torch.set_num_threads(args.threads)
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} not found")
    work = Path(args.work)
    result = {"epochs": args.epochs, "lr": args.lr, "freeze_encoder": args.freeze_encoder, "groups": {}}
    for held_out, sources in GROUPS.items():
        train_sources = [s for g, ss in GROUPS.items() if g != held_out for s in ss]
        data = build_dataset(train_sources, work / f"train_without_{held_out}")
        cfg = build_config(
            preset="litemedsam-finetune",
            overrides=[
                f"data={data}",
                f"out={work / f'run_without_{held_out}'}",
                "overwrite=true",  # a rerun of the benchmark retrains
                f"epochs={args.epochs}",
                f"lr={args.lr}",
                f"freeze_encoder={args.freeze_encoder}",
                "flip=false",
                "accelerator=cpu",
                "batch_size=4",
            ],
        )
        t0 = time.perf_counter()
        run = train(cfg)
        minutes = (time.perf_counter() - t0) / 60
        result["groups"][held_out] = {
            "trained_on": train_sources,
            "train_minutes": minutes,
            "val": run.get("val"),
            "checkpoint": run["best"],
            "scores": evaluate(run["best"], sources, args.threads),
        }
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    lines = [
        "# LiteMedSAM fine-tuned on the other source group (box prompts, MedSAM-laptop DSC / NSD)",
        "",
        f"Fine-tuning: preset litemedsam-finetune, {args.epochs} epochs, lr {args.lr}, encoder frozen: "
        f"{args.freeze_encoder}; evaluated with one GT box per object.",
        "",
        "| held-out source | images | DSC | NSD | trained on | minutes |",
        "|---|---|---|---|---|---|",
    ]
    for g, r in result["groups"].items():
        for source, s in r["scores"].items():
            lines.append(
                f"| {source} | {s['images']} | {s['dsc']:.4f} | {s['nsd']:.4f} | {g} excluded | "
                f"{r['train_minutes']:.1f} |"
            )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
