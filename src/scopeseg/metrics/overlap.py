"""Overlap metrics (Dice, IoU, precision, recall): binary, per frame, per channel, per class on label maps.

Why: every reference handles empty masks differently, so the rule is always an explicit argument:
``"nan"`` (0/0 -> NaN: DeepMind ``compute_dice_coefficient``), ``"one"`` (0/0 -> 1: MONAI ``ignore_empty=False``),
``"zero"`` (0/0 -> 0) and ``"skip"`` (empty ground truth -> NaN whatever the prediction, so nan-aware means skip
the item: MONAI ``ignore_empty=True``).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..errors import ConfigError, DataError

EmptyRule = Literal["nan", "one", "zero", "skip"]
EMPTY_RULES: dict[str, str] = {
    "nan": "0/0 -> NaN (DeepMind surface-distance, MedSAM scorer)",
    "one": "0/0 -> 1 (MONAI ignore_empty=False)",
    "zero": "0/0 -> 0",
    "skip": "empty ground truth -> NaN, left out of nan-aware means (MONAI ignore_empty=True)",
}
_FILL = {"nan": np.nan, "one": 1.0, "zero": 0.0, "skip": np.nan}


def _check_rule(empty: str) -> None:
    if empty not in EMPTY_RULES:
        raise ConfigError(f"unknown empty-mask rule {empty!r}; choose one of {', '.join(EMPTY_RULES)}")


def _pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape:
        raise DataError(f"prediction shape {pred.shape} differs from ground-truth shape {gt.shape}")
    return (pred if pred.dtype == bool else pred != 0), (gt if gt.dtype == bool else gt != 0)


def confusion(
    pred: np.ndarray, gt: np.ndarray, axes: tuple[int, ...] | None = None
) -> tuple[np.ndarray, ...]:
    """(tp, fp, fn) pixel counts of two binary masks, summed over ``axes`` (None = all)."""
    pred, gt = _pair(pred, gt)
    tp = np.count_nonzero(pred & gt, axis=axes)
    fp = np.count_nonzero(pred & ~gt, axis=axes)
    fn = np.count_nonzero(~pred & gt, axis=axes)
    return np.asarray(tp, np.int64), np.asarray(fp, np.int64), np.asarray(fn, np.int64)


def ratio(num: np.ndarray, den: np.ndarray, gt_count: np.ndarray, empty: EmptyRule) -> np.ndarray:
    """``num / den`` with the empty rule applied where ``den == 0`` (and, for ``skip``, where GT is empty)."""
    _check_rule(empty)
    num, den, gt_count = (np.asarray(a, dtype=np.float64) for a in (num, den, gt_count))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den > 0, num / np.where(den > 0, den, 1.0), _FILL[empty])
    if empty == "skip":
        out = np.where(gt_count > 0, out, np.nan)
    return out


def _scalar(a: np.ndarray) -> float | np.ndarray:
    return float(a) if np.ndim(a) == 0 else a


def dice_from_counts(tp, fp, fn, empty: EmptyRule = "nan"):
    """Dice = 2TP / (2TP + FP + FN) from counts (arrays broadcast)."""
    tp = np.asarray(tp)
    return _scalar(ratio(2 * tp, 2 * tp + fp + fn, tp + np.asarray(fn), empty))


def iou_from_counts(tp, fp, fn, empty: EmptyRule = "nan"):
    """IoU = TP / (TP + FP + FN) from counts (arrays broadcast)."""
    tp = np.asarray(tp)
    return _scalar(ratio(tp, tp + fp + fn, tp + np.asarray(fn), empty))


def dice(pred: np.ndarray, gt: np.ndarray, empty: EmptyRule = "nan") -> float:
    """Dice of two binary masks (any shape); ``empty`` decides the value when both are empty."""
    return dice_from_counts(*confusion(pred, gt), empty=empty)


def iou(pred: np.ndarray, gt: np.ndarray, empty: EmptyRule = "nan") -> float:
    """IoU (Jaccard) of two binary masks (any shape); ``empty`` decides the value when both are empty."""
    return iou_from_counts(*confusion(pred, gt), empty=empty)


def precision(pred: np.ndarray, gt: np.ndarray, empty: EmptyRule = "nan") -> float:
    """TP / (TP + FP); an empty prediction takes the ``empty`` rule."""
    tp, fp, fn = confusion(pred, gt)
    return _scalar(ratio(tp, tp + fp, tp + fn, empty))


def recall(pred: np.ndarray, gt: np.ndarray, empty: EmptyRule = "nan") -> float:
    """TP / (TP + FN) (sensitivity); an empty ground truth takes the ``empty`` rule."""
    tp, fp, fn = confusion(pred, gt)
    return _scalar(ratio(tp, tp + fn, tp + fn, empty))


def per_frame(pred: np.ndarray, gt: np.ndarray, metric: str = "dice", empty: EmptyRule = "nan") -> np.ndarray:
    """Dice or IoU of each leading-axis item (frames ``(N, H, W)`` or channels ``(C, ...)``: multi-label)."""
    pred, gt = _pair(pred, gt)
    counts = confusion(pred, gt, axes=tuple(range(1, pred.ndim)))
    fn = {"dice": dice_from_counts, "iou": iou_from_counts}.get(metric)
    if fn is None:
        raise ConfigError(f"unknown overlap metric {metric!r}; choose dice or iou")
    return np.atleast_1d(fn(*counts, empty=empty))


def class_areas(
    pred_labels: np.ndarray, gt_labels: np.ndarray, num_classes: int, ignore_index: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(intersection, pred area, gt area) per class 0..num_classes-1 of two integer label maps.

    Why: mmsegmentation's ``intersect_and_union`` rule: pixels whose GT equals ``ignore_index`` are dropped;
    labels outside [0, num_classes) count in no class.
    """
    pred_labels, gt_labels = np.asarray(pred_labels), np.asarray(gt_labels)
    if pred_labels.shape != gt_labels.shape:
        raise DataError(
            f"prediction shape {pred_labels.shape} differs from ground-truth shape {gt_labels.shape}"
        )
    p, g = pred_labels.ravel().astype(np.int64), gt_labels.ravel().astype(np.int64)
    if ignore_index is not None:
        keep = g != ignore_index
        p, g = p[keep], g[keep]

    def hist(v: np.ndarray) -> np.ndarray:
        v = v[(v >= 0) & (v < num_classes)]
        return np.bincount(v, minlength=num_classes)[:num_classes]

    return hist(p[p == g]), hist(p), hist(g)


def per_class_dice(
    pred_labels: np.ndarray,
    gt_labels: np.ndarray,
    num_classes: int,
    empty: EmptyRule = "nan",
    ignore_index: int | None = None,
) -> np.ndarray:
    """Dice of each class 0..num_classes-1 of two label maps (one image or a stack); shape ``(num_classes,)``."""
    inter, area_p, area_g = class_areas(pred_labels, gt_labels, num_classes, ignore_index)
    return ratio(2 * inter, area_p + area_g, area_g, empty)


def per_class_iou(
    pred_labels: np.ndarray,
    gt_labels: np.ndarray,
    num_classes: int,
    empty: EmptyRule = "nan",
    ignore_index: int | None = None,
) -> np.ndarray:
    """IoU of each class 0..num_classes-1 of two label maps (one image or a stack); shape ``(num_classes,)``."""
    inter, area_p, area_g = class_areas(pred_labels, gt_labels, num_classes, ignore_index)
    return ratio(inter, area_p + area_g - inter, area_g, empty)
