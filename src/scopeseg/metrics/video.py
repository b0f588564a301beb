"""Video metrics: per-frame / per-video Dice and IoU, and J&F as the DAVIS 2017 evaluation computes it.

Why: "J&F" is only comparable when computed exactly like davis2017-evaluation: J = region IoU with an empty
union scoring 1; F = boundary F-measure of 1-px ``seg2bmap`` boundaries matched within a disk of radius
ceil(0.008 x image diagonal); per object the frame scores are averaged (the semi-supervised protocol drops the
first and the last frame), and J&F = (mean_objects J_M + mean_objects F_M) / 2.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import DataError
from .overlap import EmptyRule, per_frame

DAVIS_BOUND_TH = 0.008


def davis_j(pred: np.ndarray, gt: np.ndarray, void: np.ndarray | None = None) -> float:
    """Region similarity J (``db_eval_iou``): IoU outside void pixels; empty union -> 1."""
    pred, gt = np.asarray(pred).astype(bool), np.asarray(gt).astype(bool)
    keep = np.ones_like(gt) if void is None else ~np.asarray(void).astype(bool)
    inter = np.count_nonzero(pred & gt & keep)
    union = np.count_nonzero((pred | gt) & keep)
    return 1.0 if np.isclose(union, 0) else inter / union


def seg2bmap(seg: np.ndarray) -> np.ndarray:
    """1-px boundary map offset half a pixel toward the origin (D. Martin's ``seg2bmap``, as in DAVIS)."""
    seg = np.asarray(seg).astype(bool)
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = seg ^ e | seg ^ s | seg ^ se
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = 0
    return b


def disk(radius: float) -> np.ndarray:
    """Disk structuring element as ``skimage.morphology.disk`` (x^2 + y^2 <= r^2), uint8."""
    grid = np.arange(-radius, radius + 1)
    x, y = np.meshgrid(grid, grid)
    return (x**2 + y**2 <= radius**2).astype(np.uint8)


def davis_f(
    pred: np.ndarray, gt: np.ndarray, void: np.ndarray | None = None, bound_th: float = DAVIS_BOUND_TH
) -> float:
    """Boundary F-measure (``f_measure``): tolerance ``bound_th`` x image diagonal (pixels if >= 1)."""
    import cv2

    pred, gt = np.asarray(pred).astype(bool), np.asarray(gt).astype(bool)
    keep = np.ones_like(gt) if void is None else ~np.asarray(void).astype(bool)
    bound_pix = bound_th if bound_th >= 1 else np.ceil(bound_th * np.linalg.norm(pred.shape))
    fg_b = seg2bmap(pred & keep)
    gt_b = seg2bmap(gt & keep)
    k = disk(bound_pix)
    fg_dil = cv2.dilate(fg_b.astype(np.uint8), k)
    gt_dil = cv2.dilate(gt_b.astype(np.uint8), k)
    n_fg, n_gt = int(fg_b.sum()), int(gt_b.sum())
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1.0, 0.0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0.0, 1.0
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    else:
        precision = float(np.sum(fg_b & (gt_dil > 0))) / n_fg
        recall = float(np.sum(gt_b & (fg_dil > 0))) / n_gt
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def davis_statistics(per_frame_values: np.ndarray) -> tuple[float, float, float]:
    """(mean, recall = fraction > 0.5, decay = first-quarter mean - last-quarter mean) as DAVIS ``db_statistics``."""
    v = np.asarray(per_frame_values, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        m = float(np.nanmean(v))
        o = float(np.nanmean(v > 0.5))
        ids = (np.round(np.linspace(1, len(v), 5) + 1e-10) - 1).astype(np.uint8)
        bins = [v[ids[i] : ids[i + 1] + 1] for i in range(4)]
        d = float(np.nanmean(bins[0]) - np.nanmean(bins[3]))
    return m, o, d


def davis_jf(
    pred_labels: np.ndarray,
    gt_labels: np.ndarray,
    object_ids: Sequence[int] | None = None,
    skip_first_last: bool = True,
    bound_th: float = DAVIS_BOUND_TH,
    void_label: int | None = 255,
) -> dict[str, Any]:
    """J&F of one video ``(T, H, W)`` label maps (0 = background), per object, as davis2017-evaluation.

    ``skip_first_last`` drops the first and last frame (the semi-supervised protocol). Objects default to the GT
    ids present in the video. Returns J/F mean, recall, decay per object and the video's J&F.
    """
    pred_labels, gt_labels = np.asarray(pred_labels), np.asarray(gt_labels)
    if pred_labels.shape != gt_labels.shape or gt_labels.ndim != 3:
        raise DataError(
            f"J&F needs (T, H, W) label maps of equal shape, got {pred_labels.shape} and {gt_labels.shape}"
        )
    void = gt_labels == void_label if void_label is not None else np.zeros(gt_labels.shape, bool)
    if object_ids is None:
        ids = np.unique(gt_labels[~void])
        object_ids = [int(i) for i in ids if i != 0]
    frames = range(1, gt_labels.shape[0] - 1) if skip_first_last else range(gt_labels.shape[0])
    objects = {}
    for oid in object_ids:
        j = np.array([davis_j(pred_labels[t] == oid, gt_labels[t] == oid, void[t]) for t in frames])
        f = np.array([davis_f(pred_labels[t] == oid, gt_labels[t] == oid, void[t], bound_th) for t in frames])
        jm, jr, jd = davis_statistics(j)
        fm, fr, fd = davis_statistics(f)
        objects[oid] = {
            "J_mean": jm,
            "J_recall": jr,
            "J_decay": jd,
            "F_mean": fm,
            "F_recall": fr,
            "F_decay": fd,
        }
    jms = [o["J_mean"] for o in objects.values()]
    fms = [o["F_mean"] for o in objects.values()]
    j_mean = float(np.mean(jms)) if jms else math.nan
    f_mean = float(np.mean(fms)) if fms else math.nan
    return {"J&F": (j_mean + f_mean) / 2, "J_mean": j_mean, "F_mean": f_mean, "objects": objects}


def davis_jf_dataset(videos: Sequence[tuple[np.ndarray, np.ndarray]], **kw: Any) -> dict[str, Any]:
    """Data-set J&F: J_M and F_M averaged over all objects of all videos, then J&F = their mean (DAVIS rule)."""
    per_video = [davis_jf(p, g, **kw) for p, g in videos]
    jms = [o["J_mean"] for v in per_video for o in v["objects"].values()]
    fms = [o["F_mean"] for v in per_video for o in v["objects"].values()]
    j_mean = float(np.mean(jms)) if jms else math.nan
    f_mean = float(np.mean(fms)) if fms else math.nan
    return {"J&F": (j_mean + f_mean) / 2, "J_mean": j_mean, "F_mean": f_mean, "videos": per_video}


def video_overlap(pred: np.ndarray, gt: np.ndarray, empty: EmptyRule = "nan") -> dict[str, Any]:
    """Per-frame Dice/IoU of a binary ``(T, H, W)`` video, their means, and the whole-video (3D) Dice/IoU."""
    from .overlap import dice, iou

    d = per_frame(pred, gt, "dice", empty)
    j = per_frame(pred, gt, "iou", empty)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        return {
            "frame_dice": d.tolist(),
            "frame_iou": j.tolist(),
            "mean_frame_dice": float(np.nanmean(d)) if np.isfinite(d).any() else math.nan,
            "mean_frame_iou": float(np.nanmean(j)) if np.isfinite(j).any() else math.nan,
            "video_dice": dice(pred, gt, empty),
            "video_iou": iou(pred, gt, empty),
        }
