"""Plain helpers for the format converter tests (fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[4] / "shared" / "data"


def shared(name: str) -> Path:
    """A folder of ../shared/data, or skip the test when it is absent."""
    p = SHARED / name
    if not p.is_dir():
        pytest.skip(f"{p} not available")
    return p


def rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def write(path: Path, arr: np.ndarray) -> Path:
    from scopeseg.io import write_image

    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, arr)
    return path


def blobs(h: int, w: int, seed: int, n: int = 3, k: int = 3) -> np.ndarray:
    """Label map with ``n`` rectangles of classes 1..k (random positions; some overlap)."""
    rng = np.random.default_rng(seed)
    lab = np.zeros((h, w), np.uint8)
    for i in range(n):
        y, x = rng.integers(0, h - 4), rng.integers(0, w - 4)
        lab[y : y + rng.integers(3, h // 2 + 3), x : x + rng.integers(3, w // 2 + 3)] = 1 + i % k
    return lab


def coco_masks(path: Path) -> dict[str, np.ndarray]:
    """file name -> label map rasterised from a canonical data set (category id per pixel, later wins)."""
    from scopeseg.data.coco import CocoDataset
    from scopeseg.data.formats._base import semantic_label_map

    ds = CocoDataset.load(path)
    ident = {c: c for c in ds.categories}
    return {ds.images[i]["file_name"]: semantic_label_map(ds, i, ident, dtype=np.int32) for i in ds.images}


def assert_valid(path: Path) -> None:
    """The converted data set passes ``validate`` with no error (images checked too)."""
    from scopeseg.data.validate import validate

    rep = validate(path)
    assert rep.ok, [p.to_dict() for p in rep.errors][:3]
