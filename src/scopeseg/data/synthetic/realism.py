"""Sim-to-real domain randomisation: tissue palettes, organ regions, fine texture, thicker or insulated tools.

Measured on real laparoscopic frames (``benchmarks/sim_to_real_ablation.py``): real tissue ranges from red
to grey-white and yellow (Endoscapes: HSV saturation ~57 vs ~144 here), carries fine texture (Laplacian
variance 126-868 vs ~19 here), and real tools reflect the tissue's colour and are thicker (95th-percentile
half-width 0.075-0.10 of the short side vs ~0.05). Each option draws from its own random stream, so with
every option at 0 the generator's output is exactly what it was before.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .categories import InstrumentStyle
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


#: base colours (RGB 0..1) of the organs a laparoscope sees beside red tissue: gallbladder (blue-grey to
#: grey-green), peritoneum and fascia (pale pink-white), fat (yellow-white), liver (dark red-brown)
ORGAN_COLORS = np.array(
    [
        [0.58, 0.62, 0.72],
        [0.52, 0.6, 0.52],
        [0.82, 0.74, 0.72],
        [0.86, 0.8, 0.6],
        [0.38, 0.14, 0.11],
    ],
    np.float32,
)


def organ_regions(rng: np.random.Generator, rgb: Array, count: int = 2) -> Array:
    """Large smooth regions of other organs' colours over the tissue canvas, keeping its (blurred) shading.

    Real laparoscopic frames show grey-white gallbladder, pale fascia and dark liver beside red tissue; with
    red tissue only, a model learns "grey = instrument" (it marks Endoscapes' gallbladder as a tool).
    """
    import cv2

    from .noise import smoothstep

    h, w = rgb.shape[:2]
    lum = cv2.GaussianBlur(rgb @ LUMA, (0, 0), 1.5)  # organs are smoother than the textured tissue
    shading = np.clip(lum / max(float(lum.mean()), 1e-3), 0.3, 2.5) ** 0.8
    out = rgb.copy()
    for _ in range(count):
        colour = ORGAN_COLORS[int(rng.integers(len(ORGAN_COLORS)))] * rng.uniform(0.85, 1.15, 3)
        z = fbm(rng, h, w, rng.uniform(1.2, 2.2), 3)
        lo = float(np.quantile(z, rng.uniform(0.5, 0.8)))  # the region covers 20-50 % of the canvas
        a = smoothstep(lo, lo + rng.uniform(0.02, 0.08), z)[..., None]
        out = out * (1.0 - a) + (colour * shading[..., None]) * a
    return out.astype(np.float32)


def tool_width_factor(rng: np.random.Generator, share: float) -> float:
    """Width factor of one video's instruments: 1.3-2.2 (tools near the camera) in ``share`` of the videos."""
    if share <= 0 or rng.random() >= share:
        return 1.0
    return float(rng.uniform(1.3, 2.2))


def insulated_style(rng: np.random.Generator, style: InstrumentStyle) -> InstrumentStyle:
    """An electrosurgical look for one instrument: matte black shaft, long matte white-grey sleeve, conical tip.

    Real cholecystectomy tools near the camera (Endoscapes' hook and clip applier) are insulated: a dark shaft
    ending in a light plastic sleeve with little metal in view; the stock styles are all glossy metal.
    """
    dark, light = rng.uniform(0.03, 0.1), rng.uniform(0.62, 0.9)
    warm = rng.uniform(0.97, 1.05)
    return replace(
        style,
        shaft=(dark, dark, dark * 1.05),
        gloss=float(rng.uniform(0.12, 0.3)),
        head=(light * warm, light, light * (2.0 - warm)),
        head_len=float(rng.uniform(3.0, 6.0)),
        band=None,
        jaws=False,
        cone=True,
        thin=1.0,
    )


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
