"""Procedural endoscopy-like videos with exact instance masks: the embedded default data set.

Every video is rendered from its own seed, derived from the data set seed and the video's index (video k is
the same whatever the number of videos): a tissue canvas (multi-octave noise, folds, vessels, wet glints)
warped by a smooth camera path, a circular or octagonal field of view with vignette, articulated instruments
(tapered shaft, wrist, two jaws) on smooth trajectories from the border, optional polyps, smoke and lighting
drift. An instance mask is exactly its visible pixels: alpha >= 0.5 after motion blur, minus the instruments
in front of it, inside the field of view.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from ..config import BaseConfig, parse_size, register_config
from ..errors import DataError
from ..io import atomic_dir
from . import rle as rle_utils
from .coco import ANNOTATION_FILE, CocoDataset

log = logging.getLogger(__name__)

Array = np.ndarray
Color = tuple[float, float, float]


# ---------------------------------------------------------------------------------------------- categories
@dataclass(frozen=True)
class InstrumentStyle:
    """How one instrument type looks: colours (RGB 0..1), sizes in wrist half-widths, jaw behaviour."""

    shaft: Color
    gloss: float
    head: Color
    jaw: Color
    jaw_len: float = 2.5
    jaw_width: float = 0.5
    jaw_curve: float = 0.0
    max_open: float = 40.0  # degrees
    head_len: float = 1.4
    fenestrated: bool = False
    teeth: bool = False
    band: Color | None = None
    jaws: bool = True
    thin: float = 1.0
    same_side_curve: bool = False


#: instrument category name -> look; ids follow this order (1-based), then ``polyp``
INSTRUMENT_STYLES: dict[str, InstrumentStyle] = {
    "grasper": InstrumentStyle(
        shaft=(0.07, 0.07, 0.08),
        gloss=0.55,
        head=(0.62, 0.63, 0.66),
        jaw=(0.6, 0.61, 0.64),
        jaw_len=2.8,
        jaw_width=0.7,
        max_open=50,
        head_len=1.4,
        fenestrated=True,
        teeth=True,
    ),
    "bipolar_forceps": InstrumentStyle(
        shaft=(0.2, 0.21, 0.24),
        gloss=0.6,
        head=(0.55, 0.56, 0.6),
        jaw=(0.74, 0.74, 0.76),
        jaw_len=3.2,
        jaw_width=0.34,
        jaw_curve=0.06,
        max_open=34,
        head_len=1.8,
        band=(0.12, 0.28, 0.78),
    ),
    "needle_driver": InstrumentStyle(
        shaft=(0.55, 0.56, 0.58),
        gloss=0.9,
        head=(0.6, 0.6, 0.63),
        jaw=(0.3, 0.3, 0.33),
        jaw_len=1.7,
        jaw_width=0.62,
        max_open=28,
        head_len=1.2,
        teeth=True,
    ),
    "scissors": InstrumentStyle(
        shaft=(0.06, 0.06, 0.06),
        gloss=0.5,
        head=(0.72, 0.6, 0.34),
        jaw=(0.72, 0.72, 0.75),
        jaw_len=2.5,
        jaw_width=0.45,
        jaw_curve=0.22,
        max_open=40,
        head_len=1.0,
        same_side_curve=True,
    ),
    "clip_applier": InstrumentStyle(
        shaft=(0.42, 0.43, 0.46),
        gloss=0.8,
        head=(0.46, 0.47, 0.5),
        jaw=(0.64, 0.64, 0.67),
        jaw_len=2.1,
        jaw_width=0.58,
        max_open=14,
        head_len=2.0,
        band=(0.75, 0.6, 0.25),
    ),
    "suction_irrigator": InstrumentStyle(
        shaft=(0.66, 0.67, 0.7),
        gloss=1.0,
        head=(0.66, 0.67, 0.7),
        jaw=(0.0, 0.0, 0.0),
        head_len=2.4,
        jaws=False,
        thin=0.62,
    ),
}

_CATEGORY_COLORS = [
    (0, 200, 255),
    (255, 200, 0),
    (160, 80, 255),
    (255, 90, 40),
    (60, 220, 90),
    (255, 60, 200),
    (255, 255, 120),
]


def categories() -> list[dict]:
    """The category table of synthetic data: instruments (ids 1..6 in ``INSTRUMENT_STYLES`` order), polyp."""
    names = [*INSTRUMENT_STYLES, "polyp"]
    return [
        {
            "id": i + 1,
            "name": n,
            "supercategory": "tissue" if n == "polyp" else "instrument",
            "color": list(_CATEGORY_COLORS[i % len(_CATEGORY_COLORS)]),
        }
        for i, n in enumerate(names)
    ]


CATEGORY_IDS: dict[str, int] = {c["name"]: c["id"] for c in categories()}


# ---------------------------------------------------------------------------------------------- config
@register_config("synth")
class SynthConfig(BaseConfig):
    """Options of the synthetic scope-video generator (``scopeseg synth``)."""

    videos: int = Field(8, ge=1)
    frames: int = Field(60, ge=1)
    size: tuple[int, int] = (480, 736)
    seed: int = Field(0, ge=0)
    difficulty: float = Field(0.5, ge=0.0, le=1.0)
    polyp_prob: float = Field(0.35, ge=0.0, le=1.0)
    max_instruments: int = Field(3, ge=0, le=6)
    fps: float = Field(25.0, gt=0)
    image_format: Literal["jpg", "png"] = "jpg"
    jpeg_quality: int = Field(92, ge=1, le=100)
    splits: dict[str, float] | None = None

    @field_validator("size", mode="before")
    @classmethod
    def _size(cls, v):
        size = parse_size(v)
        if min(size) < 32:
            raise ValueError(f"size {v!r} is too small (each side must be >= 32)")
        return size


def video_seed(seed: int, index: int) -> int:
    """Seed of video ``index`` of a data set with ``seed``: independent of how many videos are made."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def video_name(index: int) -> str:
    return f"vid{index:03d}"


# ---------------------------------------------------------------------------------------------- helpers
def _fbm(rng: np.random.Generator, h: int, w: int, cells: float, octaves: int, gain: float = 0.5) -> Array:
    """Multi-octave value noise in [0, 1] (random grids upsampled bicubically and summed)."""
    import cv2

    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        c = cells * 2**o
        gh, gw = max(2, int(round(c * h / max(h, w))) + 2), max(2, int(round(c * w / max(h, w))) + 2)
        grid = rng.random((gh, gw), dtype=np.float32)
        out += amp * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= gain
    out /= total
    lo, hi = float(out.min()), float(out.max())
    return (out - lo) / max(hi - lo, 1e-6)


def _periodic_noise(rng: np.random.Generator, h: int, w: int, cutoff: float) -> Array:
    """Tileable smooth noise in [0, 1]: white noise low-passed in the Fourier domain (wraps at the borders)."""
    white = rng.standard_normal((h, w))
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[None, :]
    spec = np.fft.fft2(white) * np.exp(-(fx**2 + fy**2) / (2 * cutoff**2))
    out = np.real(np.fft.ifft2(spec)).astype(np.float32)
    lo, hi = float(out.min()), float(out.max())
    return (out - lo) / max(hi - lo, 1e-6)


def _signal(
    rng: np.random.Generator, periods: tuple[float, float], terms: int = 2
) -> Callable[[float], float]:
    """A smooth random function of time (frames) with values in about [-1, 1]: a sum of sinusoids."""
    per = rng.uniform(*periods, size=terms)
    phase = rng.uniform(0, 2 * np.pi, size=terms)
    weight = rng.uniform(0.5, 1.0, size=terms)
    weight /= weight.sum()

    def f(t: float) -> float:
        return float(np.sum(weight * np.sin(2 * np.pi * t / per + phase)))

    return f


def _smoothstep(e0: float, e1: float, x):
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _cylinder_rgb(n: Array, base: Color, gloss: float, tint: Array, glint: Array | float = 1.0) -> Array:
    """Metal/plastic cylinder shading across its width: ``n`` in [-1, 1] -> RGB (may exceed 1 = glare)."""
    d = np.sqrt(np.clip(1.0 - n * n, 0.0, 1.0))
    diffuse = 0.22 + 0.78 * d
    spec = gloss * glint * (np.exp(-(((n - 0.32) / 0.14) ** 2)) + 0.3 * np.exp(-(((n + 0.6) / 0.09) ** 2)))
    rgb = np.asarray(base, np.float32) * diffuse[..., None] + tint * (0.22 * (1.0 - d))[..., None]
    return (rgb + spec[..., None]).astype(np.float32)


def _premultiply(rgb: Array, alpha: Array) -> Array:
    return np.concatenate([rgb * alpha[..., None], alpha[..., None]], axis=-1).astype(np.float32)


# ---------------------------------------------------------------------------------------------- field of view
class _FieldOfView:
    """Circular or octagonal scope aperture: signed distance, binary mask, vignette, border points."""

    def __init__(self, rng: np.random.Generator, h: int, w: int, difficulty: float):
        self.h, self.w = h, w
        self.cx = w / 2 + rng.normal(0, 0.015 * w)
        self.cy = h / 2 + rng.normal(0, 0.015 * h)
        self.kind = "circle" if rng.random() < 0.6 else "octagon"
        if self.kind == "circle":
            self.r = min(h * rng.uniform(0.5, 0.72), 0.49 * w)
            self.a = self.b = self.r
        else:
            self.a = w * rng.uniform(0.4, 0.5)
            self.b = h * rng.uniform(0.46, 0.56)
            self.d = rng.uniform(0.74, 0.88) * (self.a + self.b)
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        sd = self.signed_distance(xs, ys)
        self.alpha = np.clip(sd + 0.5, 0.0, 1.0).astype(np.float32)
        self.mask = sd >= 0.0
        rho2 = ((xs - self.cx) / self.a) ** 2 + ((ys - self.cy) / self.b) ** 2
        strength = 0.25 + 0.45 * difficulty
        vig = np.clip(1.0 - strength * rho2**1.3, 0.05, 1.0) * self.alpha
        self.vignette = np.repeat(vig[..., None], 3, axis=2).astype(np.float32)

    def signed_distance(self, x, y):
        """Distance to the aperture border in pixels, positive inside."""
        dx, dy = np.abs(x - self.cx), np.abs(y - self.cy)
        if self.kind == "circle":
            return self.r - np.sqrt(dx * dx + dy * dy)
        return np.minimum(np.minimum(self.a - dx, self.b - dy), (self.d - dx - dy) / math.sqrt(2.0))

    def border_point(self, angle: float) -> np.ndarray:
        """Where the ray from the centre at ``angle`` leaves the aperture (bisection on the distance)."""
        c, s = math.cos(angle), math.sin(angle)
        lo, hi = 0.0, float(self.h + self.w)
        for _ in range(30):
            mid = 0.5 * (lo + hi)
            if self.signed_distance(self.cx + c * mid, self.cy + s * mid) >= 0:
                lo = mid
            else:
                hi = mid
        return np.array([self.cx + c * lo, self.cy + s * lo])


# ---------------------------------------------------------------------------------------------- tissue
def _vessels(rng: np.random.Generator, h: int, w: int, scale: float, density: float) -> Array:
    """Branching dark vessels as a [0, 1] map (random walks drawn anti-aliased, thinning at each branch)."""
    import cv2

    canvas = np.zeros((h, w), np.uint8)
    step = 0.012 * scale
    roots = max(2, int(density * h * w / (0.25 * scale * scale)))
    stack = [
        (
            rng.uniform(0, w),
            rng.uniform(0, h),
            rng.uniform(0, 2 * np.pi),
            int(rng.integers(2, 5)),
            rng.uniform(0.5, 1),
        )
        for _ in range(roots)
    ]
    while stack:
        x, y, ang, thick, shade = stack.pop()
        pts = [(x, y)]
        for _ in range(int(rng.integers(12, 40))):
            ang += rng.normal(0, 0.28)
            x += step * math.cos(ang)
            y += step * math.sin(ang)
            pts.append((x, y))
            if thick > 1 and rng.random() < 0.07 and len(stack) < 400:
                stack.append(
                    (x, y, ang + rng.choice([-1, 1]) * rng.uniform(0.4, 1.0), thick - 1, shade * 0.8)
                )
        poly = np.round(np.array(pts) * 16).astype(np.int32)
        cv2.polylines(canvas, [poly], False, int(255 * shade), thickness=thick, lineType=cv2.LINE_AA, shift=4)
    out = canvas.astype(np.float32) / 255.0
    return cv2.GaussianBlur(out, (0, 0), 0.7)


class _Tissue:
    """Tissue canvas larger than the frame, sampled per frame through a smooth camera warp."""

    def __init__(
        self, rng: np.random.Generator, h: int, w: int, difficulty: float, polyp: np.random.Generator | None
    ):
        import cv2

        self.h, self.w = h, w
        scale = float(min(h, w))
        self.margin = (int(0.14 * h) + 8, int(0.14 * w) + 8)
        ch, cw = h + 2 * self.margin[0], w + 2 * self.margin[1]
        self.ch, self.cw = ch, cw
        # colours: deep red, pink, light pink; optional fat
        deep = np.array(
            [rng.uniform(0.45, 0.62), rng.uniform(0.08, 0.16), rng.uniform(0.1, 0.18)], np.float32
        )
        light = np.array(
            [rng.uniform(0.82, 0.95), rng.uniform(0.42, 0.6), rng.uniform(0.42, 0.58)], np.float32
        )
        n_col = _fbm(rng, ch, cw, 2.0, 4)
        n_fold = _fbm(rng, ch, cw, 2.5, 4)
        n_ridge = _fbm(rng, ch, cw, 2.5, 3)
        n_fine = _fbm(rng, ch, cw, 40.0, 2)
        # relief: lit from one side, normalised so the shading stays gentle whatever the size
        gx = cv2.Sobel(n_fold, cv2.CV_32F, 1, 0, ksize=5)
        gy = cv2.Sobel(n_fold, cv2.CV_32F, 0, 1, ksize=5)
        la = rng.uniform(0, 2 * np.pi)
        relief = gx * math.cos(la) + gy * math.sin(la)
        relief /= max(float(relief.std()), 1e-6)
        # folds: dark creases along an iso-line of low-frequency noise, with a lit lip beside them
        crease = np.exp(-(((n_ridge - 0.5) / 0.04) ** 2))
        lip = np.exp(-(((n_ridge - 0.56) / 0.05) ** 2))
        n_mid = _fbm(rng, ch, cw, 12.0, 3)
        shade = np.clip(1.0 + 0.14 * relief - 0.35 * crease + 0.15 * lip + 0.25 * (n_mid - 0.5), 0.45, 1.35)
        mix = _smoothstep(0.15, 0.85, n_col)[..., None]
        rgb = deep * (1 - mix) + light * mix
        if rng.random() < 0.4:  # yellow fat patches
            fat = _smoothstep(0.68, 0.78, _fbm(rng, ch, cw, 2.5, 3))[..., None] * rng.uniform(0.6, 1.0)
            rgb = (
                rgb * (1 - fat)
                + np.array([0.92, 0.78, 0.5], np.float32) * (0.85 + 0.3 * n_fine[..., None]) * fat
            )
        rgb *= (shade * (0.9 + 0.2 * n_fine))[..., None]
        ves = _vessels(rng, ch, cw, scale, rng.uniform(0.6, 1.4))
        rgb *= 1.0 - ves[..., None] * np.array([0.3, 0.72, 0.66], np.float32) * rng.uniform(0.6, 0.9)
        self.mean_color = rgb.reshape(-1, 3).mean(0).astype(np.float32)
        # wet glints: small bright ellipses, denser where the surface faces the light
        spec = np.zeros((ch, cw), np.float32)
        # candidates are drawn whatever the difficulty (it only thins them), so the scene stays the same
        n_max = int((ch * cw) / 300)
        xs, ys = rng.uniform(0, cw, n_max), rng.uniform(0, ch, n_max)
        u, big = rng.random(n_max), rng.random(n_max) < 0.04
        ax = np.where(big, rng.uniform(3, 10, n_max), rng.uniform(0.8, 3.5, n_max))
        ratio, rot, val = (
            rng.uniform(0.3, 1.0, n_max),
            rng.uniform(0, 180, n_max),
            rng.uniform(0.6, 1.0, n_max),
        )
        wet = _fbm(rng, ch, cw, 4.0, 2)
        iy, ix = ys.astype(int), xs.astype(int)
        lit = shade[iy, ix] + 0.6 * wet[iy, ix]
        keep = u < np.clip((lit - 1.4) * 4.0, 0.002, 1.0) * (0.35 + 0.9 * difficulty) / 1.25
        for i in np.nonzero(keep)[0]:
            axes = (int(round(ax[i] * 16)), int(round(ax[i] * ratio[i] * 16)))
            center = (int(round(xs[i] * 16)), int(round(ys[i] * 16)))
            cv2.ellipse(spec, center, axes, float(rot[i]), 0, 360, float(val[i]), -1, cv2.LINE_AA, 4)
        spec = cv2.GaussianBlur(spec, (0, 0), 1.0)
        self.polyp_alpha = None
        if polyp is not None:
            rgb, spec = self._add_polyp(polyp, rgb, spec, scale)
        spec *= 0.45 + 0.9 * difficulty
        rgb += spec[..., None] * (1.25 - rgb)  # glints are baked into the canvas (they move with the tissue)
        self.rgb = np.ascontiguousarray(rgb, np.float32)
        # camera path: pan, roll, zoom
        self.pan_x, self.pan_y = _signal(rng, (90, 260)), _signal(rng, (90, 260))
        self.rot, self.zoom = _signal(rng, (120, 300)), _signal(rng, (100, 260))
        self.rot_amp = 0.05 + 0.06 * difficulty

    def _add_polyp(
        self, rng: np.random.Generator, rgb: Array, spec: Array, scale: float
    ) -> tuple[Array, Array]:
        """A raised blob with dome shading, rim shadow and a glint; its alpha is warped with the canvas."""
        r = rng.uniform(0.05, 0.13) * scale
        cx = self.cw / 2 + rng.uniform(-0.28, 0.28) * self.w
        cy = self.ch / 2 + rng.uniform(-0.28, 0.28) * self.h
        ys, xs = np.mgrid[0 : self.ch, 0 : self.cw].astype(np.float32)
        dx, dy = xs - cx, ys - cy
        theta = np.arctan2(dy, dx)
        rr = np.full_like(theta, r)
        for k in range(2, 6):
            rr += r * rng.uniform(0.0, 0.12 / k * 2) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
        dist = np.sqrt(dx * dx + dy * dy)
        alpha = np.clip(rr - dist + 0.5, 0.0, 1.0).astype(np.float32)
        dn = np.clip(dist / rr, 0, 1)
        dome = np.sqrt(1.0 - dn**2)
        la = rng.uniform(0, 2 * np.pi)
        facing = np.clip((dx * math.cos(la) + dy * math.sin(la)) / np.maximum(rr, 1), -1, 1)
        col = np.array([rng.uniform(0.85, 1.0), rng.uniform(0.45, 0.62), rng.uniform(0.4, 0.55)], np.float32)
        tex = 0.8 + 0.4 * _fbm(rng, self.ch, self.cw, 50.0, 2)
        polyp_rgb = (0.75 * col + 0.25 * rgb) * ((0.5 + 0.6 * dome + 0.3 * facing * dn) * tex)[..., None]
        outside = np.clip(dist - rr, 0, None)
        shadow = 0.6 * np.exp(-outside / (0.15 * r)) * np.clip(0.55 - 0.6 * facing, 0, 1) * (1 - alpha)
        rgb = rgb * (1 - shadow)[..., None]
        rgb = rgb * (1 - alpha[..., None]) + polyp_rgb * alpha[..., None]
        g = np.exp(
            -(((dx + 0.35 * r * math.cos(la)) ** 2 + (dy + 0.35 * r * math.sin(la)) ** 2) / (0.02 * r * r))
        )
        spec = np.maximum(spec, 0.9 * g.astype(np.float32) * alpha)
        self.polyp_alpha = alpha
        return rgb, spec

    def sample(self, t: int) -> tuple[Array, Array | None]:
        """(RGB, polyp alpha or None) of frame ``t`` through the camera warp."""
        import cv2

        z = 1.0 + 0.05 * self.zoom(t)
        a = self.rot_amp * self.rot(t)
        ca, sa = math.cos(a) / z, math.sin(a) / z
        tx = self.cw / 2 + 0.75 * self.margin[1] * self.pan_x(t)
        ty = self.ch / 2 + 0.75 * self.margin[0] * self.pan_y(t)
        fx, fy = self.w / 2, self.h / 2
        m = np.array([[ca, -sa, tx - ca * fx + sa * fy], [sa, ca, ty - sa * fx - ca * fy]], np.float32)
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        rgb = cv2.warpAffine(self.rgb, m, (self.w, self.h), flags=flags, borderMode=cv2.BORDER_REFLECT_101)
        if self.polyp_alpha is None:
            return rgb, None
        return rgb, cv2.warpAffine(self.polyp_alpha, m, (self.w, self.h), flags=flags, borderValue=0)


# ---------------------------------------------------------------------------------------------- instruments
def _affine(angle: float, scale: float, origin: np.ndarray, anchor: tuple[float, float]) -> Array:
    """2x3 matrix placing sprite pixel ``anchor`` at ``origin``, rotated by ``angle`` and scaled."""
    c, s = math.cos(angle) * scale, math.sin(angle) * scale
    ax, ay = anchor
    return np.array([[c, -s, origin[0] - c * ax + s * ay], [s, c, origin[1] - s * ax - c * ay]], np.float32)


def _over(dst: Array, src: Array) -> None:
    """Premultiplied RGBA ``src`` over ``dst`` in place."""
    dst *= 1.0 - src[..., 3:4]
    dst += src


def _paste_affine(layer: Array, sprite: Array, m: Array) -> None:
    """Warp a premultiplied sprite by ``m`` (layer coordinates) and composite it over ``layer``."""
    import cv2

    sh, sw = sprite.shape[:2]
    corners = np.array([[0, 0, 1], [sw, 0, 1], [0, sh, 1], [sw, sh, 1]], np.float32) @ m.T
    x0 = max(int(math.floor(corners[:, 0].min())) - 1, 0)
    y0 = max(int(math.floor(corners[:, 1].min())) - 1, 0)
    x1 = min(int(math.ceil(corners[:, 0].max())) + 2, layer.shape[1])
    y1 = min(int(math.ceil(corners[:, 1].max())) + 2, layer.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    mm = m.copy()
    mm[:, 2] -= (x0, y0)
    warped = cv2.warpAffine(sprite, mm, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderValue=0)
    _over(layer[y0:y1, x0:x1], warped)


def _motion_blur(layer: Array, dx: float, dy: float) -> Array:
    """Average of 2^n shifted copies along (dx, dy) (repeated halving), centred on the current position."""
    import cv2

    n = min(4, int(math.ceil(math.log2(max(abs(dx), abs(dy)) + 1.0))))
    h, w = layer.shape[:2]

    def shift(a: Array, sx: float, sy: float) -> Array:
        m = np.array([[1, 0, sx], [0, 1, sy]], np.float32)
        return cv2.warpAffine(a, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    k = 0.5 * (1.0 - 0.5**n)
    out = shift(layer, -dx * k, -dy * k)
    step = 0.5
    for _ in range(n):
        out = 0.5 * (out + shift(out, dx * step, dy * step))
        step *= 0.5
    return out


class _Instrument:
    """One articulated instrument: pre-rendered shaft strip, wrist and jaw sprites placed per frame."""

    STRIP_LEN = 512
    STRIP_HALF = 24
    STRIP_PAD = 2

    def __init__(
        self,
        rng,
        style_name: str,
        fov: _FieldOfView,
        angle: float,
        difficulty: float,
        tint: Array,
        scale: float,
    ):
        self.name = style_name
        self.style = st = INSTRUMENT_STYLES[style_name]
        self.category_id = CATEGORY_IDS[style_name]
        self.fov = fov
        self.hw = rng.uniform(0.045, 0.07) * scale * st.thin  # wrist half-width at nominal depth (px)
        self.taper = rng.uniform(0.015, 0.045) * st.thin
        self.angle0 = angle
        self.angle_sig = _signal(rng, (70, 180))
        self.angle_amp = rng.uniform(0.1, 0.3)
        self.dev0 = rng.uniform(-0.35, 0.35)
        self.dev_sig = _signal(rng, (50, 140))
        self.depth0 = rng.uniform(0.3, 0.65)
        self.depth_sig = _signal(rng, (50, 150))
        self.open_sig = _signal(rng, (25, 70))
        self.roll_sig = _signal(rng, (60, 200))
        # a third of the instruments enter through the border during the first frames (drawn whatever
        # the number of frames, so a longer video starts with the same frames)
        enters, t0, dur = rng.random() < 0.35, rng.uniform(-6.0, 36.0), rng.uniform(8.0, 30.0)
        self.enter_at = (t0, dur) if enters else None
        self.exposure = 0.3 + 1.4 * difficulty
        tint = tint * rng.uniform(0.8, 1.2)
        jitter = rng.uniform(0.9, 1.1)
        self.strip = self._strip(rng, tint, jitter)
        self.head = self._head(rng, tint, jitter)
        self.jaws = self._jaws(tint, jitter) if st.jaws else []

    # ---- sprites (premultiplied RGBA float32, drawn along +x)
    def _strip(self, rng, tint, jitter) -> Array:
        st = self.style
        hs = self.STRIP_HALF
        rows = np.arange(2 * (hs + self.STRIP_PAD), dtype=np.float32) + 0.5 - (hs + self.STRIP_PAD)
        n = np.clip(rows / hs, -1, 1)
        brushed = (0.85 + 0.3 * _fbm(rng, 1, self.STRIP_LEN, 24.0, 2)[0]).astype(np.float32)
        glint = np.ones((len(rows), self.STRIP_LEN), np.float32) * brushed
        rgb = _cylinder_rgb(
            np.repeat(n[:, None], self.STRIP_LEN, 1),
            tuple(np.array(st.shaft) * jitter),
            st.gloss,
            tint,
            glint,
        )
        for _ in range(int(rng.integers(2, 6))):  # sharp glints along the highlight line
            gx, gy = rng.uniform(0.3, 1.0) * self.STRIP_LEN, hs * (0.32 + rng.normal(0, 0.05))
            cols = np.arange(self.STRIP_LEN, dtype=np.float32)[None, :]
            spot = np.exp(-(((cols - gx) / rng.uniform(4, 14)) ** 2) - ((rows[:, None] - gy) / 2.5) ** 2)
            rgb += (st.gloss * rng.uniform(0.6, 1.2) * spot)[..., None]
        if st.band is not None:  # coloured insulation ring near the distal end
            rgb[:, -int(0.06 * self.STRIP_LEN) :] = _cylinder_rgb(
                np.repeat(n[:, None], int(0.06 * self.STRIP_LEN), 1), st.band, 0.5, tint
            )
        alpha = np.clip(hs - np.abs(rows) + 0.5, 0, 1)[:, None] * np.ones((1, self.STRIP_LEN), np.float32)
        return _premultiply(rgb, alpha)

    def _head(self, rng, tint, jitter) -> Array:
        st = self.style
        hw = self.hw
        length = st.head_len * hw
        half = 0.92 * hw
        pad = 2
        ys, xs = np.mgrid[0 : int(2 * half + 2 * pad + 1), 0 : int(length + 2 * pad + 1)].astype(np.float32)
        x = xs + 0.5 - pad
        y = ys + 0.5 - (2 * half + 2 * pad + 1) / 2
        n = np.clip(y / half, -1, 1)
        rgb = _cylinder_rgb(n, tuple(np.array(st.head) * jitter), st.gloss, tint)
        alpha = np.clip(half - np.abs(y) + 0.5, 0, 1) * np.clip(x + 0.5, 0, 1)
        if st.jaws:
            alpha *= np.clip(length - x + 0.5, 0, 1)
            screw = (x - 0.68 * length) ** 2 + y**2 < (0.28 * half) ** 2
            rgb[screw] *= 0.35
            slot = np.abs(x - 0.3 * length) < max(0.8, 0.05 * length)
            rgb[slot] *= 0.5
        else:  # suction/irrigation tube: rounded end with side holes
            cap = length - half
            alpha *= np.clip(half - np.sqrt(np.clip(x - cap, 0, None) ** 2 + y**2) + 0.5, 0, 1)
            for k in range(3):
                hx = cap - (0.35 + 0.55 * k) * half
                hole = (x - hx) ** 2 / (0.25 * half) ** 2 + (y + 0.15 * half) ** 2 / (0.45 * half) ** 2 < 1
                rgb[hole] *= 0.15
        return _premultiply(rgb, alpha.astype(np.float32))

    def _jaws(self, tint, jitter) -> list[Array]:
        st = self.style
        hw = self.hw
        length = st.jaw_len * hw
        base = st.jaw_width * hw
        tip = max(0.7, 0.12 * base)
        bend = st.jaw_curve * length
        pad = 2
        extent = base + abs(bend) + pad + 1
        ys, xs = np.mgrid[0 : int(2 * extent) + 1, 0 : int(length + 2 * pad + 1)].astype(np.float32)
        x = xs + 0.5 - pad
        y0 = ys + 0.5 - (int(2 * extent) + 1) / 2
        u = np.clip(x / length, 0, 1)
        sprites = []
        for inner, curve in ((1.0, 1.0), (-1.0, 1.0 if st.same_side_curve else -1.0)):
            y = y0 - curve * bend * u**2
            half = base + (tip - base) * u**1.3
            if st.teeth:  # serrated inner edge
                saw = np.abs(((x / max(2.5, 0.18 * base)) % 2.0) - 1.0)
                half = np.where(y * inner > 0, half * (1.0 - 0.22 * saw), half)
            n = np.clip(y / np.maximum(half, 1e-3), -1, 1)
            rgb = _cylinder_rgb(n, tuple(np.array(st.jaw) * jitter), st.gloss, tint)
            alpha = (
                np.clip(half - np.abs(y) + 0.5, 0, 1)
                * np.clip(x + 0.5, 0, 1)
                * np.clip(length - x + 0.5, 0, 1)
            )
            if st.fenestrated:  # window through the jaw: tissue shows through and is not in the mask
                hole = (np.abs(x - 0.52 * length) < 0.24 * length) & (np.abs(y) < 0.42 * half)
                alpha = np.where(hole, 0.0, alpha)
            sprites.append(_premultiply(rgb, alpha.astype(np.float32)))
        return sprites

    # ---- trajectory
    def pose(self, t: float) -> tuple[np.ndarray, np.ndarray, float, float]:
        """(wrist point, unit direction, scale, jaw opening in radians) at time ``t`` (frames)."""
        ang = self.angle0 + self.angle_amp * self.angle_sig(t)
        border = self.fov.border_point(ang)
        inward = ang + math.pi + self.dev0 + 0.25 * self.dev_sig(t)
        d = np.array([math.cos(inward), math.sin(inward)])
        reach = 2.0 * max(self.fov.a, self.fov.b) * abs(math.cos(self.dev0))
        depth = self.depth0 + 0.18 * self.depth_sig(t)
        if self.enter_at is not None:
            t0, dur = self.enter_at
            depth *= float(np.clip((t - t0) / dur, -0.15, 1.0))
        wrist = border + d * reach * depth
        scale = 1.05 - 0.35 * float(np.clip(depth, 0, 1))
        roll = abs(math.cos(self.roll_sig(t) * 1.4))
        opening = math.radians(self.style.max_open) * float(np.clip(0.45 + 0.8 * self.open_sig(t), 0, 1))
        return wrist, d, scale, opening * (0.35 + 0.65 * roll)

    def render(self, t: int, h: int, w: int) -> tuple[int, int, Array] | None:
        """Premultiplied RGBA crop of this instrument at frame ``t`` (with motion blur) and its origin."""
        import cv2

        wrist, d, s, opening = self.pose(t)
        prev, _, _, _ = self.pose(t - 1)
        vel = (wrist - prev) * self.exposure
        perp = np.array([-d[1], d[0]])
        # the shaft runs back from the wrist to where it leaves the image
        back = -d
        ts = []
        for i, lim in ((0, w), (1, h)):
            if back[i] > 1e-9:
                ts.append((lim + 4 - wrist[i]) / back[i])
            elif back[i] < -1e-9:
                ts.append((-4 - wrist[i]) / back[i])
        length = max(min(ts) if ts else h + w, 1.0) + 4
        hw1 = self.hw * s
        hwf = hw1 + self.taper * length
        far = wrist - d * length
        quad = np.array(
            [far + perp * hwf, wrist + perp * hw1, wrist - perp * hw1, far - perp * hwf], np.float32
        )
        head_len = self.style.head_len * self.hw * s
        pivot = wrist + d * head_len * 0.92
        reach = (self.style.jaw_len + 1) * self.hw * s
        pts = np.vstack(
            [quad, pivot + d * reach + perp * reach, pivot + d * reach - perp * reach, pivot - perp * reach]
        )
        blur = abs(vel).max() + 3
        x0 = max(int(math.floor(pts[:, 0].min() - blur)), 0)
        y0 = max(int(math.floor(pts[:, 1].min() - blur)), 0)
        x1 = min(int(math.ceil(pts[:, 0].max() + blur)), w)
        y1 = min(int(math.ceil(pts[:, 1].max() + blur)), h)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return None
        hs, pad = self.STRIP_HALF, self.STRIP_PAD
        src = np.array(
            [[0, pad], [self.STRIP_LEN, pad], [self.STRIP_LEN, pad + 2 * hs], [0, pad + 2 * hs]], np.float32
        )
        pm = cv2.getPerspectiveTransform(src, quad - np.array([x0, y0], np.float32))
        layer = cv2.warpPerspective(self.strip, pm, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderValue=0)
        ang = math.atan2(d[1], d[0])
        origin = np.array([x0, y0])
        hh = self.head.shape[0] / 2
        _paste_affine(layer, self.head, _affine(ang, s, wrist - origin, (2.0, hh)))
        if self.jaws:
            jh = self.jaws[0].shape[0] / 2
            lower, upper = self.jaws[1], self.jaws[0]
            _paste_affine(layer, lower, _affine(ang + opening / 2, s, pivot - origin, (2.0, jh)))
            _paste_affine(layer, upper, _affine(ang - opening / 2, s, pivot - origin, (2.0, jh)))
        if max(abs(vel[0]), abs(vel[1])) >= 1.0:
            layer = _motion_blur(layer, float(vel[0]), float(vel[1]))
        return y0, x0, layer


# ---------------------------------------------------------------------------------------------- smoke, light
class _Smoke:
    """Drifting haze patches: tileable noise at quarter resolution, shifted per frame and upsampled."""

    def __init__(self, rng: np.random.Generator, h: int, w: int, difficulty: float):
        self.h, self.w = h, w
        self.sh, self.sw = max(8, h // 4), max(8, w // 4)
        self.on = rng.random() < 0.3 + 0.6 * difficulty
        self.f1 = _periodic_noise(rng, self.sh, self.sw, 0.035)
        self.f2 = _periodic_noise(rng, self.sh, self.sw, 0.07)
        self.v1 = rng.normal(0, 0.35, 2)
        self.v2 = rng.normal(0, 0.6, 2)
        self.strength = (0.12 + 0.6 * difficulty) * rng.uniform(0.6, 1.0)
        self.env = _signal(rng, (40, 120))
        self.color = np.array([0.9, 0.86, 0.84], np.float32) * rng.uniform(0.9, 1.05)

    def alpha(self, t: int) -> Array | None:
        import cv2

        if not self.on:
            return None
        level = self.strength * float(np.clip(0.35 + 0.9 * self.env(t), 0, 1))
        if level < 0.01:
            return None

        def drift(f, v):
            m = np.array([[1, 0, v[0] * t], [0, 1, v[1] * t]], np.float32)
            return cv2.warpAffine(
                f, m, (self.sw, self.sh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP
            )

        dens = _smoothstep(0.38, 0.72, drift(self.f1, self.v1) * 0.7 + drift(self.f2, self.v2) * 0.3)
        return cv2.resize(dens * level, (self.w, self.h), interpolation=cv2.INTER_LINEAR)


# ---------------------------------------------------------------------------------------------- scene
class _Scene:
    """Everything of one video: rendered frame by frame from precomputed parts."""

    def __init__(self, seed: int, cfg: SynthConfig):
        # one random stream per part: the difficulty, the polyp option or the number of instruments
        # change only their own part of the scene
        seq = np.random.SeedSequence(seed)
        r_fov, r_tissue, r_polyp, r_layout, r_smoke, r_light, r_noise, r_inst = seq.spawn(8)
        rng = np.random.default_rng(r_layout)
        h, w = cfg.size
        d = cfg.difficulty
        self.h, self.w = h, w
        self.fov = _FieldOfView(np.random.default_rng(r_fov), h, w, d)
        polyp_rng = np.random.default_rng(r_polyp)
        has_polyp = polyp_rng.random() < cfg.polyp_prob
        self.tissue = _Tissue(np.random.default_rng(r_tissue), h, w, d, polyp_rng if has_polyp else None)
        n_inst = int(rng.integers(1, cfg.max_instruments + 1)) if cfg.max_instruments > 0 else 0
        names = list(INSTRUMENT_STYLES)
        base = rng.uniform(0, 2 * np.pi)
        spread = 2 * np.pi / max(n_inst, 1)
        self.instruments = []
        for i, r_i in enumerate(r_inst.spawn(n_inst)):
            name = names[int(rng.integers(len(names)))]
            angle = base + i * spread + rng.uniform(-0.3, 0.3) * spread
            self.instruments.append(
                _Instrument(
                    np.random.default_rng(r_i),
                    name,
                    self.fov,
                    angle,
                    d,
                    self.tissue.mean_color,
                    float(min(h, w)),
                )
            )
        if self.instruments:  # the first instrument is in view from the first frame (no empty videos)
            self.instruments[0].enter_at = None
        order = rng.permutation(n_inst)  # drawn back to front
        self.instruments = [self.instruments[i] for i in order]
        self.track_ids = [int(i) + 1 for i in order]
        self.polyp_track = n_inst + 1
        self.smoke = _Smoke(np.random.default_rng(r_smoke), h, w, d)
        light = np.random.default_rng(r_light)
        self.exposure = light.uniform(0.92, 1.12)
        self.gain_sig, self.temp_sig = _signal(light, (30, 110)), _signal(light, (60, 200))
        self.gain_amp, self.temp_amp = 0.06 + 0.3 * d, 0.02 + 0.12 * d
        sigma = 0.006 + 0.02 * d
        noise = np.random.default_rng(r_noise)
        self.noise = (noise.standard_normal((h + 16, w + 16, 3), np.float32) * sigma).astype(np.float32)
        self.noise_offsets = noise.integers(0, 17, size=(251, 2))

    def render(self, t: int) -> tuple[Array, list[tuple[int, Array, int]]]:
        import cv2

        h, w = self.h, self.w
        img, polyp = self.tissue.sample(t)
        masks: list[Array] = []
        for inst in self.instruments:
            out = inst.render(t, h, w)
            m = np.zeros((h, w), bool)
            if out is not None:
                y0, x0, layer = out
                y1, x1 = y0 + layer.shape[0], x0 + layer.shape[1]
                a = layer[..., 3]
                region = img[y0:y1, x0:x1]
                region *= 1.0 - a[..., None]
                region += layer[..., :3]
                m[y0:y1, x0:x1] = a >= 0.5
                for prev in masks:  # instruments in front hide the ones behind
                    prev[y0:y1, x0:x1] &= ~m[y0:y1, x0:x1]
            masks.append(m)
        smoke = self.smoke.alpha(t)
        if smoke is not None:
            img *= 1.0 - smoke[..., None]
            img += smoke[..., None] * self.smoke.color
        oy, ox = self.noise_offsets[t % len(self.noise_offsets)]
        img += self.noise[oy : oy + h, ox : ox + w]
        img = cv2.GaussianBlur(img, (3, 3), 0.6)
        g = self.exposure * (1.0 + self.gain_amp * self.gain_sig(t))
        c = self.temp_amp * self.temp_sig(t)
        cv2.multiply(img, self.fov.vignette, dst=img, scale=255.0)
        cv2.multiply(img, (g * (1 + c), g, g * (1 - c), 1.0), dst=img)
        frame = cv2.convertScaleAbs(img)
        instances = []
        for inst, track, m in zip(self.instruments, self.track_ids, masks):
            m &= self.fov.mask
            instances.append((inst.category_id, m, track))
        if polyp is not None:
            pm = (polyp >= 0.5) & self.fov.mask
            for m in masks:
                pm &= ~m
            instances.append((CATEGORY_IDS["polyp"], pm, self.polyp_track))
        instances.sort(key=lambda x: x[2])
        return frame, [x for x in instances if x[1].any()]


def render_video(seed: int, cfg: SynthConfig | None = None, with_tracks: bool = False) -> Iterator[tuple]:
    """Yield ``(RGB uint8 frame, [(category_id, bool mask), ...])`` for ``cfg.frames`` frames of one video.

    ``seed`` is the video's own seed (``video_seed(data_seed, index)``); with ``with_tracks`` each instance is
    ``(category_id, mask, track_id)``, the track id being fixed for an object across the video (1-based).
    Instances with no visible pixel in a frame are left out.
    """
    cfg = cfg or SynthConfig()
    scene = _Scene(seed, cfg)
    for t in range(cfg.frames):
        frame, inst = scene.render(t)
        yield frame, (inst if with_tracks else [(c, m) for c, m, _ in inst])


# ---------------------------------------------------------------------------------------------- data set
def _check_target(out_dir: Path) -> None:
    if out_dir.exists() and (
        not out_dir.is_dir() or (any(out_dir.iterdir()) and not (out_dir / ANNOTATION_FILE).exists())
    ):
        raise DataError(
            "exists and is not a data set folder; refusing to replace it (choose a new folder)", out_dir
        )


def generate(out_dir: str | Path, cfg: SynthConfig | None = None, progress: bool = True) -> CocoDataset:
    """Render ``cfg.videos`` videos into ``out_dir``: frames, one mp4 per video, ``annotations.json``.

    The folder is written atomically (temp folder renamed at the end); an existing synthetic data set there
    is replaced. Same config -> byte-identical ``annotations.json`` (and identical frames before encoding).
    """
    import cv2

    from ..progress import track
    from ..video_io import VideoWriter

    cfg = cfg or SynthConfig()
    out_dir = Path(out_dir)
    _check_target(out_dir)
    h, w = cfg.size
    ext = cfg.image_format
    params = (
        [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality] if ext == "jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    )
    videos, images, anns = [], [], []

    def frames():
        for k in range(cfg.videos):
            for t, (frame, inst) in enumerate(render_video(video_seed(cfg.seed, k), cfg, with_tracks=True)):
                yield k, t, frame, inst

    with atomic_dir(out_dir) as tmp:
        writer = None
        items = track(frames(), "synth", total=cfg.videos * cfg.frames) if progress else frames()
        try:
            for k, t, frame, instances in items:
                name = video_name(k)
                if t == 0:
                    if writer is not None:
                        writer.close()
                    (tmp / "frames" / name).mkdir(parents=True)
                    writer = VideoWriter(tmp / "videos" / f"{name}.mp4", fps=cfg.fps)
                    seed = video_seed(cfg.seed, k)
                    videos.append(
                        {
                            "id": k + 1,
                            "name": name,
                            "file_name": f"videos/{name}.mp4",
                            "fps": cfg.fps,
                            "seed": seed,
                        }
                    )
                file_name = f"frames/{name}/{t:05d}.{ext}"
                ok, buf = cv2.imencode(f".{ext}", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), params)
                if not ok:  # pragma: no cover - cv2 encodes any uint8 RGB
                    raise DataError("cannot encode frame", tmp / file_name)
                (tmp / file_name).write_bytes(buf.tobytes())
                writer.write(frame)
                iid = len(images) + 1
                images.append(
                    {
                        "id": iid,
                        "file_name": file_name,
                        "height": h,
                        "width": w,
                        "video_id": k + 1,
                        "frame_index": t,
                    }
                )
                for cid, m, tid in instances:
                    r = rle_utils.encode(m)
                    anns.append(
                        {
                            "id": len(anns) + 1,
                            "image_id": iid,
                            "category_id": cid,
                            "segmentation": r,
                            "area": rle_utils.area(r),
                            "bbox": rle_utils.bbox(r),
                            "iscrowd": 0,
                            "track_id": tid,
                        }
                    )
            if writer is not None:
                writer.close()
                writer = None
        finally:
            if writer is not None:
                writer.abort()
        info = {
            "description": "scopeseg synthetic scope videos",
            "generator": "scopeseg.data.synthetic",
            "config": cfg.model_dump(mode="json"),
        }
        ds = CocoDataset(images, anns, categories(), videos, info=info, root=tmp)
        if cfg.splits:
            ds.assign_splits(cfg.splits, seed=cfg.seed)
        ds.save(tmp)
    ds.root = out_dir
    ds.path = out_dir / ANNOTATION_FILE
    return ds
