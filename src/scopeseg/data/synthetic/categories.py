"""The synthetic data set's categories: six instrument types (how each looks) and polyps.

Category ids follow ``INSTRUMENT_STYLES`` order (1-based), then ``polyp``; display colours come from
``viz.SYNTHETIC_CATEGORY_COLORS`` and are written into the category table.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...viz import SYNTHETIC_CATEGORY_COLORS

Color = tuple[float, float, float]


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
    cone: bool = False  # jawless head ending in a cone (insulated electrode sleeve), not a rounded tube


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


def categories() -> list[dict]:
    """The category table of synthetic data: instruments (ids 1..6 in ``INSTRUMENT_STYLES`` order), polyp."""
    names = [*INSTRUMENT_STYLES, "polyp"]
    return [
        {
            "id": i + 1,
            "name": n,
            "supercategory": "tissue" if n == "polyp" else "instrument",
            "color": list(SYNTHETIC_CATEGORY_COLORS[i % len(SYNTHETIC_CATEGORY_COLORS)]),
        }
        for i, n in enumerate(names)
    ]


CATEGORY_IDS: dict[str, int] = {c["name"]: c["id"] for c in categories()}
