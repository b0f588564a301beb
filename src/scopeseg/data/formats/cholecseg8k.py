"""CholecSeg8k: 13-class semantic masks of Cholec80 frames, per-video folders of 80-frame clips.

Layout (Kaggle ``newslab/cholecseg8k``; Hong et al. 2020, arXiv:2012.12453)::

    videoNN/videoNN_XXXXX/frame_N_endo.png                  image
    videoNN/videoNN_XXXXX/frame_N_endo_watershed_mask.png   class codes (R=G=B), read by default
    videoNN/videoNN_XXXXX/frame_N_endo_color_mask.png       class colors (``masks="color"``)

Category ids are the watershed class codes (``../shared/data/cholecseg8k_clip/SOURCE.md``); colors are the
color-mask colors (the corrected table, which the color masks actually use). Watershed 255 / 0 and color
white are unlabelled pixels (1-pixel edges, unannotated spots): no annotation, counted in the report.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConfigError, DataError
from ._base import (
    ConversionReport,
    apply_mapping,
    check_size,
    color_to_label_map,
    frame_size,
    iter_with_progress,
    link_or_copy,
    load_coco,
    load_mapping,
    natural_key,
    open_export,
    open_output,
    prefetch,
    read_mask,
    require_dir,
    semantic_label_map,
    value_counts,
    write_png,
)

NAME = "cholecseg8k"
DESCRIPTION = "CholecSeg8k: videoNN/videoNN_XXXXX/frame_N_endo{,_watershed_mask,_color_mask}.png, 13 classes"
#: (watershed code, name, color-mask RGB)
CLASSES = (
    (50, "Black Background", (127, 127, 127)),
    (11, "Abdominal Wall", (210, 140, 140)),
    (21, "Liver", (255, 114, 114)),
    (13, "Gastrointestinal Tract", (231, 70, 156)),
    (12, "Fat", (186, 183, 75)),
    (31, "Grasper", (170, 255, 0)),
    (23, "Connective Tissue", (255, 85, 0)),
    (24, "Blood", (255, 0, 0)),
    (25, "Cystic Duct", (255, 255, 0)),
    (32, "L-hook Electrocautery", (169, 255, 184)),
    (22, "Gallbladder", (255, 160, 165)),
    (33, "Hepatic Vein", (0, 50, 128)),
    (5, "Liver Ligament", (111, 74, 0)),
)
UNLABELLED_CODES = (0, 255)
UNLABELLED_COLOR = (255, 255, 255)
SUFFIX = {"watershed": "_endo_watershed_mask.png", "color": "_endo_color_mask.png"}
FRAME_RE = re.compile(r"^frame_(\d+)_endo$")


def _frames(src: Path) -> list[Path]:
    frames = sorted(
        (p for p in src.rglob("frame_*_endo.png")), key=lambda p: natural_key(str(p.relative_to(src)))
    )
    if not frames:
        raise DataError("no CholecSeg8k frames (frame_N_endo.png) found", src)
    return frames


def detect(src: Path) -> int:
    if not src.is_dir():
        return 0
    for pattern in (
        "*_endo_watershed_mask.png",
        "*/*_endo_watershed_mask.png",
        "*/*/*_endo_watershed_mask.png",
    ):
        if next(src.glob(pattern), None) is not None:
            return 3
    return 0


def _video_of(frame: Path, src: Path) -> tuple[str, str]:
    """(video name, clip folder name) from ``videoNN/videoNN_XXXXX/``."""
    clip = frame.parent.name if frame.parent != src else ""
    m = re.match(r"^(video\d+)", clip)
    video = m.group(1) if m else (frame.parent.parent.name if frame.parent.parent != src.parent else "video")
    return video, clip


def to_coco(
    src: str | Path,
    dst: str | Path,
    *,
    masks: str = "watershed",
    mapping: Any = None,
    overwrite: bool = False,
) -> ConversionReport:
    """Convert CholecSeg8k folders into a canonical data set (one video per Cholec80 video)."""
    if masks not in SUFFIX:
        raise ConfigError(f"CholecSeg8k masks must be one of {tuple(SUFFIX)}, got {masks!r}")
    report = ConversionReport(NAME, "to_coco", str(src), str(dst))
    src = require_dir(src, "CholecSeg8k folder")
    frames = _frames(src)
    codes = {code: code for code, _n, _c in CLASSES}
    colors = {color: code for code, _n, color in CLASSES}
    with open_output(dst, report, mapping, overwrite) as w:
        for code, name, color in CLASSES:
            w.add_category(code, name, color, watershed_code=code)
        w.info["background"] = {"id": 255, "name": "unlabelled", "color": list(UNLABELLED_COLOR)}

        def load(frame: Path) -> tuple[Path, tuple[int, int], np.ndarray]:
            mpath = frame.with_name(frame.stem + SUFFIX[masks][len("_endo") :])
            if not mpath.is_file():
                raise DataError(f"no {masks} mask for this frame (expected {mpath.name})", frame)
            size = frame_size(frame)
            mask = read_mask(mpath)
            check_size(mask, size, mpath, "frame")
            return mpath, size, mask

        for frame, (mpath, size, mask) in iter_with_progress(
            prefetch(load, frames), "CholecSeg8k", len(frames)
        ):
            m = FRAME_RE.match(frame.stem)
            num = int(m.group(1)) if m else 0
            video, clip = _video_of(frame, src)
            vid = w.add_video(video)
            rel = frame.relative_to(src).as_posix()
            iid = w.add_image(rel, size[0], size[1], video_id=vid, frame_num=num, clip=clip)
            if masks == "watershed":
                if mask.ndim == 3:
                    if not ((mask[..., 0] == mask[..., 1]).all() and (mask[..., 1] == mask[..., 2]).all()):
                        raise DataError("watershed mask is not grey (R=G=B class codes)", mpath)
                    mask = mask[..., 0]
                counts = value_counts(mask)
                report.count("unlabelled_pixels", int(sum(counts[c] for c in UNLABELLED_CODES)))
                w.add_label_map(iid, mask, codes, ignore=UNLABELLED_CODES, path=mpath)
            else:
                lab = color_to_label_map(mask, colors, mpath, ignore_colors=[UNLABELLED_COLOR])
                report.count("unlabelled_pixels", int((lab == 65535).sum()))
                w.add_label_map(iid, lab, codes, ignore=(65535,), path=mpath)
            w.place_image(frame, rel)
    return report


def from_coco(
    src: str | Path,
    dst: str | Path,
    *,
    masks: str | None = None,
    mapping: Any = None,
    overwrite: bool = False,
) -> ConversionReport:
    """Write the CholecSeg8k layout with watershed and color masks (or only ``masks``); unlabelled = 255/white.

    Category ids must be CholecSeg8k codes (< 255) for the watershed masks.
    """
    report = ConversionReport(NAME, "from_coco", str(src), str(dst))
    kinds = tuple(SUFFIX) if masks is None else (masks,)
    if any(k not in SUFFIX for k in kinds):
        raise ConfigError(f"CholecSeg8k masks must be one of {tuple(SUFFIX)}, got {masks!r}")
    ds = apply_mapping(load_coco(src), load_mapping(mapping), report)
    if any(not 0 < cid < 255 for cid in ds.categories):
        raise DataError("CholecSeg8k watershed masks need category ids 1..254 (the class codes)", ds.path)
    palette = np.full((256, 3), 255, np.uint8)
    for cid in ds.categories:
        palette[cid] = ds.category_color(cid)
    with open_export(dst, overwrite) as root:
        for iid in iter_with_progress(list(ds.images), "CholecSeg8k"):
            im = ds.images[iid]
            video = ds.videos.get(im.get("video_id"), {}).get("name", "video01")
            num = int(im.get("frame_num", im.get("frame_index", 0)))
            clip = im.get("clip") or f"{video}_{num // 80 * 80:05d}"
            folder = root / video / clip
            link_or_copy(ds.image_path(iid), folder / f"frame_{num}_endo.png")
            lab = semantic_label_map(ds, iid, {c: c for c in ds.categories}, fill=255)
            if "watershed" in kinds:
                write_png(folder / f"frame_{num}{SUFFIX['watershed']}", np.repeat(lab[..., None], 3, axis=2))
            if "color" in kinds:
                write_png(folder / f"frame_{num}{SUFFIX['color']}", palette[lab])
            report.count("images")
    return report
