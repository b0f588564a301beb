"""Data-set-level semantic segmentation metrics as mmsegmentation's ``IoUMetric`` computes them.

Why: mmseg sums intersection / union areas per class over the whole data set (not per image), drops pixels
whose GT is ``ignore_index``, gives NaN to classes absent from both, and reports nan-means. We return
fractions (mmseg prints them x100 rounded to 2 decimals).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from .overlap import class_areas


class SemanticAccumulator:
    """Running per-class areas over (pred, gt) label-map pairs; ``result()`` gives mIoU, mDice, aAcc."""

    def __init__(self, num_classes: int, ignore_index: int | None = 255):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.inter = np.zeros(num_classes, np.int64)
        self.area_pred = np.zeros(num_classes, np.int64)
        self.area_gt = np.zeros(num_classes, np.int64)

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Add one image (or a stack) to the running areas."""
        i, p, g = class_areas(pred, gt, self.num_classes, self.ignore_index)
        self.inter += i
        self.area_pred += p
        self.area_gt += g

    def result(self) -> dict[str, Any]:
        """per_class_iou / per_class_dice / per_class_acc (NaN when a class is absent everywhere) and their nan-means."""
        union = self.area_pred + self.area_gt - self.inter
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = self.inter / union
            dice = 2 * self.inter / (self.area_pred + self.area_gt)
            acc = self.inter / self.area_gt
            aacc = self.inter.sum() / self.area_gt.sum()

        def nanmean(a: np.ndarray) -> float:
            return float(np.nanmean(a)) if np.isfinite(a).any() else float("nan")

        return {
            "per_class_iou": [float(v) for v in iou],
            "miou": nanmean(iou),
            "per_class_dice": [float(v) for v in dice],
            "mdice": nanmean(dice),
            "per_class_acc": [float(v) for v in acc],
            "macc": nanmean(acc),
            "aacc": float(aacc),
        }


def semantic_miou(
    preds: Iterable[np.ndarray], gts: Iterable[np.ndarray], num_classes: int, ignore_index: int | None = 255
) -> dict[str, Any]:
    """mmseg ``IoUMetric`` over pairs of label maps (``num_classes`` includes background)."""
    acc = SemanticAccumulator(num_classes, ignore_index)
    for p, g in zip(preds, gts):
        acc.update(p, g)
    return acc.result()
