"""Sim-to-real domain randomisation: per-video tissue palettes, fine tissue texture, thicker (tinted) tools.

Measured on real laparoscopic frames (``benchmarks/sim_to_real_ablation.py``): real tissue ranges from red
to grey-white and yellow (Endoscapes: HSV saturation ~57 vs ~144 here), carries fine texture (Laplacian
variance 126-868 vs ~19 here), and real tools reflect the tissue's colour and are thicker (95th-percentile
half-width 0.075-0.10 of the short side vs ~0.05). Each option draws from its own random stream, so with
every option at 0 the generator's output is exactly what it was before.
"""

from __future__ import annotations

import numpy as np

from .noise import Array, fbm

#: Rec. 601 luma weights (RGB), for desaturating the tissue
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def tissue_palette(rng: np.random.Generator, rgb: Array) -> Array:
    """A random per-video recolouring of the tissue canvas: desaturate, cast (grey-blue to yellow), darken."""
    lum = rgb @ LUMA
    sat = rng.uniform(0.15, 0.8)
    out = lum[..., None] + (rgb - lum[..., None]) * sat
    cast = np.array([rng.uniform(0.82, 1.05), rng.uniform(0.88, 1.06), rng.uniform(0.88, 1.22)], np.float32)
    out *= cast / float(cast @ LUMA) * rng.uniform(0.7, 1.05)
    return out.astype(np.float32)


def fine_texture(rng: np.random.Generator, h: int, w: int, amplitude: float) -> Array:
    """Multiplicative fine-grained texture (standard deviation ``amplitude / 4``) that moves with the tissue."""
    cells = max(h, w) / rng.uniform(2.5, 5.0)  # a feature every 2.5-5 px
    z = fbm(rng, h, w, cells, 2)
    z = np.clip((z - z.mean()) / max(float(z.std()), 1e-6), -3.0, 3.0)
    return (1.0 + 0.25 * amplitude * z).astype(np.float32)


def tool_width_factor(rng: np.random.Generator, share: float) -> float:
    """Width factor of one video's instruments: 1.3-2.2 (tools near the camera) in ``share`` of the videos."""
    if share <= 0 or rng.random() >= share:
        return 1.0
    return float(rng.uniform(1.3, 2.2))


class ToolLook:
    """How one video's instruments are altered: width factor and how much they reflect the tissue colour."""

    def __init__(self, rng: np.random.Generator, strength: float):
        self.on = rng.random() < strength
        self.width = rng.uniform(1.2, 2.0) if self.on else 1.0
        self.reflect = rng.uniform(0.25, 0.6) if self.on else 0.0

    def recolor(self, layer: Array, tint: Array) -> None:
        """Blend a premultiplied RGBA instrument layer towards the tissue colour (in place)."""
        if self.reflect <= 0:
            return
        rgb = layer[..., :3]
        lum = rgb @ LUMA
        rgb *= 1.0 - self.reflect
        rgb += self.reflect * lum[..., None] * (tint / max(float(tint @ LUMA), 1e-3))
