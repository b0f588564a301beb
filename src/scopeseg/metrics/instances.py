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


def check_prediction_categories(gt: dict, dts: list[dict], source: str = "predictions") -> None:
    """One-line ``DataError`` when predictions use category ids absent from the GT (the silent AP=0 trap)."""
    known = {c["id"] for c in gt.get("categories", [])}
    used = {d.get("category_id") for d in dts}
    unknown = sorted(used - known, key=str)
    if unknown:
        raise DataError(
            f"prediction category ids {unknown[:5]} do not exist in the ground truth "
            f"(known ids: {sorted(known, key=str)[:10]})",
            source,
        )
    images = {im["id"] for im in gt.get("images", [])}
    missing = sorted({d.get("image_id") for d in dts} - images, key=str)
    if missing:
        raise DataError(f"prediction image ids {missing[:5]} do not exist in the ground truth", source)


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
    if not isinstance(dt_l, list):
        raise DataError("COCO results must be a JSON list of detections", dt_source)
    check_prediction_categories(gt_d, dt_l, dt_source)
    if iou_type == "segm":
        for d in dt_l:
            if "segmentation" not in d:
                raise DataError(f"detection for image {d.get('image_id')} has no 'segmentation'", dt_source)
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
    Each instance is a detection of every class k with score ``score_dist[k-1]``; instances are matched per
    image in decreasing order of their max score; frames without GT contribute false positives.
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
            gsel = gt_labels == c
            s = dist[:, c]
            tp = _greedy_tp(iou_all[:, gsel], iou_threshold) if gsel.any() else np.zeros(len(inst), bool)
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


def parse_frame_predictions(obj: Sequence[dict] | dict) -> dict[str, dict]:
    """TAPIS prediction files: a list of ``{frame: {...}}`` entries (seed 000) or one dict keyed by frame."""
    if isinstance(obj, dict):
        return obj
    out: dict[str, dict] = {}
    for i, entry in enumerate(obj):
        if not isinstance(entry, dict):
            raise DataError(f"prediction entry {i} is a {type(entry).__name__}, expected {{frame: {{...}}}}")
        out.update(entry)
    return out


def tapis_map50_segm(coco_gt: dict, predictions: dict) -> float:
    """TAPIS ``mAP@0.5IoU_segm`` (VOC-style, class-score distributions) of frame-keyed predictions."""
    return voc_instance_map(coco_gt, predictions)["map"]
