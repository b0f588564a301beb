"""Sim-to-real ablation: which generator and augmentation changes raise the real-frame Dice of a synthetic-only UNet.

One row per change, each a full recipe (generator options + training options) trained with the same budget
(unet-lite0, ImageNet encoder, binary instruments, ``--epochs`` epochs at 192x288, batch 8, seed 0: the demo's
recipe at a fixed number of steps) on 6 synthetic videos x 40 frames at 480x736, then scored on the 17 real
laparoscopic frames of ``/work/shared/data`` (``SOURCES`` of ``sim_to_real``; never used for training or model
selection: the best checkpoint is chosen on a synthetic validation video) and on 2 held-out synthetic videos
made with the default generator (the demo's held-out check). ``--measure`` prints the frame statistics
(colour, texture, tool width) of real vs synthetic frames that motivated the rows.
Rows are cached in the work folder (an interrupted run resumes; ``--rows`` runs a subset).
Results: ``benchmarks/results/sim_to_real_ablation.{json,md}``.
Run: ``.venv/bin/python benchmarks/sim_to_real_ablation.py [--rows a,b] [--epochs 4] [--seed 1 --work W1] [--replicate W1 W2]``; skips without the data.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_polyp_pretrained import DATA, RESULTS, convert_sources, evaluate_checkpoint, machine  # noqa: E402
from sim_to_real import SOURCES  # noqa: E402

#: the demo recipe's generator options (row texture_width), which the later rows build on
TW: dict[str, Any] = {"tissue_texture": 0.7, "tool_width": 0.6}

#: row -> (what changes, generator options, training options); each row is a full recipe
ROWS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "baseline": ("today's generator and augmentation (the demo's recipe)", {}, {"augment": "default"}),
    "real_aug": (
        "+ real-camera style augmentation (augment=real: desaturation, gamma, sharpen, JPEG, ISO noise)",
        {},
        {"augment": "real"},
    ),
    "palette": (
        "tissue_palette=0.5 alone (per-video tissue recolouring)",
        {"tissue_palette": 0.5},
        {"augment": "default"},
    ),
    "texture": (
        "tissue_texture=0.7 alone (fine tissue texture)",
        {"tissue_texture": 0.7},
        {"augment": "default"},
    ),
    "tools": (
        "tool_look=0.6 alone (thicker, tissue-tinted tools)",
        {"tool_look": 0.6},
        {"augment": "default"},
    ),
    "texture_width": (
        "tissue_texture=0.7 + tool_width=0.6 (thicker tools near the camera, not tinted)",
        TW,
        {"augment": "default"},
    ),
    "texture_width_insulated": (
        "tissue_texture=0.7 + tool_width=0.6 + tool_insulated=0.4 (black shaft, matte white sleeve, cone tip)",
        {**TW, "tool_insulated": 0.4},
        {"augment": "default"},
    ),
    "texture_width_organs": (
        "tissue_texture=0.7 + tool_width=0.6 + tissue_organs=0.7 (smooth grey-blue, pale, yellow, dark regions)",
        {**TW, "tissue_organs": 0.7},
        {"augment": "default"},
    ),
    "texture_width_organs_insulated": (
        "texture_width_organs + tool_insulated=0.4",
        {**TW, "tissue_organs": 0.7, "tool_insulated": 0.4},
        {"augment": "default"},
    ),
    "texture_width_288": (
        "texture_width trained at 288x448 instead of 192x288 (thin real tools keep more pixels)",
        TW,
        {"augment": "default", "train_size": [288, 448]},
    ),
    "tw_freeze3": (
        "texture_width + encoder strides 2-8 frozen and encoder BatchNorm frozen (keep ImageNet features)",
        TW,
        {"augment": "default", "freeze_encoder_at": 3, "freeze_encoder_bn": True},
    ),
    "tw_freeze5": (
        "texture_width + the whole encoder frozen (ImageNet features; only the decoder learns)",
        TW,
        {"augment": "default", "freeze_encoder_at": 5, "freeze_encoder_bn": True},
    ),
    "tw_enc_lr01": (
        "texture_width + encoder at 0.1x lr with frozen BatchNorm",
        TW,
        {"augment": "default", "encoder_lr_factor": 0.1, "freeze_encoder_bn": True},
    ),
    "tw_randconv": (
        "texture_width + augment=randconv (random convolutions: colour and texture change, shapes stay)",
        TW,
        {"augment": "randconv"},
    ),
    "tw_domain": (
        "texture_width + augment=domain (randconv + any hue, grey, swapped colour channels)",
        TW,
        {"augment": "domain"},
    ),
    "tw_zoom": (
        "texture_width + zoom augmentation up to 2x (affine scale 0.85-2.0: wider tools near the camera)",
        TW,
        {"augment": "default", "augment_scale": [0.85, 2.0]},
    ),
    "tw_style_hist": (
        "texture_width + histogram matching to unlabeled real frames of the other sources (style_p 0.5)",
        TW,
        {"augment": "default", "style": "histogram"},
    ),
    "tw_style_fda": (
        "texture_width + FDA (low-frequency amplitude) from unlabeled real frames of the other sources",
        TW,
        {"augment": "default", "style": "fda"},
    ),
    "tw_style_pixel": (
        "texture_width + pixel-distribution adaptation to unlabeled real frames of the other sources",
        TW,
        {"augment": "default", "style": "pixel"},
    ),
    "tw_style_hist_same": (
        "texture_width + histogram matching to unlabeled frames of the same videos (two folds: styled on one half "
        "of every source's frames, scored on the other half)",
        TW,
        {"augment": "default", "style": "histogram", "style_bank": "other_half"},
    ),
    "tw_style_pixel_same": (
        "texture_width + pixel-distribution adaptation to unlabeled frames of the same videos (two folds)",
        TW,
        {"augment": "default", "style": "pixel", "style_bank": "other_half"},
    ),
    "tw_style_fda_same": (
        "texture_width + FDA from unlabeled frames of the same videos (two folds)",
        TW,
        {"augment": "default", "style": "fda", "style_bank": "other_half"},
    ),
    "tw_long": (
        "texture_width on 3x the videos (18 x 40 frames), so 3x the steps (4 epochs)",
        {**TW, "videos": 18},
        {"augment": "default"},
    ),
    "tw_long_domain": (
        "tw_long + augment=domain",
        {**TW, "videos": 18},
        {"augment": "domain"},
    ),
    "generator": (
        "+ generator domain randomisation (tissue_palette=0.5, tissue_texture=0.7, tool_look=0.6)",
        {"tissue_palette": 0.5, "tissue_texture": 0.7, "tool_look": 0.6},
        {"augment": "real"},
    ),
}
VIDEOS, FRAMES, SIZE, TRAIN_SIZE = 6, 40, (480, 736), (192, 288)


def synth_data(work: Path, options: dict[str, Any], seed: int, videos: int, frames: int) -> Path:
    """Generate (once, cached by options) a synthetic data set; returns its folder."""
    from scopeseg.data.synthetic import SynthConfig, generate

    key = hashlib.sha1(json.dumps([options, seed, videos, frames], sort_keys=True).encode()).hexdigest()[:10]
    out = work / "data" / f"synth-{key}"
    if not (out / "annotations.json").is_file():
        generate(
            out, SynthConfig(videos=videos, frames=frames, size=SIZE, seed=seed, **options), progress=False
        )
    return out


def row_data(work: Path, synth: dict[str, Any]) -> Path:
    """A row's training videos: its generator options, ``VIDEOS`` x ``FRAMES`` unless it asks for more videos."""
    gen = {k: v for k, v in synth.items() if k != "videos"}
    return synth_data(work, gen, 0, synth.get("videos", VIDEOS), FRAMES)


def run_row(args, name: str, real: dict[str, Path], held_out: Path) -> dict[str, Any]:
    from scopeseg.config import build_config
    from scopeseg.io import write_json
    from scopeseg.train import train

    desc, synth, training = ROWS[name]
    budget = {
        "epochs": args.epochs,
        "train_size": list(TRAIN_SIZE),
        "batch_size": 8,
        "lr": 2e-3,
        "seed": args.seed,
    }
    cached = args.work / "rows" / f"{name}.json"
    if cached.is_file():
        rec = json.loads(cached.read_text())
        if rec.get("budget") == budget and rec.get("synth") == synth and rec.get("training") == training:
            return rec
    data = row_data(args.work, synth)
    options = {k: v for k, v in training.items() if k != "style_bank"}  # style_bank: how the benchmark folds

    def fit(run_dir: Path, extra: list[str]) -> tuple[dict[str, Any], float]:
        shutil.rmtree(run_dir, ignore_errors=True)
        overrides = [
            f"data={data}",
            f"out={run_dir}",
            "mode=binary",
            "categories=[supercategory:instrument]",
            "val_fraction=0.17",
            f"val_every={max(1, args.epochs // 4)}",
            "report=false",
            "accelerator=cpu",
            f"max_minutes={args.max_minutes}",
            *(f"{k}={json.dumps(v) if isinstance(v, list) else v}" for k, v in {**budget, **options}.items()),
            *extra,
        ]
        cfg = build_config(preset="unet-lite0", overrides=overrides, task="semantic")
        t0 = time.time()
        return train(cfg), time.time() - t0

    if "style" in training:
        # style from unlabeled real frames: folds (run name, style frames, {source: scored frame names or None = all}),
        # so no scored frame is ever trained on, not even unlabeled
        if training.get("style_bank") == "other_half":
            # the user's case: unlabeled frames of the same videos. Every source's frames split by sorted position
            # (even / odd); a model styled on one half of every source is scored on the other half
            frames = {s: sorted(p.name for p in (args.data / s / "images").iterdir()) for s in real}
            halves = [{s: set(f[k::2]) for s, f in frames.items()} for k in (0, 1)]
            folds = [
                (
                    f"half{k}",
                    [str(args.data / s / "images" / f) for s in real for f in sorted(halves[1 - k][s])],
                    halves[k],
                )
                for k in (0, 1)
            ]
        else:  # one model per held-out source, its style frames the other sources'
            folds = [(h, [str(args.data / s / "images") for s in real if s != h], {h: None}) for h in real]
        items: dict[str, list] = {s: [] for s in real}
        synth_dice, train_s, epochs, best = [], 0.0, [], []
        for tag, bank, scored in folds:
            res, secs = fit(args.work / "runs" / name / tag, [f"style_images={json.dumps(bank)}"])
            for s, keep in scored.items():
                ev = evaluate_checkpoint(res["best"], real[s])
                items[s] += [r for r in ev["per_image"] if keep is None or Path(r["file_name"]).name in keep]
            synth_dice.append(evaluate_checkpoint(res["best"], held_out)["summary"]["dice_mean_per_image"])
            train_s, epochs, best = (
                train_s + secs,
                [*epochs, res.get("epochs_run")],
                [*best, str(res["best"])],
            )
        sources = {
            s: {"per_image": it, "summary": {"dice_mean_per_image": sum(r["dice"] for r in it) / len(it)}}
            for s, it in items.items()
        }
        held_out_dice, epochs_done, checkpoint = sum(synth_dice) / len(synth_dice), min(epochs), best
    else:
        res, train_s = fit(args.work / "runs" / name, [])
        sources = {n: evaluate_checkpoint(res["best"], p) for n, p in real.items()}
        held_out_dice = evaluate_checkpoint(res["best"], held_out)["summary"]["dice_mean_per_image"]
        epochs_done, checkpoint = res.get("epochs_run"), str(res["best"])
    dices = [r["dice"] for s in sources.values() for r in s["per_image"]]
    rec = {
        "row": name,
        "change": desc,
        "synth": synth,
        "training": training,
        "budget": budget,
        "epochs_done": epochs_done,
        "train_seconds": round(train_s, 1),
        "loadavg_1": round(os.getloadavg()[0], 2),
        "real_dice_mean": sum(dices) / len(dices),
        "real_dice_by_source": {n: s["summary"]["dice_mean_per_image"] for n, s in sources.items()},
        "synthetic_held_out_dice": held_out_dice,
        "checkpoint": checkpoint,
        "per_image": {n: s["per_image"] for n, s in sources.items()},
    }
    write_json(cached, rec, indent=2)
    return rec


def frame_stats(img_bgr, tool) -> dict[str, float]:
    """Colour, texture and tool-size statistics of one frame (BGR uint8) and its binary tool mask."""
    import cv2
    import numpy as np

    h, w = tool.shape
    hsv = cv2.cvtColor(img_bgr, cv2.COLOR_BGR2HSV).astype(np.float32)
    gray = cv2.cvtColor(img_bgr, cv2.COLOR_BGR2GRAY)
    fov = cv2.erode((gray > 20).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    tissue = fov & ~tool
    r: dict[str, float] = {"fov_fraction": float(fov.mean()), "tool_fraction": float(tool.mean())}
    for part, m in (("tissue", tissue), ("tool", tool)):
        if m.sum() >= 50:
            r[f"{part}_saturation"] = float(hsv[..., 1][m].mean())
            r[f"{part}_value"] = float(hsv[..., 2][m].mean())
            r[f"{part}_red_minus_green"] = float(img_bgr[..., 2][m].mean() - img_bgr[..., 1][m].mean())
    if tissue.sum() >= 50:
        r["tissue_laplacian_var"] = float(cv2.Laplacian(gray, cv2.CV_32F)[tissue].var())
    if tool.any():
        dt = cv2.distanceTransform(tool.astype(np.uint8), cv2.DIST_L2, 5)
        r["tool_halfwidth_p95"] = float(np.percentile(dt[tool], 95) / min(h, w))
    return r


def measure(data: Path, options: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Mean frame statistics per real source and for synthetic frames (8 videos) made with ``options``."""
    import cv2
    import numpy as np

    from scopeseg.data.synthetic import CATEGORY_IDS, SynthConfig, render_video, video_seed

    groups: dict[str, list[dict[str, float]]] = {}
    for s in SOURCES:
        for p in sorted((data / s / "images").iterdir()):
            m = next((data / s / "masks").glob(p.stem + ".*"))
            groups.setdefault(s, []).append(frame_stats(cv2.imread(str(p)), cv2.imread(str(m), 0) > 127))
    cfg = SynthConfig(frames=10, size=SIZE, **options)
    for k in range(8):
        for t, (frame, inst) in enumerate(render_video(video_seed(0, k), cfg)):
            if t % 5 == 0:
                tool = np.zeros(frame.shape[:2], bool)
                for c, mk in inst:
                    tool |= mk if c != CATEGORY_IDS["polyp"] else False
                groups.setdefault("synthetic", []).append(
                    frame_stats(np.ascontiguousarray(frame[..., ::-1]), tool)
                )
    keys = sorted({k for g in groups.values() for r in g for k in r})
    return {g: {k: float(np.mean([r[k] for r in rs if k in r])) for k in keys} for g, rs in groups.items()}


def markdown(rows: list[dict], out: dict[str, Any]) -> str:
    short = {"cholecseg8k_clip": "CholecSeg8k", "cholecinstanceseg_vid03_unclear": "CholecInstanceSeg"}
    short["endoscapes2023_vid04_unclear"] = "Endoscapes"
    b = rows[0]["budget"]
    lines = [
        "# Sim-to-real ablation: synthetic-only UNet on 17 real laparoscopic frames",
        "",
        f"Each row: unet-lite0 (ImageNet encoder) trained on {VIDEOS} synthetic videos x {FRAMES} frames "
        f"({SIZE[0]}x{SIZE[1]}) with the same budget ({b['epochs']} epochs, cosine schedule, capped at "
        f"{out['max_minutes']:g} min, at {TRAIN_SIZE[0]}x{TRAIN_SIZE[1]}, batch 8, lr {b['lr']:g}, seed {b['seed']}: "
        "the demo's recipe), best checkpoint chosen on a synthetic validation video; Dice = mean per real "
        "frame at the frame's own size (the real frames are never used for training or selection). Synthetic "
        "held-out: 2 videos x 20 frames of the default generator (the demo's check). Single-change rows "
        "differ from `baseline` in one option only.",
        "",
        "| row | change | real Dice (17) | "
        + " | ".join(short.values())
        + " | synthetic held-out | epochs | train s | 1-min load | kept |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    seeds: dict[str, list[float]] = {}  # real Dice per row over seed 0 and the replicates
    for r in [*rows, *(out.get("replicate") or [])]:
        seeds.setdefault(r["row"], []).append(r["real_dice_mean"])
    mean = {k: sum(v) / len(v) for k, v in seeds.items()}
    for r in rows:
        if r["row"] == "baseline" or "baseline" not in mean:
            kept = "reference"
        else:
            kept = "yes" if mean[r["row"]] > mean["baseline"] else "no"
        by = r["real_dice_by_source"]
        lines.append(
            f"| {r['row']} | {r['change']} | {r['real_dice_mean']:.3f} | "
            + " | ".join(f"{by[s]:.3f}" for s in short)
            + f" | {r['synthetic_held_out_dice']:.3f} | {r['epochs_done']} | {r['train_seconds']} "
            f"| {r['loadavg_1']} | {kept} |"
        )
    rep = out.get("replicate") or []
    if rep:
        lines += ["", "Replicates with other training seeds (same data, same budget):", ""]
        lines += [
            "| row | seed | real Dice (17) | "
            + " | ".join(short.values())
            + " | synthetic held-out | train s |"
        ]
        lines += ["|---|---|---|---|---|---|---|---|"]
        for r in rep:
            by = r["real_dice_by_source"]
            lines.append(
                f"| {r['row']} | {r['budget']['seed']} | {r['real_dice_mean']:.3f} | "
                + " | ".join(f"{by[s]:.3f}" for s in short)
                + f" | {r['synthetic_held_out_dice']:.3f} | {r['train_seconds']} |"
            )
        lines += [
            "",
            "Mean real Dice over the seeds run: "
            + ", ".join(f"{k} {mean[k]:.3f} ({len(v)} seeds)" for k, v in seeds.items() if len(v) > 1)
            + ".",
        ]
    m = out["machine"]
    lines += [
        "",
        "Kept = the row's real Dice (mean over the seeds run for it) is above the baseline's (same session, "
        "same budget). With 17 frames from 3 videos, the baseline alone moves by ~0.03 between training seeds: "
        "differences of that size are noise.",
        f"Machine: {m['cpu_count']} CPU cores (the other core busy with another job), flags {m.get('cpu_flags')}, "
        f"{m['torch_threads']} torch thread(s), OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; "
        "train s and 1-min load per row in the table.",
        "",
        f"Command: `{out['command']}`",
        "",
    ]
    return "\n".join(lines)


def cpu_flags() -> str:
    try:
        flags = next(ln for ln in open("/proc/cpuinfo") if ln.startswith("flags")).split()
    except (OSError, StopIteration):
        return "unknown"
    return ",".join(f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile") if f in flags)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default=",".join(ROWS), help="rows to run (cached rows are reused)")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--max-minutes", type=float, default=6.5, help="safety cap per row")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--replicate", type=Path, nargs="*", default=[], help="work folders of replicate runs (other seeds)"
    )
    ap.add_argument("--seed", type=int, default=0, help="training seed (the synthetic data stay seed 0)")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--work", type=Path, default=Path("/tmp/18/ablation"))
    ap.add_argument("--measure", action="store_true", help="frame statistics real vs synthetic, then stop")
    ap.add_argument("--generate-only", action="store_true", help="make the rows' synthetic data and stop")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    names = [n for n in args.rows.split(",") if n]
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        ap.error(f"unknown rows {unknown}; known: {list(ROWS)}")
    if args.generate_only:
        for n in names:
            print(n, row_data(args.work, ROWS[n][1]))
        print("held-out", synth_data(args.work, {}, 1000, 2, 20))
        return 0
    if args.measure:
        stats = {"default": measure(args.data, {}), "all options": measure(args.data, ROWS["generator"][1])}
        stats["all options"] = {"synthetic": stats["all options"]["synthetic"]}
        args.out.mkdir(parents=True, exist_ok=True)
        from scopeseg.io import write_json

        write_json(args.out / "sim_to_real_measurements.json", stats, indent=2)
        for name, groups in stats.items():
            for g, r in groups.items():
                print(f"{name:12s} {g:32s} " + " ".join(f"{k}={v:.3g}" for k, v in r.items()))
        return 0
    missing = [s for s in SOURCES if not (args.data / s / "images").is_dir()]
    if missing:
        print(f"skipped: shared data not found under {args.data} (missing {', '.join(missing)})")
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from scopeseg import progress
    from scopeseg.io import write_json, write_text

    progress.set_enabled(False)
    torch.set_num_threads(args.threads)
    real = convert_sources(args.data, SOURCES, args.work / "real")
    held_out = synth_data(args.work, {}, 1000, 2, 20)
    for n in names:
        r = run_row(args, n, real, held_out)
        print(
            f"{n}: real {r['real_dice_mean']:.3f} {r['real_dice_by_source']} synth {r['synthetic_held_out_dice']:.3f}"
        )
    rows = [json.loads(p.read_text()) for n in ROWS if (p := args.work / "rows" / f"{n}.json").is_file()]
    replicate = [
        json.loads(p.read_text())
        for w in args.replicate
        for n in ROWS
        if (p := w / "rows" / f"{n}.json").is_file()
    ]
    out = {
        "benchmark": "sim_to_real_ablation",
        "rows": rows,
        "replicate": replicate,
        "max_minutes": args.max_minutes,
        "machine": {**machine(), "cpu_flags": cpu_flags()},
        "command": "python benchmarks/sim_to_real_ablation.py " + " ".join(sys.argv[1:]),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "sim_to_real_ablation.json", out, indent=2)
    write_text(args.out / "sim_to_real_ablation.md", markdown(rows, out))
    print(markdown(rows, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
