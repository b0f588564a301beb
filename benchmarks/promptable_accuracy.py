"""Dice / NSD of box-prompted LiteMedSAM and MobileSAM on the real scope images of ../shared/data.

Each ground-truth object gets its tight box (instance masks where the source has them, else connected
components of >= 64 px of the binary mask); all boxes of an image are decoded in one call and painted into a
label map (later boxes win, as the challenge baseline), scored with the MedSAM-laptop CVPR24 rules
(``scopeseg.metrics.medsam.medsam_cvpr24``: mean over objects of DSC, NSD at tolerance 2 px, NSD = 0 when
DSC <= 0.2). Sources credited in each folder's SOURCE.md; images without objects are skipped.
Run: ``.venv/bin/python benchmarks/promptable_accuracy.py [--models litemedsam,mobilesam] [--engine onnx]``
-> benchmarks/results/promptable_accuracy.{json,md}. A checkpoint folder may be given as a model.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SOURCES = [
    "kvasir_seg",
    "kvasir_seg_256",
    "cvc_clinicdb_unclear",
    "endotect2020_polyp_unclear",
    "cholecseg8k_clip",
    "cholecinstanceseg_vid03_unclear",
    "endoscapes2023_vid04_unclear",
    "endovis17_unclear",
]
MIN_AREA = 64


def instance_map(source_dir: Path, image_name: str, mask_name: str) -> np.ndarray:
    """Consecutive object labels 1..K: the source's instance masks, else binary-mask components."""
    import cv2

    inst = source_dir / "masks_instance" / mask_name
    if inst.is_file():
        raw = cv2.imread(str(inst), cv2.IMREAD_UNCHANGED)
        raw = raw if raw.ndim == 2 else raw[..., 0]
        labels = np.zeros(raw.shape, np.int32)
        k = 0
        for v in np.unique(raw):
            if v != 0 and (raw == v).sum() >= MIN_AREA:
                k += 1
                labels[raw == v] = k
        return labels
    m = cv2.imread(str(source_dir / "masks" / mask_name), cv2.IMREAD_GRAYSCALE) > 0
    n, comp, stats, _ = cv2.connectedComponentsWithStats(m.astype(np.uint8), connectivity=8)
    labels = np.zeros(m.shape, np.int32)
    k = 0
    for i in range(1, n):
        if stats[i, cv2.CC_STAT_AREA] >= MIN_AREA:
            k += 1
            labels[comp == i] = k
    return labels


def items(source: str) -> list[tuple[Path, np.ndarray]]:
    import csv

    d = DATA / source
    rows = list(csv.DictReader((d / "manifest.csv").open()))
    out = []
    for r in rows:
        if source == "endovis17_unclear" and r["mask"] != "frame.png":
            continue  # the per-instrument files repeat the same frame
        labels = instance_map(d, r["image"], r["mask"])
        if labels.max() > 0:
            out.append((d / "images" / r["image"], labels))
    return out


def boxes_of(labels: np.ndarray) -> np.ndarray:
    out = []
    for k in range(1, labels.max() + 1):
        ys, xs = np.nonzero(labels == k)
        out.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return np.array(out, np.float64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="litemedsam,mobilesam")
    ap.add_argument("--engine", default="onnx")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sources", default=",".join(SOURCES))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "promptable_accuracy"))
    args = ap.parse_args()
    from scopeseg.inference.medsam_io import segment_2d
    from scopeseg.inference.prompt import PromptPredictor
    from scopeseg.io import read_image
    from scopeseg.metrics.medsam import medsam_cvpr24

    if not DATA.is_dir():
        raise SystemExit(f"{DATA} not found: nothing to evaluate")
    data = {s: items(s) for s in args.sources.split(",") if (DATA / s).is_dir()}
    results: dict = {
        "protocol": "medsam-laptop cvpr24 (DSC, NSD tol 2 px), one GT box per object",
        "engine": args.engine,
        "models": {},
    }
    for model in args.models.split(","):
        p = PromptPredictor.from_pretrained(model, engine=args.engine, threads=args.threads)
        per_source = {}
        for source, cases in data.items():
            dsc, nsd, t0 = [], [], time.perf_counter()
            for image_path, labels in cases:
                segs = segment_2d(p, read_image(image_path), boxes_of(labels))
                r = medsam_cvpr24(segs, labels)
                dsc.append(r["dsc"])
                nsd.append(r["nsd"])
            per_source[source] = {
                "images": len(cases),
                "objects": int(sum(lab.max() for _, lab in cases)),
                "dsc": float(np.mean(dsc)),
                "nsd": float(np.mean(nsd)),
                "seconds": time.perf_counter() - t0,
            }
            print(model, source, json.dumps(per_source[source]), flush=True)
        results["models"][Path(model).name] = per_source
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2))
    out.with_suffix(".md").write_text(render_md(results))
    print(render_md(results))


def render_md(r: dict) -> str:
    models = list(r["models"])
    lines = [
        "# Box-prompted accuracy on real scope images (../shared/data)",
        "",
        f"Protocol: {r['protocol']}; engine {r['engine']}. Sources are credited in each folder's SOURCE.md.",
        "",
        "| source | images | objects | " + " | ".join(f"{m} DSC | {m} NSD" for m in models) + " |",
        "|---|---|---|" + "---|---|" * len(models),
    ]
    for source in next(iter(r["models"].values())):
        first = r["models"][models[0]][source]
        cells = " | ".join(
            f"{r['models'][m][source]['dsc']:.4f} | {r['models'][m][source]['nsd']:.4f}" for m in models
        )
        lines.append(f"| {source} | {first['images']} | {first['objects']} | {cells} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
