"""Instance metrics: COCO AP (faster-coco-eval; same 12 stats as pycocotools) and VOC-style mAP@0.5.

Why: "mAP@0.5" in surgical papers is often the VOC/TF-object-detection AP (TAPIS ``evaluate.py``: each
predicted instance is scored for every class with its class-score distribution, greedy matching at mask
IoU >= 0.5, all-point interpolated AP), which differs from COCO's 101-point AP@[.5:.95]. Both are named here.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError

log = logging.getLogger(__name__)

COCO_STAT_NAMES = (
    "AP",
    "AP50",
    "AP75",
    "AP_small",
    "AP_medium",
    "AP_large",
    "AR1",
    "AR10",
    "AR100",
    "AR_small",
    "AR_medium",
    "AR_large",
)


def _load_json(obj: str | Path | dict | list, what: str) -> Any:
    """Parsed JSON (orjson: COCO files are large); a dict / list passes through."""
    if isinstance(obj, (dict, list)):
        return obj
    import orjson

    path = Path(obj)
    if not path.is_file():
        raise DataError(f"{what} file not found", path)
    try:
        return orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as e:
        raise DataError(f"malformed JSON ({e})", path) from None


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _segmentation_problem(seg: Any, h: int, w: int) -> str | None:
    """What is wrong with a result's segmentation for an ``h`` x ``w`` image (None: it is usable)."""
    from ..data import rle as rle_utils

    if isinstance(seg, dict):
        size = seg.get("size")
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size)):
            return f"RLE size {size!r} is not [height, width]"
        if tuple(size) != (h, w):
            return f"RLE size {size} differs from the image's [{h}, {w}]"
        if rle_utils.counts_totals([seg])[0] != h * w:
            return "RLE counts are malformed or do not cover the image"
        return None
    if isinstance(seg, list) and seg:
        for ring in seg:
            if not (isinstance(ring, list) and len(ring) >= 6 and len(ring) % 2 == 0):
                return "polygon ring needs an even number (>= 6) of coordinates"
            if not all(_number(v) for v in ring):
                return "polygon coordinates must be finite numbers"
        return None
    return "segmentation must be an RLE {size, counts} or a list of polygons"


def check_detections(
    dts: Any,
    images: dict[Any, tuple[int, int]],
    categories: set | None,
    source: str | Path = "predictions",
    need: tuple[str, ...] = ("segmentation",),
) -> list[dict]:
    """Check COCO results before scoring: one-line ``DataError`` naming the result and its problem.

    Why: the scorers crash (KeyError, NaN asserts) or silently score 0 on bad results. Each result must be an
    object with a ground-truth ``image_id`` (``images``: id -> (h, w)), a known ``category_id``
    (``categories``; None = any), a finite ``score`` and, as ``need`` says, a ``segmentation`` of the image's
    size and / or a finite ``bbox`` ``[x, y, w, h]``.
    """
    if not isinstance(dts, list):
        raise DataError("COCO results must be a JSON list of detections", source)
    for k, d in enumerate(dts):
        if not isinstance(d, dict):
            raise DataError(f"result {k} is a {type(d).__name__}, expected an object", source)
        iid = d.get("image_id")
        if not isinstance(iid, int) or isinstance(iid, bool):
            raise DataError(f"result {k}: image_id {iid!r} is not an integer", source)
        cid = d.get("category_id")
        if not isinstance(cid, int) or isinstance(cid, bool):
            raise DataError(f"result {k}: category_id {cid!r} is not an integer", source)
    # unknown ids all at once: the usual cause is a whole id scheme (AP would silently be 0)
    if categories is not None:
        unknown = sorted({d.get("category_id") for d in dts} - set(categories), key=str)
        if unknown:
            raise DataError(
                f"prediction category ids {unknown[:5]} do not exist in the ground truth "
                f"(known ids: {sorted(categories, key=str)[:10]})",
                source,
            )
    missing = sorted({d["image_id"] for d in dts} - set(images))
    if missing:
        raise DataError(f"prediction image ids {missing[:5]} do not exist in the ground truth", source)
    for k, d in enumerate(dts):
        iid = d["image_id"]
        if "score" not in d:
            raise DataError(f"result {k}: no 'score'", source)
        if not _number(d["score"]):
            raise DataError(f"result {k}: score {d['score']!r} is not a finite number", source)
        if "segmentation" in need:
            if "segmentation" not in d:
                raise DataError(f"result {k} (image {iid}): no 'segmentation'", source)
            problem = _segmentation_problem(d["segmentation"], *images[iid])
            if problem:
                raise DataError(f"result {k} (image {iid}): {problem}", source)
        if "bbox" in need:
            box = d.get("bbox")
            if not (isinstance(box, list) and len(box) == 4 and all(_number(v) for v in box)):
                raise DataError(f"result {k} (image {iid}): bbox {box!r} is not 4 finite numbers", source)
            if box[2] < 0 or box[3] < 0:
                raise DataError(f"result {k} (image {iid}): bbox {box} has a negative size", source)
    return dts


def image_sizes(gt: dict) -> dict[Any, tuple[int, int]]:
    """Image id -> (height, width) of a COCO ground-truth dict."""
    return {im["id"]: (int(im["height"]), int(im["width"])) for im in gt.get("images", [])}


def coco_evaluate(
    gt: str | Path | dict,
    dts: str | Path | list[dict],
    iou_type: str = "segm",
    dt_source: str = "predictions",
) -> dict[str, Any]:
    """COCO evaluation with faster-coco-eval: ``{"stats": [12], "named": {...}, "per_category_ap": {...}}``.

    Prediction category / image ids are checked against the GT first (one-line error instead of AP=0).
    """
    from faster_coco_eval import COCO, COCOeval_faster

    gt_d = _load_json(gt, "ground truth")
    dt_l = _load_json(dts, "predictions")
    categories = {c["id"] for c in gt_d.get("categories", [])}
    check_detections(
        dt_l, image_sizes(gt_d), categories, dt_source, ("segmentation",) if iou_type == "segm" else ("bbox",)
    )
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(gt_d)
        if not dt_l:
            stats = [-1.0] * 12
            return {"stats": stats, "named": dict(zip(COCO_STAT_NAMES, stats)), "per_category_ap": {}}
        coco_dt = coco_gt.loadRes(dt_l)
        ev = COCOeval_faster(coco_gt, coco_dt, iou_type, print_function=log.debug)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    stats = [float(s) for s in ev.stats[:12]]
    prec = ev.eval["precision"]  # [T, R, K, A, M]
    per_cat = {}
    for k, cid in enumerate(ev.params.catIds):
        p = prec[:, :, k, 0, -1]
        p = p[p > -1]
        name = coco_gt.cats[cid].get("name", str(cid))
        per_cat[name] = float(np.mean(p)) if p.size else math.nan
    return {"stats": stats, "named": dict(zip(COCO_STAT_NAMES, stats)), "per_category_ap": per_cat}


def coco_stats(gt_json_path: str | Path, dt_json_path: str | Path, iou_type: str = "segm") -> list[float]:
    """The 12 ``COCOeval.stats`` (AP, AP50, AP75, APs/m/l, AR1/10/100, ARs/m/l) of a GT and a results file."""
    return coco_evaluate(gt_json_path, dt_json_path, iou_type, dt_source=str(dt_json_path))["stats"]


# ------------------------------------------------------------------------------- VOC-style (TAPIS) AP
def voc_average_precision(scores: np.ndarray, tp: np.ndarray, num_gt: int) -> float:
    """All-point interpolated AP (VOCdevkit / TF object detection ``metrics.py``); NaN when ``num_gt`` is 0."""
    if num_gt == 0:
        return math.nan
    if scores.size == 0:
        return 0.0
    order = np.argsort(scores)[::-1]
    tps = tp.astype(int)[order]
    ctp, cfp = np.cumsum(tps), np.cumsum(1 - tps)
    prec = ctp.astype(float) / (ctp + cfp)
    rec = ctp.astype(float) / num_gt
    rec = np.concatenate([[0], rec, [1]])
    prec = np.concatenate([[0], prec, [0]])
    prec = np.maximum.accumulate(prec[::-1])[::-1]
    idx = np.where(rec[1:] != rec[:-1])[0] + 1
    return float(np.sum((rec[idx] - rec[idx - 1]) * prec[idx]))


def _greedy_tp(iou: np.ndarray, threshold: float) -> np.ndarray:
    """TF-OD per-image matching: detections in the given order take their best GT if unmatched and IoU >= t."""
    n_det = iou.shape[0]
    tp = np.zeros(n_det, dtype=bool)
    if iou.shape[1] == 0:
        return tp
    best = np.argmax(iou, axis=1)
    taken = np.zeros(iou.shape[1], dtype=bool)
    for i in range(n_det):
        g = best[i]
        if iou[i, g] >= threshold and not taken[g]:
            tp[i] = True
            taken[g] = True
    return tp


def voc_instance_map(
    coco_gt: dict,
    predictions: dict[str, dict],
    score_key: str = "instruments_score_dist",
    iou_threshold: float = 0.5,
) -> dict[str, Any]:
    """VOC-style mask mAP@``iou_threshold`` as TAPIS ``instance_segmentation_eval.py`` computes it.

    ``predictions``: ``{file_name: {"instances": [{"bbox", score_key: [per-class scores], "segment": RLE}]}}``.
    Each instance is replicated once per class k with score ``score_dist[k-1]``; per image and class the
    replicas are matched greedily in decreasing order of that class score at mask IoU >= ``iou_threshold``
    (a detection whose best GT is already taken is a false positive); VOC all-points AP per class; the mean
    is over classes that have GT. Frames without GT contribute false positives.
    """
    from pycocotools import mask as mask_api

    cats = coco_gt.get("instruments_categories") or coco_gt["categories"]
    n_cls = len(cats)
    num_class = max(int(c["id"]) for c in cats)
    id2img = {im["id"]: im for im in coco_gt["images"]}
    sizes = {im["file_name"]: (int(im["height"]), int(im["width"])) for im in coco_gt["images"]}
    anns_by_file: dict[str, list[dict]] = {im["file_name"]: [] for im in coco_gt["images"]}
    for a in coco_gt["annotations"]:
        im = id2img.get(a["image_id"])
        if im is None:
            raise DataError(f"annotation {a.get('id')} refers to unknown image id {a['image_id']}")
        anns_by_file[im["file_name"]].append(a)
    num_gt = np.zeros(num_class, dtype=np.int64)
    scores: list[list[np.ndarray]] = [[] for _ in range(num_class)]
    tps: list[list[np.ndarray]] = [[] for _ in range(num_class)]
    for file_name, anns in anns_by_file.items():
        gt_labels = np.array([int(a["category_id"]) - 1 for a in anns], dtype=np.int64)
        for c in range(num_class):
            num_gt[c] += int(np.sum(gt_labels == c))
        pred = predictions.get(file_name)
        if pred is None or not pred.get("instances"):
            continue
        inst = sorted(pred["instances"], key=lambda x: max(x[score_key]), reverse=True)
        h, w = sizes[file_name]
        dt_rles = [_to_rle(x["segment"], h, w, mask_api) for x in inst]
        gt_rles = [_to_rle(a["segmentation"], h, w, mask_api) for a in anns]
        iou_all = (
            np.asarray(mask_api.iou(dt_rles, gt_rles, [0] * len(gt_rles)), dtype=np.float64).reshape(
                len(dt_rles), len(gt_rles)
            )
            if gt_rles
            else np.zeros((len(dt_rles), 0))
        )
        dist = np.array([list(x[score_key])[:n_cls] for x in inst], dtype=np.float64)
        for c in range(min(n_cls, num_class)):
            # TAPIS: every instance is a detection of class c scored by its class-c probability; detections
            # are matched greedily in decreasing order of that score (a stable sort keeps ties in order)
            order = np.argsort(-dist[:, c], kind="stable")
            gsel = gt_labels == c
            s = dist[order, c]
            tp = (
                _greedy_tp(iou_all[order][:, gsel], iou_threshold)
                if gsel.any()
                else np.zeros(len(inst), bool)
            )
            scores[c].append(s)
            tps[c].append(tp)
    ap = np.full(num_class, np.nan)
    for c in range(num_class):
        if num_gt[c] == 0:
            continue
        s = np.concatenate(scores[c]) if scores[c] else np.zeros(0)
        t = np.concatenate(tps[c]) if tps[c] else np.zeros(0, bool)
        ap[c] = voc_average_precision(s, t, int(num_gt[c]))
    names = {int(c["id"]): c.get("name", str(c["id"])) for c in cats}
    per_class = {names.get(c + 1, str(c + 1)): float(ap[c]) for c in range(num_class) if c + 1 in names}
    m = float(np.nanmean(ap)) if np.isfinite(ap).any() else math.nan
    return {"map": m, "per_class_ap": per_class}


def _to_rle(seg: Any, h: int, w: int, mask_api: Any) -> dict:
    if isinstance(seg, dict):
        counts = seg["counts"]
        if isinstance(counts, list):
            return mask_api.frPyObjects(seg, h, w)
        return {
            "size": list(seg["size"]),
            "counts": counts.encode("ascii") if isinstance(counts, str) else counts,
        }
    if isinstance(seg, list):
        return mask_api.merge(mask_api.frPyObjects(seg, h, w))
    raise DataError(f"unsupported segmentation of type {type(seg).__name__}")


def check_frame_instances(
    preds: dict[str, Any],
    sizes: dict[str, tuple[int, int]],
    n_classes: int,
    source: str | Path = "predictions",
    score_key: str = "instruments_score_dist",
) -> dict[str, Any]:
    """Check TAPIS frame predictions: one-line ``DataError`` naming the frame, instance and problem.

    Each frame (``sizes``: file_name -> (h, w) of the ground truth; frames not in it are left to the caller)
    maps to ``{"instances": [...]}``; each instance holds ``score_key``, ``n_classes`` finite scores, and an
    optional ``segment`` RLE of the frame's size.
    """
    for key, entry in preds.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("instances", []), list):
            raise DataError(f"frame {key!r}: expected {{'instances': [...]}}", source)
        for k, inst in enumerate(entry.get("instances", [])):
            where = f"frame {key!r} instance {k}"
            if not isinstance(inst, dict):
                raise DataError(f"{where} is a {type(inst).__name__}, expected an object", source)
            dist = inst.get(score_key)
            if not isinstance(dist, list) or len(dist) != n_classes:
                raise DataError(
                    f"{where}: {score_key} must list {n_classes} class scores (one per ground-truth category)",
                    source,
                )
            if not all(_number(v) for v in dist):
                raise DataError(f"{where}: {score_key} holds a value that is not a finite number", source)
            seg = inst.get("segment")
            if seg is not None and key in sizes:
                problem = _segmentation_problem(seg, *sizes[key])
                if problem:
                    raise DataError(f"{where}: segment: {problem}", source)
    return preds


def parse_frame_predictions(obj: Sequence[dict] | dict) -> dict[str, dict]:
    """TAPIS prediction files: a list of ``{frame: {...}}`` entries (seed 000) or one dict keyed by frame."""
    if isinstance(obj, dict):
        return obj
    if not isinstance(obj, list):
        raise DataError(f"TAPIS predictions are a {type(obj).__name__}, expected an object keyed by frame")
    out: dict[str, dict] = {}
    for i, entry in enumerate(obj):
        if not isinstance(entry, dict):
            raise DataError(f"prediction entry {i} is a {type(entry).__name__}, expected {{frame: {{...}}}}")
        out.update(entry)
    return out


def tapis_map50_segm(coco_gt: dict, predictions: dict) -> float:
    """TAPIS ``mAP@0.5IoU_segm`` (VOC-style, class-score distributions) of frame-keyed predictions."""
    return voc_instance_map(coco_gt, predictions)["map"]
