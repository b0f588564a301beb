"""Helpers for metric tests: golden files and NaN/inf-aware comparison."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

GOLDEN = Path(__file__).resolve().parent / "golden"
if str(GOLDEN) not in sys.path:
    sys.path.insert(0, str(GOLDEN))


def load_golden(name: str) -> dict:
    return json.loads((GOLDEN / name).read_text())


def same(a: float, b: float, rel: float = 1e-6, abs_: float = 1e-12) -> bool:
    """Equal within ``rel`` (NaN == NaN, inf == inf)."""
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= max(rel * max(abs(a), abs(b)), abs_)


def same_list(a, b, rel: float = 1e-6) -> bool:
    return len(a) == len(b) and all(same(x, y, rel) for x, y in zip(a, b))


def make_coco_pair(folder: Path, n_images: int = 8, seed: int = 0) -> tuple[Path, Path]:
    """A small COCO GT (RLE, non-contiguous category ids) and a results file with hits, misses and FPs."""
    import numpy as np
    from pycocotools import mask as mask_api

    rng = np.random.default_rng(seed)
    cats = [{"id": 1, "name": "grasper"}, {"id": 3, "name": "hook"}, {"id": 7, "name": "clipper"}]
    images, anns, dts = [], [], []
    aid = 1

    def rle(m):
        r = mask_api.encode(np.asfortranarray(m.astype(np.uint8)))
        r["counts"] = r["counts"].decode("ascii")
        return r

    for i in range(n_images):
        h, w = int(rng.integers(60, 100)), int(rng.integers(80, 120))
        images.append({"id": i + 1, "file_name": f"f{i:03d}.png", "height": h, "width": w})
        for _ in range(int(rng.integers(0, 4))):
            sz = int(rng.choice([6, 20, 40]))
            y, x = int(rng.integers(0, h - sz)), int(rng.integers(0, w - sz))
            m = np.zeros((h, w), bool)
            m[y : y + sz, x : x + sz] = True
            cat = int(rng.choice([1, 3, 7]))
            r = rle(m)
            anns.append(
                {
                    "id": aid,
                    "image_id": i + 1,
                    "category_id": cat,
                    "segmentation": r,
                    "area": float(m.sum()),
                    "bbox": [x, y, sz, sz],
                    "iscrowd": 0,
                }
            )
            aid += 1
            if rng.uniform() < 0.8:
                dy, dx = int(rng.integers(-3, 4)), int(rng.integers(-3, 4))
                pm = np.roll(m, (dy, dx), axis=(0, 1))
                pcat = cat if rng.uniform() < 0.85 else int(rng.choice([1, 3, 7]))
                dts.append(
                    {
                        "image_id": i + 1,
                        "category_id": pcat,
                        "segmentation": rle(pm),
                        "bbox": mask_api.toBbox(rle(pm)).tolist(),
                        "score": float(rng.uniform(0.3, 1)),
                    }
                )
        if rng.uniform() < 0.5:
            pm = np.zeros((h, w), bool)
            pm[5:15, 5:25] = True
            dts.append(
                {
                    "image_id": i + 1,
                    "category_id": int(rng.choice([1, 3, 7])),
                    "segmentation": rle(pm),
                    "bbox": [5.0, 5.0, 20.0, 10.0],
                    "score": float(rng.uniform(0, 0.6)),
                }
            )
    gt = {"images": images, "annotations": anns, "categories": cats}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gt.json").write_text(json.dumps(gt))
    (folder / "dt.json").write_text(json.dumps(dts))
    return folder / "gt.json", folder / "dt.json"
