"""LabelMe polygon JSON per frame, as CholecInstanceSeg ships it (``ann_dir/*.json`` beside ``img_dir/``).

Layout (labdeeman7/cholec_instance_seg, ``utilities/_sample_files/VID03_t80_sparse``; LabelMe's JSON)::

    {"shapes": [{"label": "grasper", "points": [[x, y], ...], "group_id": 1, "shape_type": "polygon"}, ...],
     "imagePath": "img_dir/t80_VID03_000030.png", "imageHeight": 480, "imageWidth": 854}

One instance = one (label, group_id); its polygons are filled with OpenCV ``fillPoly`` on rounded points
(later shapes win where instances overlap, as in the reference rasterisation). Classes: the repository's
table (1 grasper ... 7 snare), unknown labels are appended. ``VIDnn_frame`` names give video and frame.
Export writes each instance's outer contours (holes cannot be expressed: filled, counted in the report).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import DataError
from ...io import read_json, write_json
from ._base import (
    ConversionReport,
    apply_mapping,
    frame_size,
    iter_with_progress,
    link_or_copy,
    load_class_table,
    load_coco,
    load_mapping,
    natural_key,
    open_export,
    open_output,
    require_dir,
)

NAME = "labelme"
ALIASES = ("cholecinstanceseg",)
DESCRIPTION = "LabelMe polygon JSON per frame (CholecInstanceSeg ann_dir/ + img_dir/)"
#: CholecInstanceSeg classes (utilities/_general_utils/dataset_variables.py)
CLASSES = ("grasper", "hook", "irrigator", "clipper", "bipolar", "scissors", "snare")
VIDEO_RE = re.compile(r"(VID\d+)_(\d+)$", re.IGNORECASE)


def _json_files(src: Path) -> list[Path]:
    files = sorted(
        (p for p in src.rglob("*.json") if not p.name.startswith(".")), key=lambda p: natural_key(str(p))
    )
    return files


def detect(src: Path) -> int:
    if not src.is_dir():
        return 0
    for p in _json_files(src)[:3]:
        try:
            d = read_json(p)
        except DataError:
            return 0
        if isinstance(d, dict) and "shapes" in d and ("imagePath" in d or "imageHeight" in d):
            return 2
    return 0


def _image_for(js: Path, data: dict, src: Path) -> Path:
    cands = []
    if data.get("imagePath"):
        ip = Path(str(data["imagePath"]).replace("\\", "/"))
        cands += [js.parent / ip, js.parent.parent / ip, js.parent / ip.name]
    for d in ("img_dir", "images", "imgs"):
        for ext in (".png", ".jpg", ".jpeg"):
            cands.append(js.parent.parent / d / f"{js.stem}{ext}")
    cands += [js.with_suffix(e) for e in (".png", ".jpg", ".jpeg")]
    for c in cands:
        if c.is_file():
            return c
    raise DataError(f"no image for this annotation (imagePath {data.get('imagePath')!r})", js)


def rasterise(shapes: list[dict], h: int, w: int, path: Path) -> list[tuple[str, Any, np.ndarray]]:
    """(label, group_id, mask) per instance in order of first appearance; later polygons win on overlap."""
    import cv2

    keys: list[tuple[str, Any]] = []
    index = np.zeros((h, w), np.int32)
    for s in shapes:
        if s.get("shape_type", "polygon") != "polygon":
            raise DataError(
                f"shape type {s.get('shape_type')!r} of label {s.get('label')!r} is not a polygon", path
            )
        pts = np.asarray(s.get("points", []), dtype=float)
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise DataError(f"label {s.get('label')!r}: points must be [[x, y], ...]", path)
        if len(pts) < 3:
            continue
        key = (str(s.get("label")), s.get("group_id"))
        if key not in keys:
            keys.append(key)
        cv2.fillPoly(index, [np.round(pts).astype(np.int32)], keys.index(key) + 1)
    return [(k[0], k[1], index == i + 1) for i, k in enumerate(keys)]


def to_coco(
    src: str | Path, dst: str | Path, *, classes: Any = None, mapping: Any = None, overwrite: bool = False
) -> ConversionReport:
    """Convert a folder of LabelMe JSON files (and their images) into a canonical data set."""
    report = ConversionReport(NAME, "to_coco", str(src), str(dst))
    src = require_dir(src, "LabelMe folder")
    files = [p for p in _json_files(src)]
    if not files:
        raise DataError("no LabelMe JSON files found", src)
    table = load_class_table(classes) or [{"id": i + 1, "name": n} for i, n in enumerate(CLASSES)]
    with open_output(dst, report, mapping, overwrite) as w:
        cat_of: dict[str, int] = {}
        for c in table:
            w.add_category(c["id"], c["name"], c.get("color"))
            cat_of[c["name"]] = c["id"]
        for js in iter_with_progress(files, "LabelMe"):
            data = read_json(js)
            if not isinstance(data, dict) or not isinstance(data.get("shapes"), list):
                raise DataError("not a LabelMe file (no 'shapes' list)", js)
            img = _image_for(js, data, src)
            h, wd = frame_size(img)
            if data.get("imageHeight") and (int(data["imageHeight"]), int(data.get("imageWidth", wd))) != (
                h,
                wd,
            ):
                raise DataError(
                    f"imageHeight/imageWidth {data['imageHeight']}x{data.get('imageWidth')} differ from "
                    f"the image's {h}x{wd}",
                    js,
                )
            kw: dict[str, Any] = {}
            m = VIDEO_RE.search(js.stem)
            if m:
                kw = {"video_id": w.add_video(m.group(1)), "frame_num": int(m.group(2))}
            rel = f"images/{img.name}"
            iid = w.add_image(rel, h, wd, **kw)
            for label, group, mask in rasterise(data["shapes"], h, wd, js):
                if label not in cat_of:
                    cat_of[label] = max(cat_of.values(), default=0) + 1
                    w.add_category(cat_of[label], label)
                    report.warn(f"label {label!r} is not in the class table: added as id {cat_of[label]}", js)
                if mask.any():
                    w.add_annotation(iid, cat_of[label], mask, group_id=group)
            w.place_image(img, rel)
    return report


def mask_outlines(mask: np.ndarray) -> tuple[list[list[list[float]]], int]:
    """Outer contours of a mask as LabelMe point lists (pixel coordinates) and the number of hole pixels lost."""
    import cv2

    m = np.ascontiguousarray(mask.astype(np.uint8))
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    polys = [c.reshape(-1, 2).astype(float).tolist() for c in contours]
    filled = np.zeros_like(m)
    cv2.fillPoly(filled, [c for c in contours], 1)
    return polys, int(filled.sum() - m.sum())


def from_coco(
    src: str | Path, dst: str | Path, *, mapping: Any = None, overwrite: bool = False
) -> ConversionReport:
    """Write ``img_dir/`` + ``ann_dir/`` LabelMe files; instance number per class becomes ``group_id``."""
    report = ConversionReport(NAME, "from_coco", str(src), str(dst))
    ds = apply_mapping(load_coco(src), load_mapping(mapping), report)
    with open_export(dst, overwrite) as root:
        for iid in iter_with_progress(list(ds.images), "LabelMe"):
            im = ds.images[iid]
            name = Path(im["file_name"]).name
            link_or_copy(ds.image_path(iid), root / "img_dir" / name)
            shapes, seen = [], {}
            for a in ds.image_anns(iid):
                cname = ds.categories.get(a["category_id"], {}).get("name", str(a["category_id"]))
                seen[cname] = seen.get(cname, 0) + 1
                group = a.get("group_id", seen[cname])
                polys, lost = mask_outlines(ds.mask(a))
                if lost:
                    report.warn(
                        "instance with holes: holes filled (LabelMe polygons have no holes)", im["file_name"]
                    )
                    report.count("hole_pixels_filled", lost)
                for pts in polys:
                    shapes.append(
                        {
                            "label": cname,
                            "points": pts,
                            "group_id": group,
                            "description": "",
                            "shape_type": "polygon",
                            "flags": {},
                        }
                    )
            doc = {
                "version": "1.0.0",
                "flags": {},
                "shapes": shapes,
                "imagePath": f"img_dir/{name}",
                "imageData": None,
                "imageHeight": int(im["height"]),
                "imageWidth": int(im["width"]),
            }
            write_json(root / "ann_dir" / f"{Path(name).stem}.json", doc, indent=1)
            report.count("images")
            report.count("annotations", len(ds.image_anns(iid)))
    return report
