"""Procedural endoscopy-like videos with exact instance masks: the embedded default data set.

Every video is rendered from its own seed, derived from the data set seed and the video's index (video k is
the same whatever the number of videos): a tissue canvas (multi-octave noise, folds, vessels, wet glints)
warped by a smooth camera path, a circular or octagonal field of view with vignette, articulated instruments
(tapered shaft, wrist, two jaws) on smooth trajectories from the border, optional polyps, smoke and lighting
drift. Modules: ``config`` (options, seeds), ``categories``, ``noise``, ``optics`` (aperture, smoke),
``tissue``, ``instruments``, ``scene`` (one video, frame by frame) and ``writer`` (the data set on disk).
"""

from .categories import CATEGORY_IDS, INSTRUMENT_STYLES, InstrumentStyle, categories
from .config import SynthConfig, video_name, video_seed
from .scene import render_video
from .writer import generate

__all__ = [
    "CATEGORY_IDS",
    "INSTRUMENT_STYLES",
    "InstrumentStyle",
    "SynthConfig",
    "categories",
    "generate",
    "render_video",
    "video_name",
    "video_seed",
]
