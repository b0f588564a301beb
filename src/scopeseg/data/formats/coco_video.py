"""COCO-video JSON as SAM2 training code and TAPIS/LEMIS write it <-> the canonical data set.

SAM2-style files tag images with ``video_id`` + ``order_in_video``; TAPIS/LEMIS (BCV-Uniandes/GraSP) files
with ``video_name`` + ``frame_num`` and carry surgical-task tables (``phases_categories``,
``steps_categories``, ``actions_categories`` ...) and per-annotation task labels, all kept as they are.
Import normalises both to ``video_id`` / ``frame_index`` (``CocoDataset`` rules) and makes every mask RLE;
export writes the chosen flavour's fields back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import ConfigError
from ...io import write_json
from ._base import (
    ConversionReport,
    apply_mapping,
    iter_with_progress,
    link_or_copy,
    load_coco,
    load_mapping,
    open_export,
    open_output,
)
from .polygons import _peek, import_coco_json

NAME = "coco-video"
ALIASES = ("sam2-video", "tapis-coco", "lemis-coco")
DESCRIPTION = "COCO-video JSON: SAM2 (video_id, order_in_video) or TAPIS/LEMIS (video_name, frame_num)"
FLAVORS = {"sam2": ("video_id", "order_in_video"), "tapis": ("video_name", "frame_num")}


def detect(src: Path) -> int:
    data = _peek(src)
    if not data or not data["images"]:
        return 0
    im = data["images"][0]
    return 2 if any(k in im for k in ("order_in_video", "video_name", "frame_num")) else 0


def to_coco(
    src: str | Path, dst: str | Path, *, mapping: Any = None, overwrite: bool = False
) -> ConversionReport:
    """Convert a COCO-video JSON (images relative to it) into the canonical data set."""
    report = ConversionReport(NAME, "to_coco", str(src), str(dst))
    with open_output(dst, report, mapping, overwrite) as w:
        import_coco_json(src, w, report)
    return report


def from_coco(
    src: str | Path, dst: str | Path, *, flavor: str = "sam2", mapping: Any = None, overwrite: bool = False
) -> ConversionReport:
    """Write ``annotations.json`` (RLE) with the flavour's video fields, plus the images."""
    if flavor not in FLAVORS:
        raise ConfigError(f"COCO-video flavor must be one of {tuple(FLAVORS)}, got {flavor!r}")
    report = ConversionReport(NAME, "from_coco", str(src), str(dst))
    ds = apply_mapping(load_coco(src), load_mapping(mapping), report)
    out = ds.to_dict()
    images = []
    with open_export(dst, overwrite) as root:
        for im in iter_with_progress(out["images"], NAME):
            link_or_copy(ds.image_path(im["id"]), root / im["file_name"])
            rec = dict(im)
            vid = rec.get("video_id")
            if vid is not None:
                if flavor == "sam2":
                    rec["order_in_video"] = int(rec.get("frame_index", 0))
                else:
                    rec["video_name"] = ds.videos.get(vid, {}).get("name", str(vid))
                    rec.setdefault("frame_num", int(rec.get("frame_index", 0)))
                    rec.pop("video_id")
                    rec.pop("frame_index", None)
            images.append(rec)
            report.count("images")
        out["images"] = images
        if flavor == "tapis":
            out.pop("videos", None)
        write_json(root / "annotations.json", out)
        report.count("annotations", len(out["annotations"]))
    return report
