"""Shared builders of the archive tests: a tiny model, an archive of synthetic videos, tree comparison."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

from scopeseg.cli import main
from scopeseg.models import create_model, save_pretrained


def tiny_model(out: Path) -> Path:
    """An untrained one-class UNet with a fixed seed (its masks are deterministic, which is all we need)."""
    torch.manual_seed(0)
    m = create_model("unet-effb0", classes=["tool"]).eval()
    m.config.update(input_size=[48, 64], threshold=0.5)
    return save_pretrained(m, out)


def video_archive(out: Path, videos: int, frames: int, size: str = "48x64", corrupt: bool = False) -> Path:
    """A folder of synthetic mp4 videos (``scopeseg synth``), optionally with one corrupt video."""
    data = out.parent / f"{out.name}-synth"
    assert main(["-q", "synth", str(data), f"videos={videos}", f"frames={frames}", f"size={size}"]) == 0
    shutil.copytree(data / "videos", out)
    if corrupt:
        (out / "zz_broken.mp4").write_bytes(np.random.default_rng(0).bytes(4000))
    return out


def tree(root: Path, skip: tuple[str, ...] = ("manifest.json",)) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes), hidden leftovers included."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in skip
    }
