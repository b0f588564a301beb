"""Random textures and motions the scene is built from: fractal and tileable noise, smooth signals of time.

Each takes its own ``numpy.random.Generator``, so a part of the scene draws only from its own stream.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Array = np.ndarray


def fbm(rng: np.random.Generator, h: int, w: int, cells: float, octaves: int, gain: float = 0.5) -> Array:
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


def periodic_noise(rng: np.random.Generator, h: int, w: int, cutoff: float) -> Array:
    """Tileable smooth noise in [0, 1]: white noise low-passed in the Fourier domain (wraps at the borders)."""
    white = rng.standard_normal((h, w))
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[None, :]
    spec = np.fft.fft2(white) * np.exp(-(fx**2 + fy**2) / (2 * cutoff**2))
    out = np.real(np.fft.ifft2(spec)).astype(np.float32)
    lo, hi = float(out.min()), float(out.max())
    return (out - lo) / max(hi - lo, 1e-6)


def random_signal(
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


def smoothstep(e0: float, e1: float, x):
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)
