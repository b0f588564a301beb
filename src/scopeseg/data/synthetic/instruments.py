"""Articulated instruments: a shaded shaft strip, a wrist and two jaws, placed per frame on a smooth trajectory.

Sprites are premultiplied RGBA float32 drawn along +x; a frame's instrument layer is composited with motion
blur, and its mask is ``alpha >= 0.5`` of that layer.
"""

from __future__ import annotations

import math

import numpy as np

from .categories import CATEGORY_IDS, INSTRUMENT_STYLES, Color, InstrumentStyle
from .noise import Array, fbm, random_signal
from .optics import FieldOfView


def cylinder_rgb(n: Array, base: Color, gloss: float, tint: Array, glint: Array | float = 1.0) -> Array:
    """Metal/plastic cylinder shading across its width: ``n`` in [-1, 1] -> RGB (may exceed 1 = glare)."""
    d = np.sqrt(np.clip(1.0 - n * n, 0.0, 1.0))
    diffuse = 0.22 + 0.78 * d
    spec = gloss * glint * (np.exp(-(((n - 0.32) / 0.14) ** 2)) + 0.3 * np.exp(-(((n + 0.6) / 0.09) ** 2)))
    rgb = np.asarray(base, np.float32) * diffuse[..., None] + tint * (0.22 * (1.0 - d))[..., None]
    return (rgb + spec[..., None]).astype(np.float32)


def premultiply(rgb: Array, alpha: Array) -> Array:
    return np.concatenate([rgb * alpha[..., None], alpha[..., None]], axis=-1).astype(np.float32)


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


class Instrument:
    """One articulated instrument: pre-rendered shaft strip, wrist and jaw sprites placed per frame."""

    STRIP_LEN = 512
    STRIP_HALF = 24
    STRIP_PAD = 2

    def __init__(
        self,
        rng,
        style_name: str,
        fov: FieldOfView,
        angle: float,
        difficulty: float,
        tint: Array,
        scale: float,
        style: InstrumentStyle | None = None,
    ):
        self.name = style_name
        self.style = st = style or INSTRUMENT_STYLES[style_name]
        self.category_id = CATEGORY_IDS[style_name]
        self.fov = fov
        self.hw = rng.uniform(0.045, 0.07) * scale * st.thin  # wrist half-width at nominal depth (px)
        self.taper = rng.uniform(0.015, 0.045) * st.thin
        self.angle0 = angle
        self.angle_sig = random_signal(rng, (70, 180))
        self.angle_amp = rng.uniform(0.1, 0.3)
        self.dev0 = rng.uniform(-0.35, 0.35)
        self.dev_sig = random_signal(rng, (50, 140))
        self.depth0 = rng.uniform(0.3, 0.65)
        self.depth_sig = random_signal(rng, (50, 150))
        self.open_sig = random_signal(rng, (25, 70))
        self.roll_sig = random_signal(rng, (60, 200))
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
        brushed = (0.85 + 0.3 * fbm(rng, 1, self.STRIP_LEN, 24.0, 2)[0]).astype(np.float32)
        glint = np.ones((len(rows), self.STRIP_LEN), np.float32) * brushed
        rgb = cylinder_rgb(
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
            rgb[:, -int(0.06 * self.STRIP_LEN) :] = cylinder_rgb(
                np.repeat(n[:, None], int(0.06 * self.STRIP_LEN), 1), st.band, 0.5, tint
            )
        alpha = np.clip(hs - np.abs(rows) + 0.5, 0, 1)[:, None] * np.ones((1, self.STRIP_LEN), np.float32)
        return premultiply(rgb, alpha)

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
        rgb = cylinder_rgb(n, tuple(np.array(st.head) * jitter), st.gloss, tint)
        alpha = np.clip(half - np.abs(y) + 0.5, 0, 1) * np.clip(x + 0.5, 0, 1)
        if st.jaws:
            alpha *= np.clip(length - x + 0.5, 0, 1)
            screw = (x - 0.68 * length) ** 2 + y**2 < (0.28 * half) ** 2
            rgb[screw] *= 0.35
            slot = np.abs(x - 0.3 * length) < max(0.8, 0.05 * length)
            rgb[slot] *= 0.5
        elif st.cone:  # insulated sleeve: full width, then a cone down to a blunt tip
            start = 0.55 * length
            u = np.clip((x - start) / max(length - start, 1.0), 0, 1)
            edge = half * (1.0 - 0.7 * u)
            alpha = np.clip(edge - np.abs(y) + 0.5, 0, 1) * np.clip(x + 0.5, 0, 1)
            alpha *= np.clip(length - x + 0.5, 0, 1)
        else:  # suction/irrigation tube: rounded end with side holes
            cap = length - half
            alpha *= np.clip(half - np.sqrt(np.clip(x - cap, 0, None) ** 2 + y**2) + 0.5, 0, 1)
            for k in range(3):
                hx = cap - (0.35 + 0.55 * k) * half
                hole = (x - hx) ** 2 / (0.25 * half) ** 2 + (y + 0.15 * half) ** 2 / (0.45 * half) ** 2 < 1
                rgb[hole] *= 0.15
        return premultiply(rgb, alpha.astype(np.float32))

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
            rgb = cylinder_rgb(n, tuple(np.array(st.jaw) * jitter), st.gloss, tint)
            alpha = (
                np.clip(half - np.abs(y) + 0.5, 0, 1)
                * np.clip(x + 0.5, 0, 1)
                * np.clip(length - x + 0.5, 0, 1)
            )
            if st.fenestrated:  # window through the jaw: tissue shows through and is not in the mask
                hole = (np.abs(x - 0.52 * length) < 0.24 * length) & (np.abs(y) < 0.42 * half)
                alpha = np.where(hole, 0.0, alpha)
            sprites.append(premultiply(rgb, alpha.astype(np.float32)))
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
