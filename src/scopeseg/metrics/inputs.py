"""Read evaluation inputs into matched (ground truth, prediction) label-map pairs.

Why: ``scopeseg evaluate`` accepts COCO JSON / mask folders / MedSAM npz folders for the ground truth and
a predicted data set folder (what ``predict`` / ``segment`` write as ``predicted/``), COCO results JSON, mask
folders or npz folders for predictions; every pixel protocol works on the same pairs. Label values are class
indices 1..K by sorted category id (``CocoDataset.class_map``), 0 = background. Predictions of a COCO ground
truth are matched to it by image id and category id (a predicted data set's category names must agree).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..io import IMAGE_SUFFIXES, read_json

log = logging.getLogger(__name__)


@dataclass
class Pair:
    """One scored item: integer label maps of equal shape plus its identity (and video / frame if known)."""

    key: str
    gt: np.ndarray
    pred: np.ndarray
    spacing: tuple[float, ...] | None = None
    video: str | None = None
    frame: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def input_kind(path: str | Path, role: str) -> str:
    """'coco' (GT JSON / folder with annotations.json), 'dataset' (predictions folder with annotations.json),
    'results' (COCO results JSON list), 'masks' or 'npz'."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{role} not found", p)
    if p.is_file():
        if p.suffix.lower() != ".json":
            raise DataError(
                f"{role} must be a JSON file or a folder, got a {p.suffix or 'suffix-less'} file", p
            )
        return "coco" if role == "ground truth" else "results"
    if (p / "annotations.json").is_file():
        return "coco" if role == "ground truth" else "dataset"
    if any(p.rglob("*.npz")):
        return "npz"
    if any(f.suffix.lower() in IMAGE_SUFFIXES or f.suffix.lower() == ".npy" for f in p.rglob("*")):
        return "masks"
    raise DataError(f"{role} folder holds no annotations.json, .npz files or mask images", p)


def mask_files(folder: Path) -> dict[str, Path]:
    """Mask images / .npy files under ``folder`` keyed by relative path without suffix."""
    out = {}
    for f in sorted(folder.rglob("*")):
        if f.is_file() and (f.suffix.lower() in IMAGE_SUFFIXES or f.suffix.lower() == ".npy"):
            out[str(f.relative_to(folder).with_suffix(""))] = f
    return out


def read_label_map(path: Path) -> np.ndarray:
    """Integer label map from a PNG/TIFF/... (first channel if colour) or a .npy array."""
    if path.suffix.lower() == ".npy":
        try:
            a = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as e:
            raise DataError(f"unreadable .npy mask ({e})", path) from None
    else:
        from ..io import read_image

        a = read_image(path, mode="unchanged")
    if a.ndim == 3:
        if not (np.array_equal(a[..., 0], a[..., 1]) and np.array_equal(a[..., 0], a[..., -1])):
            raise DataError("colour mask: expected a single-channel label map (class index per pixel)", path)
        a = a[..., 0]
    if a.dtype.kind == "f":
        raise DataError(
            "mask holds floats: expected integer class indices (probability maps go to tune-threshold)", path
        )
    return a


def _binary_255(a: np.ndarray) -> np.ndarray:
    """0/255 binary masks of a foreign mask folder become 0/1 (the common PNG convention for one class).

    Only for mask folders made elsewhere: scopeseg's own predictions are read from their data set / results
    JSON, never from the PNG views.
    """
    vals = np.unique(a)
    if set(vals.tolist()) <= {0, 255} and 255 in vals:
        return (a > 0).astype(np.uint8)
    return a


def _frame_from_key(key: str) -> tuple[str | None, int | None]:
    parts = key.replace("\\", "/").split("/")
    video = "/".join(parts[:-1]) or None
    digits = "".join(ch for ch in parts[-1] if ch.isdigit())
    return video, (int(digits) if digits else None)


def _coco_results_label_map(
    dts: list[dict], h: int, w: int, class_map: dict[int, int], score_thr: float
) -> np.ndarray:
    from ..data import rle as rle_mod

    out = np.zeros((h, w), np.uint8)
    for d in sorted(dts, key=lambda d: d.get("score", 1.0)):  # highest score painted last = wins
        if d.get("score", 1.0) < score_thr:
            continue
        seg = d.get("segmentation")
        if isinstance(seg, dict):
            m = rle_mod.decode(seg)
        elif isinstance(seg, list):
            m = rle_mod.decode(rle_mod.polygons_to_rle(seg, h, w))
        else:
            raise DataError(f"detection for image {d.get('image_id')} has no segmentation")
        if m.shape != (h, w):
            raise DataError(f"detection for image {d.get('image_id')}: mask {m.shape} but image is {(h, w)}")
        out[m.astype(bool)] = class_map[d["category_id"]]
    return out


def dataset_results(ds: Any) -> list[dict[str, Any]]:
    """A predicted data set's annotations as COCO results (``image_id, category_id, segmentation, bbox, score``)."""
    keys = ("image_id", "category_id", "segmentation", "bbox")
    return [{**{k: a[k] for k in keys}, "score": float(a.get("score", 1.0))} for a in ds.annotations.values()]


def read_predicted_dataset(gt: Any, pred: Path, other_categories: bool = False) -> list[dict[str, Any]]:
    """COCO results of a predicted data set folder, checked against the ground truth ``gt`` (a CocoDataset).

    Categories match by id and must carry the same name (``other_categories``: categories that are no
    ground-truth category are let through); every image must be a ground-truth image of the same size, and
    every ground-truth image must have been predicted (one-line ``DataError`` otherwise).
    """
    from ..data.coco import CocoDataset

    pds = CocoDataset.load(pred, files=False)  # a predicted set may be written without images
    for cid, c in sorted(pds.categories.items()):
        if cid not in gt.categories and other_categories:
            continue
        if cid not in gt.categories:
            known = ", ".join(f"{k} {v.get('name')}" for k, v in sorted(gt.categories.items()))
            raise DataError(
                f"prediction category {cid} ({c.get('name')!r}) is no ground-truth category ({known})", pred
            )
        if c.get("name") != gt.categories[cid].get("name"):
            raise DataError(
                f"prediction category {cid} is {c.get('name')!r} but ground-truth category {cid} is "
                f"{gt.categories[cid].get('name')!r}",
                pred,
            )
    for iid, im in pds.images.items():
        g = gt.images.get(iid)
        if g is None:
            raise DataError(
                f"predicted image {iid} ({im.get('file_name')!r}) is no ground-truth image id", pred
            )
        if (int(g["height"]), int(g["width"])) != (int(im["height"]), int(im["width"])):
            raise DataError(
                f"predicted image {iid} is {im['height']}x{im['width']}, ground truth {g['height']}x{g['width']}",
                pred,
            )
    missing = [i for i in gt.images if i not in pds.images]
    if missing:
        raise DataError(
            f"{len(missing)} ground-truth images were not predicted, e.g. image {missing[0]}", pred
        )
    return dataset_results(pds)


def load_pairs(
    gt: str | Path, pred: str | Path, score_thr: float = 0.5, other_categories: bool = False
) -> tuple[list[Pair], dict[str, Any]]:
    """Matched label-map pairs and the class table ``{"classes": {index: name}, "gt_kind", "pred_kind"}``.

    ``other_categories``: predicted categories that are no ground-truth category get label K+1 instead of an
    error (foreground scoring of a one-class model against ground-truth categories the caller selected).
    """
    gk, pk = input_kind(gt, "ground truth"), input_kind(pred, "predictions")
    gt, pred = Path(gt), Path(pred)
    if gk == "npz" or pk == "npz":
        if not (gk == "npz" and pk == "npz"):
            raise DataError(
                "npz predictions need an npz ground-truth folder (MedSAM layout: gts / segs)", pred
            )
        pairs = list(_npz_pairs(gt, pred))
        labels = _label_values(pairs)
        return pairs, {"classes": {v: f"class {v}" for v in labels}, "gt_kind": gk, "pred_kind": pk}
    if gk == "coco":
        from ..data.coco import CocoDataset

        ds = CocoDataset.load(gt)
        cmap = ds.class_map()
        classes = {cmap[c]: ds.categories[c].get("name", str(c)) for c in sorted(ds.categories)}
        pairs = list(_coco_pairs(ds, pred, pk, cmap, score_thr, other_categories))
    else:
        if pk != "masks":
            raise DataError("a mask-folder ground truth needs a mask-folder prediction", pred)
        pairs = list(_folder_pairs(gt, pred))
        labels = _label_values(pairs)
        classes = {v: f"class {v}" for v in labels}
    if not pairs:
        raise DataError("no prediction matches a ground-truth item (check file names / image ids)", pred)
    return pairs, {"classes": classes, "gt_kind": gk, "pred_kind": pk}


def _label_values(pairs: list[Pair]) -> list[int]:
    """Non-zero label values seen in the ground truth or the predictions (classes of folder / npz inputs)."""
    return sorted({int(v) for p in pairs for a in (p.gt, p.pred) for v in np.unique(a) if v})


def _npz_pairs(gt: Path, pred: Path) -> Iterator[Pair]:
    gts = {str(f.relative_to(gt)): f for f in sorted(gt.rglob("*.npz"))}
    for rel, gf in gts.items():
        pf = pred / rel
        if not pf.is_file():
            raise DataError(f"no prediction for case {rel}", pred)
        with np.load(gf, allow_pickle=False) as g, np.load(pf, allow_pickle=False) as p:
            if "gts" not in g:
                raise DataError("ground-truth npz has no 'gts' array", gf)
            if "segs" not in p:
                raise DataError("prediction npz has no 'segs' array", pf)
            g_arr, p_arr = g["gts"], p["segs"]
            spacing = tuple(float(s) for s in g["spacing"]) if "spacing" in g and g_arr.ndim == 3 else None
        if g_arr.shape != p_arr.shape:
            raise DataError(f"segs shape {p_arr.shape} differs from gts shape {g_arr.shape}", pf)
        yield Pair(rel, g_arr, p_arr, spacing)


def _folder_pairs(gt: Path, pred: Path) -> Iterator[Pair]:
    gfiles, pfiles = mask_files(gt), mask_files(pred)
    missing = [k for k in gfiles if k not in pfiles]
    if missing:
        raise DataError(f"{len(missing)} ground-truth masks have no prediction, e.g. {missing[0]!r}", pred)
    for key, gf in gfiles.items():
        g = _binary_255(read_label_map(gf))
        p = _binary_255(read_label_map(pfiles[key]))
        if g.shape != p.shape:
            raise DataError(f"prediction shape {p.shape} differs from ground truth {g.shape}", pfiles[key])
        video, frame = _frame_from_key(key)
        yield Pair(key, g, p, None, video, frame)


def _coco_pairs(
    ds: Any, pred: Path, pk: str, cmap: dict[int, int], score_thr: float, other_categories: bool = False
) -> Iterator[Pair]:
    from .instances import check_detections

    if pk in ("results", "dataset"):
        if pk == "dataset":
            dts = read_predicted_dataset(ds, pred, other_categories)
        else:
            sizes = {iid: (int(im["height"]), int(im["width"])) for iid, im in ds.images.items()}
            dts = check_detections(
                read_json(pred), sizes, None if other_categories else set(ds.categories), pred
            )
        by_img: dict[Any, list[dict]] = {}
        for d in dts:
            by_img.setdefault(d["image_id"], []).append(d)
        # categories the ground truth lacks (let through only with other_categories) paint label K+1
        pmap = {**{d["category_id"]: len(cmap) + 1 for d in dts}, **cmap}
    elif pk == "masks":
        pfiles = mask_files(pred)
    else:
        raise DataError(
            "COCO ground truth needs a predicted data set, COCO results JSON or a mask folder as predictions",
            pred,
        )
    n_cls = len(cmap)
    for iid, im in ds.images.items():
        h, w = int(im["height"]), int(im["width"])
        key = str(Path(str(im.get("file_name", iid))).with_suffix(""))
        if pk in ("results", "dataset"):
            p = _coco_results_label_map(by_img.get(iid, []), h, w, pmap, score_thr)
        else:
            f = pfiles.get(key) or pfiles.get(Path(key).name)
            if f is None:
                raise DataError(
                    f"no prediction mask for image {im.get('file_name')!r} (expected {key}.png)", pred
                )
            p = _binary_255(read_label_map(f))
            if p.shape != (h, w):
                raise DataError(f"mask shape {p.shape} but image {im.get('file_name')!r} is {(h, w)}", f)
            bad = np.unique(p[p > n_cls])
            if bad.size:
                raise DataError(
                    f"label value {int(bad[0])} is not a class index of the ground truth (1..{n_cls})", f
                )
        vid = im.get("video_id")
        video = ds.videos.get(vid, {}).get("name", str(vid)) if vid is not None else None
        extra: dict[str, Any] = {"image_id": iid}
        try:
            path = ds.image_path(iid)
            if path.is_file():
                extra["image_path"] = path
        except DataError:
            pass
        yield Pair(key, ds.semantic_mask(iid, cmap), p, None, video, im.get("frame_index"), extra)
