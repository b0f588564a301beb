"""What the scope adds to the scene: the aperture (field of view, vignette) and drifting smoke."""

from __future__ import annotations

import math

import numpy as np

from .noise import Array, periodic_noise, random_signal, smoothstep


class FieldOfView:
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


class Smoke:
    """Drifting haze patches: tileable noise at quarter resolution, shifted per frame and upsampled."""

    def __init__(self, rng: np.random.Generator, h: int, w: int, difficulty: float):
        self.h, self.w = h, w
        self.sh, self.sw = max(8, h // 4), max(8, w // 4)
        self.on = rng.random() < 0.3 + 0.6 * difficulty
        self.f1 = periodic_noise(rng, self.sh, self.sw, 0.035)
        self.f2 = periodic_noise(rng, self.sh, self.sw, 0.07)
        self.v1 = rng.normal(0, 0.35, 2)
        self.v2 = rng.normal(0, 0.6, 2)
        self.strength = (0.12 + 0.6 * difficulty) * rng.uniform(0.6, 1.0)
        self.env = random_signal(rng, (40, 120))
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

        dens = smoothstep(0.38, 0.72, drift(self.f1, self.v1) * 0.7 + drift(self.f2, self.v2) * 0.3)
        return cv2.resize(dens * level, (self.w, self.h), interpolation=cv2.INTER_LINEAR)
