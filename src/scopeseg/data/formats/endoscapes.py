"""Endoscapes-style per-frame COCO JSON: ``{"image": {...}, "annotations": [...], "categories": [...]}``.

Each file holds one frame's COCO image record (``video_id``, ``frame_id``) and its RLE annotations
(Endoscapes2023, Murali et al. arXiv:2312.12429; the per-frame split of SurgicalSAM2's
``annotation_coco_vid.json`` in ``../shared/data/endoscapes2023_vid04_unclear``). That source writes numbers
as strings, RLE dicts as Python-literal strings and swaps height/width: all three are repaired on import
(the RLE size and the image file decide the size; a swap is reported as a warning).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from ...errors import DataError
from ...io import read_json, write_json
from .. import rle as rle_utils
from ._base import (
    ConversionReport,
    apply_mapping,
    frame_size,
    iter_with_progress,
    link_or_copy,
    load_coco,
    load_mapping,
    natural_key,
    open_export,
    open_output,
    require_dir,
)

NAME = "endoscapes"
DESCRIPTION = "Endoscapes per-frame COCO JSON (image + annotations with RLE, video_id, frame_id)"
INT_FIELDS = (
    "id",
    "image_id",
    "category_id",
    "video_id",
    "frame_id",
    "height",
    "width",
    "instance_id",
    "iscrowd",
)


def _json_files(src: Path) -> list[Path]:
    return sorted(
        (p for p in src.rglob("*.json") if not p.name.startswith(".")), key=lambda p: natural_key(str(p))
    )


def detect(src: Path) -> int:
    if not src.is_dir():
        return 0
    for p in _json_files(src)[:3]:
        try:
            d = read_json(p)
        except DataError:
            return 0
        if isinstance(d, dict) and isinstance(d.get("image"), dict) and "annotations" in d:
            return 2
    return 0


def _ints(rec: dict, path: Path) -> dict:
    out = dict(rec)
    for k in INT_FIELDS:
        if isinstance(out.get(k), str):
            try:
                out[k] = int(float(out[k]))
            except ValueError:
                raise DataError(f"field {k!r} = {out[k]!r} is not a number", path) from None
    return out


def _segmentation(seg: Any, path: Path, aid: Any) -> dict | list:
    if isinstance(seg, str):
        try:
            seg = ast.literal_eval(seg)
        except (ValueError, SyntaxError):
            raise DataError(
                f"annotation {aid}: segmentation string is not a literal RLE/polygon", path
            ) from None
    if isinstance(seg, dict) and "counts" in seg and "size" in seg:
        try:
            return rle_utils.compress(seg)
        except (ValueError, TypeError, UnicodeDecodeError):
            raise DataError(f"annotation {aid}: malformed RLE", path) from None
    if isinstance(seg, list):
        return seg
    raise DataError(f"annotation {aid}: segmentation must be RLE or polygons", path)


def _image_path(js: Path, file_name: str, src: Path) -> Path:
    name = Path(file_name).name
    for folder in (js.parent.parent / "images", js.parent, src / "images", src, js.parent.parent):
        for cand in (folder / file_name, folder / name):
            if cand.is_file():
                return cand
    raise DataError(
        f"image {file_name!r} of this annotation file not found (looked in images/ and beside it)", js
    )


def to_coco(
    src: str | Path, dst: str | Path, *, mapping: Any = None, overwrite: bool = False
) -> ConversionReport:
    """Merge per-frame JSON files into one canonical data set (ids kept; frames ranked by ``frame_id``)."""
    report = ConversionReport(NAME, "to_coco", str(src), str(dst))
    src = require_dir(src, "Endoscapes folder")
    files = _json_files(src)
    if not files:
        raise DataError("no per-frame JSON files found", src)
    with open_output(dst, report, mapping, overwrite) as w:
        categories = None
        for js in iter_with_progress(files, "Endoscapes"):
            data = read_json(js)
            if not isinstance(data, dict) or not isinstance(data.get("image"), dict):
                raise DataError("not a per-frame COCO file (no 'image' object)", js)
            cats = [_ints(c, js) for c in data.get("categories", [])]
            if categories is None:
                categories = cats
                for c in cats:
                    w.add_category(
                        c["id"],
                        c["name"],
                        c.get("color"),
                        **{k: v for k, v in c.items() if k not in ("id", "name", "color")},
                    )
            elif cats and cats != categories:
                raise DataError("categories differ from those of the first file", js)
            im = _ints(data["image"], js)
            img_path = _image_path(js, str(im.get("file_name", "")), src)
            h, wd = frame_size(img_path)
            if (im.get("height"), im.get("width")) == (wd, h) and h != wd:
                report.warn("image record has height and width swapped: sizes taken from the image file", js)
            im["height"], im["width"] = h, wd
            rel = f"images/{img_path.name}"
            vid = im.pop("video_id", None)
            extra = {k: v for k, v in im.items() if k not in ("id", "file_name", "height", "width")}
            if vid is not None:
                extra["video_id"] = w.add_video(str(vid), source_id=vid)
                if "frame_id" in im:
                    extra["frame_num"] = im["frame_id"]
            iid = w.add_image(rel, h, wd, id=im.get("id"), **extra)
            for a in data.get("annotations", []):
                a = _ints(a, js)
                seg = _segmentation(a.get("segmentation"), js, a.get("id"))
                if isinstance(seg, dict) and tuple(seg["size"]) != (h, wd):
                    raise DataError(
                        f"annotation {a.get('id')}: RLE size {seg['size']} differs from the image's "
                        f"{[h, wd]}",
                        js,
                    )
                if isinstance(seg, list):
                    seg = rle_utils.polygons_to_rle(seg, h, wd)
                keep = {
                    k: v
                    for k, v in a.items()
                    if k not in ("id", "image_id", "category_id", "segmentation", "area", "bbox", "iscrowd")
                }
                keep.pop("video_id", None)
                keep["source_id"] = a.get("id")
                if a.get("category_id") not in {c["id"] for c in categories or []}:
                    raise DataError(
                        f"annotation {a.get('id')}: unknown category id {a.get('category_id')}", js
                    )
                w.add_annotation(iid, a["category_id"], seg, **keep)
            w.place_image(img_path, rel)
    return report


def from_coco(
    src: str | Path, dst: str | Path, *, mapping: Any = None, overwrite: bool = False
) -> ConversionReport:
    """Write ``images/`` + ``annotations/<frame>.json`` per image (video_id / frame_id restored)."""
    report = ConversionReport(NAME, "from_coco", str(src), str(dst))
    ds = apply_mapping(load_coco(src), load_mapping(mapping), report)
    cats = [ds.categories[c] for c in sorted(ds.categories)]
    with open_export(dst, overwrite) as root:
        for iid in iter_with_progress(list(ds.images), "Endoscapes"):
            im = dict(ds.images[iid])
            name = Path(im["file_name"]).name
            link_or_copy(ds.image_path(iid), root / "images" / name)
            video = ds.videos.get(im.get("video_id"), {})
            im["file_name"] = name
            if video:
                im["video_id"] = video.get("source_id", im["video_id"])
            im.pop("frame_index", None)
            im.pop("frame_num", None)
            anns = []
            for a in ds.image_anns(iid):
                rec = {k: v for k, v in a.items() if k != "source_id"}
                rec["id"] = a.get("source_id", a["id"])
                rec["segmentation"] = ds.rle(a)
                if "video_id" in im:
                    rec["video_id"] = im["video_id"]
                anns.append(rec)
            write_json(
                root / "annotations" / f"{Path(name).stem}.json",
                {"image": im, "annotations": anns, "categories": cats},
                indent=1,
            )
            report.count("images")
            report.count("annotations", len(anns))
    return report
