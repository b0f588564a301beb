"""TAPIS/LEMIS prediction files <-> COCO results JSON, so either side's outputs can be scored by the other.

TAPIS layout (BCV-Uniandes/GraSP ``TAPIS/data/match_annots_n_preds.py`` and its evaluation code): a JSON
object keyed by image ``file_name``, each ``{"instances": [{"bbox": [x1, y1, x2, y2] (normalised to 0..1),
"instruments_score_dist": [p_1 .. p_K], "segment": RLE}, ...]}``; the class of an instance is
``argmax + 1``. COCO results: ``[{"image_id", "category_id", "segmentation", "bbox" [x, y, w, h],
"score", "score_dist"}]``. The ground-truth data set (``gt``) supplies image ids, sizes and the sorted
category ids that score positions map to. A results file without ``score_dist`` exports a one-hot
distribution (the other classes' scores are not known: documented loss).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConfigError, DataError
from ...io import read_json, write_json
from ...metrics.instances import check_frame_instances
from .. import rle as rle_utils
from ..coco import CocoDataset
from ._base import ConversionReport, check_destination, iter_with_progress

NAME = "tapis-preds"
ALIASES = ("lemis-preds",)
DESCRIPTION = "TAPIS/LEMIS predictions {file_name: {instances: [bbox, instruments_score_dist, segment]}}"
CORE = ("bbox", "instruments_score_dist", "segment")


def detect(src: Path) -> int:
    if not src.is_file() or src.suffix.lower() != ".json" or src.stat().st_size > 2_000_000_000:
        return 0
    try:
        data = read_json(src)
    except DataError:
        return 0
    if isinstance(data, dict) and data:
        first = next(iter(data.values()))
        return 3 if isinstance(first, dict) and "instances" in first else 0
    return 0


def _gt(gt: Any) -> CocoDataset:
    if gt is None:
        raise ConfigError("TAPIS prediction conversion needs the ground-truth data set (gt=DATA)")
    return gt if isinstance(gt, CocoDataset) else CocoDataset.load(gt)


def _name_index(ds: CocoDataset) -> dict[str, int]:
    index: dict[str, int] = {}
    dup: set[str] = set()
    for iid, im in ds.images.items():
        index[im["file_name"]] = iid
        base = Path(im["file_name"]).name
        if base in index and index[base] != iid:
            dup.add(base)
        index.setdefault(base, iid)
    for d in dup:
        index.pop(d, None)
    return index


def to_coco(src: str | Path, dst: str | Path, *, gt: Any = None, overwrite: bool = False) -> ConversionReport:
    """TAPIS prediction JSON -> COCO results JSON (list) at ``dst``."""
    report = ConversionReport(NAME, "to_coco", str(src), str(dst))
    ds = _gt(gt)
    check_destination(dst, overwrite)
    data = read_json(src)
    if not isinstance(data, dict):
        raise DataError("TAPIS predictions must be a JSON object keyed by image file_name", src)
    names = _name_index(ds)
    cats = sorted(ds.categories)
    ids = {}
    for key in data:
        ids[key] = names.get(key)  # exact file_name, or a bare name that is unique in the ground truth
        if ids[key] is None:
            raise DataError(f"prediction for {key!r}, an image the ground truth does not have", src)
    sizes = {k: (int(ds.images[i]["height"]), int(ds.images[i]["width"])) for k, i in ids.items()}
    check_frame_instances(data, sizes, len(cats), src)
    results = []
    for key in iter_with_progress(list(data), "TAPIS"):
        entry, iid = data[key], ids[key]
        h, w = sizes[key]
        for inst in entry.get("instances", []):
            dist = inst["instruments_score_dist"]
            best = int(np.argmax(dist))
            rec: dict[str, Any] = {
                "image_id": iid,
                "category_id": cats[best],
                "score": float(dist[best]),
                "score_dist": [float(v) for v in dist],
            }
            seg = inst.get("segment")
            if seg is not None:
                rec["segmentation"] = rle_utils.compress(seg)
            if inst.get("bbox") is not None:
                x1, y1, x2, y2 = (float(v) for v in inst["bbox"])
                rec["bbox"] = [x1 * w, y1 * h, (x2 - x1) * w, (y2 - y1) * h]
            elif seg is not None:
                rec["bbox"] = rle_utils.bbox(rec["segmentation"])
            rec.update({kk: v for kk, v in inst.items() if kk not in CORE})
            results.append(rec)
    write_json(dst, results)
    report.count("images", len(data))
    report.count("predictions", len(results))
    return report


def from_coco(
    src: str | Path, dst: str | Path, *, gt: Any = None, overwrite: bool = False
) -> ConversionReport:
    """COCO results JSON (list) -> TAPIS prediction JSON keyed by image file_name (every GT image listed)."""
    report = ConversionReport(NAME, "from_coco", str(src), str(dst))
    ds = _gt(gt)
    check_destination(dst, overwrite)
    results = read_json(src)
    if not isinstance(results, list):
        raise DataError(
            "COCO results must be a JSON list of {image_id, category_id, segmentation, score}", src
        )
    cats = sorted(ds.categories)
    pos = {c: i for i, c in enumerate(cats)}
    out: dict[str, dict] = {ds.images[i]["file_name"]: {"instances": []} for i in ds.images}
    one_hot = 0
    for k, r in enumerate(iter_with_progress(results, "TAPIS")):
        if not isinstance(r, dict) or r.get("image_id") not in ds.images:
            raise DataError(
                f"result {k}: image_id {r.get('image_id') if isinstance(r, dict) else r!r} is not in "
                f"the ground truth",
                src,
            )
        if r.get("category_id") not in pos:
            raise DataError(
                f"result {k}: category_id {r.get('category_id')} is not a ground-truth category {cats}", src
            )
        im = ds.images[r["image_id"]]
        h, w = int(im["height"]), int(im["width"])
        dist = r.get("score_dist")
        if dist is None:
            dist = [0.0] * len(cats)
            dist[pos[r["category_id"]]] = float(r.get("score", 1.0))
            one_hot += 1
        inst: dict[str, Any] = {"instruments_score_dist": [float(v) for v in dist]}
        if r.get("bbox") is not None:
            x, y, bw, bh = (float(v) for v in r["bbox"])
            inst["bbox"] = [x / w, y / h, (x + bw) / w, (y + bh) / h]
        if r.get("segmentation") is not None:
            inst["segment"] = rle_utils.compress(r["segmentation"])
        inst.update(
            {
                kk: v
                for kk, v in r.items()
                if kk not in ("image_id", "category_id", "score", "score_dist", "bbox", "segmentation")
            }
        )
        out[im["file_name"]]["instances"].append(inst)
    if one_hot:
        report.warn(f"{one_hot} result(s) without score_dist: written as one-hot distributions")
    write_json(dst, out)
    report.count("images", len(out))
    report.count("predictions", len(results))
    return report
