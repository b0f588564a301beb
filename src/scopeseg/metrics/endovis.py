"""EndoVis instrument-type IoUs: challenge IoU, IoU and mcIoU, in the TAPIS and the MATIS variant.

Why: three different numbers are all called "IoU" in surgical instrument papers (BCV-Uniandes ISINet / MATIS /
TAPIS ``evaluate`` code): challenge IoU = per frame, mean IoU over the classes present in the GT, frames with
empty GT skipped; IoU = per frame, mean over classes present in GT or prediction; mcIoU = per class, mean of
its per-frame IoUs over the frames where it appears (GT or prediction), then averaged over classes. MATIS
counts a class that never appears as 0 in mcIoU; TAPIS leaves it out (nanmean).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError

ENDOVIS_VARIANTS = ("tapis", "matis")


def frame_class_ious(
    pred: np.ndarray, gt: np.ndarray, num_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class IoU of one frame for classes 1..num_classes, with presence flags in GT and prediction.

    Returns (iou, in_gt, in_pred), each of length ``num_classes``; iou is NaN where the class is absent from both.
    """
    p, g = np.asarray(pred).ravel(), np.asarray(gt).ravel()
    n = num_classes + 1

    def hist(v: np.ndarray) -> np.ndarray:
        v = v.astype(np.int64)
        return np.bincount(v[(v >= 0) & (v < n)], minlength=n)[1:n]

    inter, area_p, area_g = hist(p[p == g]), hist(p), hist(g)
    union = area_p + area_g - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / np.maximum(union, 1), np.nan)
    return iou, area_g > 0, area_p > 0


def endovis_scores(
    preds: Sequence[np.ndarray] | np.ndarray,
    gts: Sequence[np.ndarray] | np.ndarray,
    num_classes: int,
    variant: str = "tapis",
) -> dict[str, Any]:
    """challenge_iou, iou, mciou, per_class_iou (+ per-frame lists) over frames of instrument label maps.

    ``num_classes`` excludes background (classes 1..num_classes); labels outside that range are ignored.
    """
    if variant not in ENDOVIS_VARIANTS:
        raise ConfigError(f"unknown EndoVis variant {variant!r}; choose one of {', '.join(ENDOVIS_VARIANTS)}")
    if len(preds) != len(gts):
        raise DataError(f"{len(preds)} prediction frames for {len(gts)} ground-truth frames")
    frame_gt_iou, frame_iou = [], []
    sums = np.zeros(num_classes)
    counts = np.zeros(num_classes, dtype=np.int64)
    for i, (p, g) in enumerate(zip(preds, gts)):
        if np.shape(p) != np.shape(g):
            raise DataError(
                f"frame {i}: prediction shape {np.shape(p)} differs from ground truth {np.shape(g)}"
            )
        iou, in_gt, in_pred = frame_class_ious(p, g, num_classes)
        present = in_gt | in_pred
        frame_iou.append(float(np.mean(iou[present])) if present.any() else math.nan)
        frame_gt_iou.append(float(np.mean(iou[in_gt])) if in_gt.any() else math.nan)
        sums[present] += iou[present]
        counts[present] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    challenge = [v for v in frame_gt_iou if not math.isnan(v)]
    over_union = [v for v in frame_iou if not math.isnan(v)]
    if variant == "matis":
        mciou = float(np.mean(np.nan_to_num(per_class, nan=0.0))) if num_classes else math.nan
    else:
        mciou = float(np.nanmean(per_class)) if np.isfinite(per_class).any() else math.nan
    return {
        "challenge_iou": float(np.mean(challenge)) if challenge else math.nan,
        "iou": float(np.mean(over_union)) if over_union else math.nan,
        "mciou": mciou,
        "per_class_iou": [float(v) for v in per_class],
        "frame_challenge_iou": frame_gt_iou,
        "frame_iou": frame_iou,
    }
