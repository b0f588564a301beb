"""RSS of whole ``scopeseg track`` runs on a 512x512 video of 100 vs 2,000 frames, per path (memory stays flat?).

Why: ``track`` decodes frames lazily (``VideoFrames``, a window of 32), bounds each object's memory bank and
streams masks (RLE) and overlay frames to disk, so its memory must not grow with the video's length. Each run
is its own process; its peak RSS comes from ``os.wait4``. Tiny random models of each path (box tracker on a
tiny LiteMedSAM, memory head, SAM2): the code path is what keeps memory flat or not, real weights add a
constant (their size).

Run: ``flock /tmp/heavy.lock .venv/bin/python benchmarks/video_rss.py`` -> benchmarks/results/video_rss.{json,md}
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PATHS = (("tracker", "litemedsam"), ("memory", "litemedsam-memory"), ("sam2", "sam2-video"))


def square_video(path: Path, n: int, size: int = 512) -> Path:
    """A moving bright square on a dark frame (``n`` frames, ``size`` x ``size``), written once."""
    from scopeseg.video_io import write_video

    def frames():
        for t in range(n):
            f = np.full((size, size, 3), 40, np.uint8)
            x = 60 + (t * 3) % 300
            f[200:300, x : x + 100] = 220
            yield f

    if not path.is_file():
        write_video(path, frames(), fps=25)
    return path


def tiny_checkpoints(work: Path) -> dict[str, Path]:
    import torch

    from scopeseg.models import create_model
    from scopeseg.models.registry import model_entry

    out = {}
    for label, name in PATHS:
        torch.manual_seed(0)
        out[label] = work / f"tiny_{label}"
        if not (out[label] / "config.json").is_file():
            create_model(name, **model_entry(name).tiny).save_pretrained(out[label])
    return out


def peak_rss_run(cmd: list[str]) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of one process running ``cmd``: its ``VmHWM`` (the high-water mark of the
    process's own address space, reset at exec, unlike the rusage of a child forked from a large parent),
    read every 20 ms until it exits."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    hwm = 0
    while proc.poll() is None:
        try:
            with open(f"/proc/{proc.pid}/status") as fh:
                hwm = max(hwm, next(int(x.split()[1]) for x in fh if x.startswith("VmHWM")))
        except (OSError, StopIteration):
            pass
        time.sleep(0.02)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.read().decode()[-500:]}")
    return hwm / 1024, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", type=int, default=100)
    ap.add_argument("--large", type=int, default=2000)
    ap.add_argument("--work", default="/tmp/15/video_rss")
    ap.add_argument("--paths", default="tracker,memory,sam2")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    videos = {n: square_video(work / f"square_{n}.mp4", n) for n in (args.small, args.large)}
    ckpts = tiny_checkpoints(work)
    rows = []
    for label in args.paths.split(","):
        for n, video in videos.items():
            cmd = [str(ROOT / ".venv/bin/scopeseg"), "-q", "track", str(ckpts[label]), str(video),
                   str(work / f"out_{label}_{n}"), "prompt=f0:box:60,200,160,300", "--overwrite", "threads=2"]  # fmt: skip
            mb, sec = peak_rss_run(cmd)
            rows.append({"path": label, "frames": n, "peak_rss_mb": round(mb, 1), "seconds": round(sec, 1)})
            print(json.dumps(rows[-1]), flush=True)
            write(rows, args)  # each row as it comes: a timeout keeps what ran
    print(json.dumps(write(rows, args)))


def write(rows: list[dict], args) -> dict:
    """benchmarks/results/video_rss.{json,md}; returns the 2,000/100-frame peak RSS ratio per path."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from video_compare import cpu_line

    ratio = {}
    for label in args.paths.split(","):
        got = {r["frames"]: r["peak_rss_mb"] for r in rows if r["path"] == label}
        if args.small in got and args.large in got:
            ratio[label] = round(got[args.large] / got[args.small], 3)
    doc = {
        "cpu": cpu_line(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "rows": rows,
        "ratio_large_small": ratio,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "video_rss.json").write_text(json.dumps(doc, indent=2))
    lines = ["# Peak RSS of whole `scopeseg track` runs, 512x512 video, 100 vs 2,000 frames (tiny models)", "",
             f"CPU: {doc['cpu']['cpu']} ({' '.join(doc['cpu']['flags'])}), load {doc['cpu']['load_avg']:.1f}", "",
             "| path | frames | peak RSS MB | seconds |", "|---|---|---|---|"]  # fmt: skip
    lines += [f"| {r['path']} | {r['frames']} | {r['peak_rss_mb']} | {r['seconds']} |" for r in rows]
    lines += ["", "Peak RSS 2,000 / 100 frames: " + ", ".join(f"{k} {v:.3f}" for k, v in ratio.items()), ""]
    (RESULTS / "video_rss.md").write_text("\n".join(lines))
    return ratio


if __name__ == "__main__":
    main()
