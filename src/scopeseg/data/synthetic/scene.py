"""One video's scene (field of view, tissue, instruments, smoke, lighting) rendered frame by frame with masks.

An instance mask is exactly its visible pixels: alpha >= 0.5 after motion blur, minus the instruments in
front of it, inside the field of view.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .categories import CATEGORY_IDS, INSTRUMENT_STYLES
from .config import SynthConfig
from .instruments import Instrument
from .noise import Array, random_signal
from .optics import FieldOfView, Smoke
from .realism import (
    ToolLook,
    fine_texture,
    insulated_style,
    organ_regions,
    tissue_palette,
    tool_width_factor,
)
from .tissue import Tissue


class Scene:
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
        self.fov = FieldOfView(np.random.default_rng(r_fov), h, w, d)
        polyp_rng = np.random.default_rng(r_polyp)
        has_polyp = polyp_rng.random() < cfg.polyp_prob
        self.tissue = Tissue(np.random.default_rng(r_tissue), h, w, d, polyp_rng if has_polyp else None)
        # domain randomisation streams come after the eight above, so those parts stay as they were
        streams = seq.spawn(1)[0].spawn(6)
        r_pal, r_tex, r_look, r_width, r_ins, r_org = (np.random.default_rng(s) for s in streams)
        if cfg.tissue_palette > 0 and r_pal.random() < cfg.tissue_palette:
            self.tissue.rgb = tissue_palette(r_pal, self.tissue.rgb)
        if cfg.tissue_texture > 0:
            self.tissue.rgb *= fine_texture(r_tex, *self.tissue.rgb.shape[:2], cfg.tissue_texture)[..., None]
        if cfg.tissue_organs > 0 and r_org.random() < cfg.tissue_organs:
            self.tissue.rgb = organ_regions(r_org, self.tissue.rgb, int(r_org.integers(1, 3)))
        if cfg.tissue_palette > 0 or cfg.tissue_texture > 0 or cfg.tissue_organs > 0:
            self.tissue.mean_color = self.tissue.rgb.reshape(-1, 3).mean(0).astype(np.float32)
        self.tool_look = ToolLook(r_look, cfg.tool_look)
        self.tool_width = tool_width_factor(r_width, cfg.tool_width) * self.tool_look.width
        n_inst = int(rng.integers(1, cfg.max_instruments + 1)) if cfg.max_instruments > 0 else 0
        names = list(INSTRUMENT_STYLES)
        base = rng.uniform(0, 2 * np.pi)
        spread = 2 * np.pi / max(n_inst, 1)
        self.instruments = []
        for i, r_i in enumerate(r_inst.spawn(n_inst)):
            name = names[int(rng.integers(len(names)))]
            angle = base + i * spread + rng.uniform(-0.3, 0.3) * spread
            style = None
            if cfg.tool_insulated > 0 and r_ins.random() < cfg.tool_insulated:
                style = insulated_style(r_ins, INSTRUMENT_STYLES[name])
            self.instruments.append(
                Instrument(
                    np.random.default_rng(r_i),
                    name,
                    self.fov,
                    angle,
                    d,
                    self.tissue.mean_color,
                    float(min(h, w)) * self.tool_width,
                    style,
                )
            )
        if self.instruments:  # the first instrument is in view from the first frame (no empty videos)
            self.instruments[0].enter_at = None
        order = rng.permutation(n_inst)  # drawn back to front
        self.instruments = [self.instruments[i] for i in order]
        self.track_ids = [int(i) + 1 for i in order]
        self.polyp_track = n_inst + 1
        self.smoke = Smoke(np.random.default_rng(r_smoke), h, w, d)
        light = np.random.default_rng(r_light)
        self.exposure = light.uniform(0.92, 1.12)
        self.gain_sig, self.temp_sig = random_signal(light, (30, 110)), random_signal(light, (60, 200))
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
                self.tool_look.recolor(layer, self.tissue.mean_color)
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
    scene = Scene(seed, cfg)
    for t in range(cfg.frames):
        frame, inst = scene.render(t)
        yield frame, (inst if with_tracks else [(c, m) for c, m, _ in inst])
