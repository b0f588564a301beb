"""Shared fixtures: offline hub, a tiny video data set (dark discs moving over noisy tissue)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def make_disc_videos(
    out: Path,
    videos: int = 4,
    frames: int = 6,
    size: tuple[int, int] = (64, 96),
    seed: int = 0,
    two_classes: bool = False,
) -> Path:
    """Write a canonical data set of moving dark discs (category 'tool', optionally a bright 'blob')."""
    from scopeseg.data.coco import CocoDataset
    from scopeseg.io import write_image

    h, w = size
    ds = CocoDataset(root=out)
    ds.add_category("tool", id=1, supercategory="instrument")
    if two_classes:
        ds.add_category("blob", id=2, supercategory="tissue")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    for v in range(videos):
        vid = ds.add_video(f"v{v}")
        cx, cy = rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h
        for f in range(frames):
            img = (rng.random((h, w, 3)) * 50 + np.array([150, 60, 60])).astype(np.uint8)
            cx, cy = cx + rng.normal(0, 2), cy + rng.normal(0, 2)
            m = (xx - cx) ** 2 + (yy - cy) ** 2 < (0.15 * h) ** 2
            img[m] = [40, 40, 45]
            fn = f"frames/v{v}/{f:05d}.png"
            write_image(out / fn, img)
            iid = ds.add_image(fn, h, w, video_id=vid, frame_index=f)
            ds.add_annotation(iid, 1, m)
            if two_classes:
                b = (xx - (w - cx)) ** 2 + (yy - (h - cy)) ** 2 < (0.1 * h) ** 2
                b &= ~m
                img[b] = [240, 230, 120]
                write_image(out / fn, img)
                ds.add_annotation(iid, 2, b)
    ds.save(out)
    return out


@pytest.fixture(scope="session")
def disc_data(tmp_path_factory) -> Path:
    return make_disc_videos(tmp_path_factory.mktemp("discs"))


@pytest.fixture(scope="session")
def disc_data_2cls(tmp_path_factory) -> Path:
    return make_disc_videos(tmp_path_factory.mktemp("discs2"), two_classes=True, seed=1)


def run_ddp_train(overrides: list[str], out: Path, epochs: int) -> Path:
    """``scopeseg train`` under Lightning DDP with two CPU processes (gloo), as a user runs it: a real subprocess,
    since Lightning relaunches the command for rank 1. Checks every epoch logged a finite loss (rank 0) and the
    run recorded the strategy; returns the run folder."""
    import csv
    import subprocess
    import sys

    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    cmd = [sys.executable, "-m", "scopeseg.cli", "-q", "train", *overrides, f"out={out}", f"epochs={epochs}",
           "accelerator=cpu", "devices=2", "strategy=ddp"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = list(csv.DictReader((out / "logs" / "csv" / "metrics.csv").open()))
    losses = [float(r["train_loss_epoch"]) for r in rows if r.get("train_loss_epoch")]
    assert len(losses) == epochs and all(np.isfinite(losses)), losses
    hp = (out / "logs" / "csv" / "hparams.yaml").read_text()
    assert "devices: 2" in hp and "strategy: ddp" in hp
    return out
