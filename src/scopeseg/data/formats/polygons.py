"""COCO JSON with polygon segmentations <-> the canonical RLE data set, pixel-exact both ways.

Import rasterises polygons with pycocotools (rings of one annotation are unioned, as the COCO API does);
rings with fewer than 3 points are dropped with a warning. Export traces each mask's pixel-corner outline
(``mask_to_exact_polygons``): pycocotools rasterises such polygons back to exactly the same pixels, and a
hole is written into its outer ring through a doubled bridge edge (pycocotools fills one polygon by the
even-odd rule), so holes survive the round trip too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...errors import DataError
from ...io import read_json, write_json
from .. import rle as rle_utils
from ..coco import CocoDataset
from ..records import resolve_data_path
from ..validate import require_sound
from ._base import (
    CocoWriter,
    ConversionReport,
    apply_mapping,
    iter_with_progress,
    link_or_copy,
    load_coco,
    load_mapping,
    open_export,
    open_output,
)

NAME = "coco-polygons"
ALIASES = ("polygons",)
DESCRIPTION = "COCO JSON with polygon segmentations (holes kept exactly on export)"
ANN_CORE = ("id", "image_id", "category_id", "segmentation", "area", "bbox", "iscrowd")


def _peek(src: Path) -> dict | None:
    try:
        path, _root = resolve_data_path(src)
    except DataError:
        return None
    if path.suffix.lower() != ".json" or path.stat().st_size > 2_000_000_000:
        return None
    try:
        data = read_json(path)
    except DataError:
        return None
    return data if isinstance(data, dict) and isinstance(data.get("images"), list) else None


def detect(src: Path) -> int:
    data = _peek(src)
    if not data:
        return 0
    anns = data.get("annotations") or []
    return 1 if any(isinstance(a.get("segmentation"), list) for a in anns[:200]) else 0


def segmentation_to_rle(seg: Any, h: int, w: int, report: ConversionReport, where: str) -> dict | None:
    """Any COCO segmentation -> compressed RLE; rings with < 3 points are dropped with a warning."""
    if isinstance(seg, dict) and "counts" in seg:
        if [int(v) for v in seg.get("size", [])] != [h, w]:
            raise DataError(f"{where}: RLE size {seg.get('size')} differs from the image's {[h, w]}")
        return rle_utils.compress(seg)
    if not isinstance(seg, list):
        raise DataError(f"{where}: segmentation must be polygons or RLE, got {type(seg).__name__}")
    rings = []
    for ring in seg:
        if not isinstance(ring, list) or len(ring) % 2:
            raise DataError(f"{where}: polygon ring must be a flat [x0, y0, x1, y1, ...] list of even length")
        if len(ring) < 6:
            report.warn("polygon ring with fewer than 3 points dropped", where)
            report.count("dropped_rings")
            continue
        rings.append(ring)
    if not rings:
        return None
    return rle_utils.polygons_to_rle(rings, h, w)


def _report_load_problems(ds: CocoDataset, report: ConversionReport) -> set:
    """Turn ``CocoDataset.load_problems`` into warnings (dropped short rings) or a ``DataError``.

    Returns the ids of annotations that lost polygon rings (dropped entirely when nothing is left).
    """
    emptied = set()
    for code, message, details in ds.load_problems:
        if code == "polygon_too_few_points":
            report.warn(
                "polygon ring with fewer than 3 points dropped",
                f"{ds.path}: annotation {details.get('annotation_id')}",
            )
            report.count("dropped_rings", int(details.get("rings", 1)))
            emptied.add(details.get("annotation_id"))
        elif code in ("polygon_invalid", "rle_invalid", "duplicate_id"):
            raise DataError(message, ds.path)
        else:
            report.warn(message, ds.path)
    return emptied


def import_coco_json(
    src: str | Path, w: CocoWriter, report: ConversionReport, frame_keys: tuple[str, ...] = ()
) -> None:
    """Stream a COCO(-video) JSON into ``w``: images placed, segmentations made RLE, extra keys kept."""
    ds = CocoDataset.load(src, check=False)
    emptied = _report_load_problems(ds, report)
    # the rest of the structural checks; short rings are dropped and reported above, files checked below
    require_sound(ds, files=False, allow=("polygon_too_few_points",))
    w.extra.update(ds.extra)
    w.info.update(ds.info)
    for cid, c in ds.categories.items():
        w.add_category(
            cid,
            c.get("name", str(cid)),
            c.get("color"),
            **{k: v for k, v in c.items() if k not in ("id", "name", "color")},
        )
    vid_map = {
        vid: w.add_video(str(v.get("name", vid)), **{k: x for k, x in v.items() if k not in ("id", "name")})
        for vid, v in ds.videos.items()
    }
    for iid in iter_with_progress(list(ds.images), NAME):
        im = ds.images[iid]
        h, wd = int(im["height"]), int(im["width"])
        path = ds.image_path(iid)
        if not path.is_file():
            raise DataError(f"image {iid} not found: {im['file_name']}", ds.path)
        extra = {k: v for k, v in im.items() if k not in ("id", "file_name", "height", "width")}
        if extra.get("video_id") is not None:
            extra["video_id"] = vid_map[extra["video_id"]]
        new_iid = w.add_image(im["file_name"], h, wd, id=iid, **extra)
        for a in ds.image_anns(iid):
            if a.get("category_id") not in ds.categories:
                raise DataError(
                    f"annotation {a.get('id')} has unknown category id {a.get('category_id')}", ds.path
                )
            rle = segmentation_to_rle(
                a.get("segmentation"), h, wd, report, f"{ds.path}: annotation {a.get('id')}"
            )
            if rle is None or (a.get("id") in emptied and rle_utils.area(rle) == 0):
                report.warn(
                    "annotation without any valid polygon dropped", f"{ds.path}: annotation {a.get('id')}"
                )
                report.count("dropped_annotations")
                continue
            keep = {k: v for k, v in a.items() if k not in ANN_CORE}
            keep["iscrowd"] = int(a.get("iscrowd", 0))
            keep["id"] = a["id"]
            w.add_annotation(new_iid, a["category_id"], rle, **keep)
        w.place_image(path, im["file_name"])


def to_coco(
    src: str | Path, dst: str | Path, *, mapping: Any = None, overwrite: bool = False
) -> ConversionReport:
    """Convert a COCO polygon JSON (images relative to it) into a canonical RLE data set."""
    report = ConversionReport(NAME, "to_coco", str(src), str(dst))
    with open_output(dst, report, mapping, overwrite) as w:
        import_coco_json(src, w, report)
    return report


# ---------------------------------------------------------------------------------------------- export
def _corner_ring(contour: np.ndarray) -> np.ndarray:
    """Contour of a 2x-upsampled mask -> vertices on the original pixel corners (repeats removed)."""
    p = (contour.reshape(-1, 2) + 1) // 2
    keep = np.ones(len(p), bool)
    keep[1:] = (p[1:] != p[:-1]).any(axis=1)
    return p[keep]


def mask_to_exact_polygons(mask: np.ndarray) -> list[list[float]]:
    """Binary mask -> COCO polygons that pycocotools rasterises back to exactly ``mask`` (holes included)."""
    import cv2

    m = np.ascontiguousarray(mask.astype(np.uint8))
    if not m.any():
        return []
    up = np.kron(m, np.ones((2, 2), np.uint8))
    contours, hierarchy = cv2.findContours(up, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    hier = hierarchy[0]
    polys = []
    for i, c in enumerate(contours):
        if hier[i][3] != -1:
            continue  # a hole: written inside its outer ring
        ring = _corner_ring(c)
        parts = [ring, ring[:1]]
        j = hier[i][2]
        while j != -1:
            hole = _corner_ring(contours[j])
            parts += [hole, hole[:1], ring[:1]]
            j = hier[j][0]
        pts = np.concatenate(parts).astype(float)
        if len(pts) < 3:
            continue
        polys.append(pts.ravel().tolist())
    return polys


def from_coco(
    src: str | Path, dst: str | Path, *, mapping: Any = None, overwrite: bool = False
) -> ConversionReport:
    """Write ``annotations.json`` with polygon segmentations (+ images) from a canonical data set."""
    report = ConversionReport(NAME, "from_coco", str(src), str(dst))
    ds = apply_mapping(load_coco(src), load_mapping(mapping), report)
    with open_export(dst, overwrite) as root:
        anns = []
        for iid in iter_with_progress(list(ds.images), NAME):
            link_or_copy(ds.image_path(iid), root / ds.images[iid]["file_name"])
            for a in ds.image_anns(iid):
                polys = mask_to_exact_polygons(ds.mask(a))
                if not polys:
                    report.warn("empty mask written with an empty polygon list", f"annotation {a['id']}")
                anns.append({**a, "segmentation": polys})
            report.count("images")
        out = ds.to_dict()
        out["annotations"] = anns
        write_json(root / "annotations.json", out)
        report.count("annotations", len(anns))
    return report
