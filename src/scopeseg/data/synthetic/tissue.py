"""The tissue canvas: coloured folds, vessels and wet glints, an optional polyp, seen through a moving camera."""

from __future__ import annotations

import math

import numpy as np

from .noise import Array, fbm, random_signal, smoothstep


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


class Tissue:
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
        n_col = fbm(rng, ch, cw, 2.0, 4)
        n_fold = fbm(rng, ch, cw, 2.5, 4)
        n_ridge = fbm(rng, ch, cw, 2.5, 3)
        n_fine = fbm(rng, ch, cw, 40.0, 2)
        # relief: lit from one side, normalised so the shading stays gentle whatever the size
        gx = cv2.Sobel(n_fold, cv2.CV_32F, 1, 0, ksize=5)
        gy = cv2.Sobel(n_fold, cv2.CV_32F, 0, 1, ksize=5)
        la = rng.uniform(0, 2 * np.pi)
        relief = gx * math.cos(la) + gy * math.sin(la)
        relief /= max(float(relief.std()), 1e-6)
        # folds: dark creases along an iso-line of low-frequency noise, with a lit lip beside them
        crease = np.exp(-(((n_ridge - 0.5) / 0.04) ** 2))
        lip = np.exp(-(((n_ridge - 0.56) / 0.05) ** 2))
        n_mid = fbm(rng, ch, cw, 12.0, 3)
        shade = np.clip(1.0 + 0.14 * relief - 0.35 * crease + 0.15 * lip + 0.25 * (n_mid - 0.5), 0.45, 1.35)
        mix = smoothstep(0.15, 0.85, n_col)[..., None]
        rgb = deep * (1 - mix) + light * mix
        if rng.random() < 0.4:  # yellow fat patches
            fat = smoothstep(0.68, 0.78, fbm(rng, ch, cw, 2.5, 3))[..., None] * rng.uniform(0.6, 1.0)
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
        wet = fbm(rng, ch, cw, 4.0, 2)
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
        self.pan_x, self.pan_y = random_signal(rng, (90, 260)), random_signal(rng, (90, 260))
        self.rot, self.zoom = random_signal(rng, (120, 300)), random_signal(rng, (100, 260))
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
        tex = 0.8 + 0.4 * fbm(rng, self.ch, self.cw, 50.0, 2)
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
