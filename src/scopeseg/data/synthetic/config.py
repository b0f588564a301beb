"""Options of the generator and the per-video seeds (video k is the same whatever the number of videos)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from ...config import BaseConfig, Fractions, parse_size, register_config


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
    # sim-to-real domain randomisation (``realism``); 0 turns an option off and keeps the outputs unchanged
    tissue_palette: float = Field(0.0, ge=0.0, le=1.0)  # share of videos with a random tissue palette
    tissue_texture: float = Field(0.0, ge=0.0, le=1.0)  # amplitude of fine multiplicative tissue texture
    tissue_organs: float = Field(0.0, ge=0.0, le=1.0)  # share of videos with grey/pale/dark organ regions
    tool_look: float = Field(0.0, ge=0.0, le=1.0)  # share of videos with thicker, tissue-tinted tools
    tool_width: float = Field(0.0, ge=0.0, le=1.0)  # share of videos with thicker tools (untinted)
    # share of instruments with an insulated look (black shaft, matte white sleeve, cone tip)
    tool_insulated: float = Field(0.0, ge=0.0, le=1.0)
    splits: Fractions | None = None  # train=0.75,val=0.25 or {train: 0.75, val: 0.25}

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
