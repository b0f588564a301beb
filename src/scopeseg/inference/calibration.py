"""Synthetic scope-like frames: the sample inputs of export checks and the int8 calibration images (no data).

Procedural frames (tissue texture, field-of-view circle, bright lesions, glare) span the value ranges an
encoder sees; pass real images instead (``calibration_images=``) when you have them.
"""

from __future__ import annotations

import numpy as np


def synthetic_frame(h: int, w: int, seed: int) -> np.ndarray:
    """One deterministic RGB uint8 frame: smooth texture, dark border, a few blobs and a glare spot."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32) + rng.uniform(60, 200, 3)
    for _ in range(5):
        f = rng.uniform(0.005, 0.08, 2)
        img += rng.uniform(5, 35, 3) * np.sin(f[0] * yy + f[1] * xx + rng.uniform(0, 6.3))[..., None]
    for _ in range(rng.integers(1, 4)):
        cy, cx, r = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w, rng.uniform(0.05, 0.2) * min(h, w)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] += rng.uniform(-60, 60, 3)
    gy, gx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
    img[(yy - gy) ** 2 + (xx - gx) ** 2 < (0.02 * min(h, w)) ** 2] = 255
    fov = ((yy - h / 2) / (0.6 * h)) ** 2 + ((xx - w / 2) / (0.6 * w)) ** 2 < 1
    img = img * fov[..., None] + rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def default_calibration_images(n: int = 8, size: tuple[int, int] = (384, 480)) -> list[np.ndarray]:
    """``n`` synthetic frames (alternating landscape / portrait / grey) for int8 calibration."""
    out = []
    for i in range(n):
        h, w = size if i % 2 == 0 else size[::-1]
        img = synthetic_frame(h, w, seed=1000 + i)
        if i % 4 == 3:
            img = np.repeat(img.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)
        out.append(img)
    return out
