"""Synthetic scope-video generator and overlay speed at 480x736 (one core for cv2).

Timed in one run: ``render_video`` (CPU ms per frame, per-video set-up included), the whole ``generate``
job (JPEG frames + H.264 mp4 + RLE + JSON) and, as the baseline, the I/O floor of that job on the same
frames (JPEG encode + H.264 encode + RLE encode, no rendering). ``viz.overlay`` is timed against a plain
numpy float blend (the usual ``img * (1 - a) + color * a`` per class) on the same frames and masks.
Results: ``benchmarks/results/synth_speed.{json,md}``.
Run: ``.venv/bin/python benchmarks/synth_speed.py [--videos 2] [--frames 30]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def naive_overlay(img: np.ndarray, masks: list[np.ndarray], colors: list[tuple], alpha: float = 0.5):
    out = img.astype(np.float32)
    for m, c in zip(masks, colors):
        out[m] = out[m] * (1 - alpha) + np.array(c, np.float32) * alpha
    return out.round().astype(np.uint8)


def main() -> None:
    import cv2

    from scopeseg.data import rle
    from scopeseg.data.synthetic import SynthConfig, categories, generate, render_video, video_seed
    from scopeseg.video_io import VideoWriter
    from scopeseg.viz import overlay

    ap = argparse.ArgumentParser()
    ap.add_argument("--videos", type=int, default=2)
    ap.add_argument("--frames", type=int, default=30)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    cfg = SynthConfig(videos=args.videos, frames=args.frames)
    colors = {c["id"]: tuple(c["color"]) for c in categories()}

    t0 = _cpu()
    frames = [f for k in range(cfg.videos) for f in render_video(video_seed(cfg.seed, k), cfg)]
    render_ms = 1000 * (_cpu() - t0) / len(frames)

    with tempfile.TemporaryDirectory() as tmp:
        t0, w0 = _cpu(), time.perf_counter()
        generate(Path(tmp) / "ds", cfg, progress=False)
        gen_ms, gen_wall = 1000 * (_cpu() - t0) / len(frames), 1000 * (time.perf_counter() - w0) / len(frames)
        t0 = _cpu()
        with VideoWriter(Path(tmp) / "io.mp4", fps=cfg.fps) as writer:
            for img, inst in frames:
                (Path(tmp) / "f.jpg").write_bytes(
                    cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])[1]
                )
                writer.write(img)
                for _, m in inst:
                    rle.encode(m)
        io_ms = 1000 * (_cpu() - t0) / len(frames)

    def time_overlay(fn) -> float:
        t0 = _cpu()
        for img, inst in frames:
            fn(img, inst)
        return 1000 * (_cpu() - t0) / len(frames)

    ours = time_overlay(
        lambda img, inst: overlay(
            img,
            np.stack([m for _, m in inst]) if inst else np.zeros((0, *img.shape[:2]), bool),
            [colors[c] for c, _ in inst],
            contours=True,
        )
    )
    naive = time_overlay(
        lambda img, inst: naive_overlay(img, [m for _, m in inst], [colors[c] for c, _ in inst])
    )

    res = {
        "size": list(cfg.size), "frames": len(frames), "videos": cfg.videos, "platform": platform.processor() or platform.machine(),
        "render_ms_per_frame_cpu": round(render_ms, 1), "render_frames_per_s_one_core": round(1000 / render_ms, 1),
        "generate_ms_per_frame_cpu": round(gen_ms, 1), "generate_ms_per_frame_wall": round(gen_wall, 1),
        "io_floor_ms_per_frame_cpu": round(io_ms, 1), "render_vs_io_floor": round(render_ms / io_ms, 2),
        "overlay_ms": round(ours, 2), "naive_overlay_ms": round(naive, 2), "overlay_speedup_vs_naive": round(naive / ours, 2),
    }  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "synth_speed.json").write_text(json.dumps(res, indent=2) + "\n")
    md = [
        f"# synthetic generator speed ({cfg.size[0]}x{cfg.size[1]}, {len(frames)} frames, cv2 on one thread)",
        "",
        "| step | ms/frame (CPU) |",
        "|---|---|",
        f"| render_video (set-up included) | {res['render_ms_per_frame_cpu']} ({res['render_frames_per_s_one_core']} frames/s) |",
        f"| generate: render + JPEG + mp4 + RLE + JSON | {res['generate_ms_per_frame_cpu']} (wall {res['generate_ms_per_frame_wall']}) |",
        f"| baseline: I/O floor (JPEG + H.264 + RLE only) | {res['io_floor_ms_per_frame_cpu']} |",
        f"| viz.overlay with contours | {res['overlay_ms']} |",
        f"| baseline: numpy float blend, no contours | {res['naive_overlay_ms']} |",
        "",
        f"render / I/O floor = {res['render_vs_io_floor']}x; overlay speed-up vs numpy blend = {res['overlay_speedup_vs_naive']}x",
        "",
    ]
    (RESULTS / "synth_speed.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
