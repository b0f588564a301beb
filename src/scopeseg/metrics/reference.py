"""Reference adapter: one callable per official scorer convention, for outside checking.

Why: each id names a reference implementation whose numbers we reproduce (within 1e-6 relative of float64
references, 1e-5 of MONAI's float32). Pairwise ids take ``(pred, gt, **params)`` numpy bool masks and return a
float (NaN / inf as the reference does); ``spacing`` is a per-axis tuple in the arrays' axis order, or None.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .endovis import endovis_scores
from .instances import coco_stats, tapis_map50_segm
from .medsam import medsam_cvpr24, medsam_cvpr25
from .overlap import dice, iou
from .semantic import semantic_miou as _semantic
from .surface import check_pair, monai_asd, monai_hausdorff, monai_nsd, surface_distances

Spacing = Sequence[float] | None


def dice_deepmind(pred: np.ndarray, gt: np.ndarray) -> float:
    """DeepMind ``compute_dice_coefficient``: both empty -> NaN."""
    return dice(pred, gt, empty="nan")


def dice_monai(pred: np.ndarray, gt: np.ndarray, ignore_empty: bool = True) -> float:
    """MONAI ``compute_dice``: empty GT -> NaN if ``ignore_empty`` else 1 (pred empty too) / 0."""
    return dice(pred, gt, empty="skip" if ignore_empty else "one")


def iou_monai(pred: np.ndarray, gt: np.ndarray, ignore_empty: bool = True) -> float:
    """MONAI ``compute_iou``: empty GT -> NaN if ``ignore_empty`` else 1 (pred empty too) / 0."""
    return iou(pred, gt, empty="skip" if ignore_empty else "one")


def nsd_deepmind(pred: np.ndarray, gt: np.ndarray, spacing: Spacing = None, tolerance: float = 1.0) -> float:
    """DeepMind ``compute_surface_dice_at_tolerance``."""
    return surface_distances(pred, gt, spacing).nsd(tolerance)


def overlap_gt_deepmind(
    pred: np.ndarray, gt: np.ndarray, spacing: Spacing = None, tolerance: float = 1.0
) -> float:
    """DeepMind ``compute_surface_overlap_at_tolerance``[0]: fraction of GT surface within tolerance."""
    return surface_distances(pred, gt, spacing).surface_overlap(tolerance)[0]


def overlap_pred_deepmind(
    pred: np.ndarray, gt: np.ndarray, spacing: Spacing = None, tolerance: float = 1.0
) -> float:
    """DeepMind ``compute_surface_overlap_at_tolerance``[1]: fraction of predicted surface within tolerance."""
    return surface_distances(pred, gt, spacing).surface_overlap(tolerance)[1]


def hd_deepmind(pred: np.ndarray, gt: np.ndarray, spacing: Spacing = None, percent: float = 100.0) -> float:
    """DeepMind ``compute_robust_hausdorff`` (100 = HD)."""
    return surface_distances(pred, gt, spacing).hausdorff(percent)


def asd_gt_to_pred_deepmind(pred: np.ndarray, gt: np.ndarray, spacing: Spacing = None) -> float:
    """DeepMind ``compute_average_surface_distance``[0]."""
    return surface_distances(pred, gt, spacing).average_surface_distance()[0]


def asd_pred_to_gt_deepmind(pred: np.ndarray, gt: np.ndarray, spacing: Spacing = None) -> float:
    """DeepMind ``compute_average_surface_distance``[1]."""
    return surface_distances(pred, gt, spacing).average_surface_distance()[1]


def nsd_monai(
    pred: np.ndarray,
    gt: np.ndarray,
    spacing: Spacing = None,
    tolerance: float = 1.0,
    distance_metric: str = "euclidean",
    use_subvoxels: bool = False,
) -> float:
    """MONAI ``compute_surface_dice`` for one class (include_background=True)."""
    return monai_nsd(pred, gt, tolerance, spacing, distance_metric, use_subvoxels)  # type: ignore[arg-type]


def hd_monai(
    pred: np.ndarray,
    gt: np.ndarray,
    spacing: Spacing = None,
    percentile: float | None = None,
    directed: bool = False,
    distance_metric: str = "euclidean",
) -> float:
    """MONAI ``compute_hausdorff_distance`` (percentile None = max; directed = pred->gt)."""
    return monai_hausdorff(pred, gt, spacing, percentile, directed, distance_metric)  # type: ignore[arg-type]


def asd_monai(
    pred: np.ndarray,
    gt: np.ndarray,
    spacing: Spacing = None,
    symmetric: bool = False,
    distance_metric: str = "euclidean",
) -> float:
    """MONAI ``compute_average_surface_distance``."""
    return monai_asd(pred, gt, spacing, symmetric, distance_metric)  # type: ignore[arg-type]


def dice_medsam(pred: np.ndarray, gt: np.ndarray) -> float:
    """MedSAM ``SurfaceDice.compute_dice_coefficient``: both empty -> NaN."""
    return dice(pred, gt, empty="nan")


def nsd_medsam2d(pred: np.ndarray, gt: np.ndarray, tolerance: float = 2.0) -> float:
    """MedSAM CVPR24 2D NSD: masks scored as ``(H, W, 1)`` volumes with spacing (1, 1, 1)."""
    pred, gt = check_pair(pred, gt)
    if pred.ndim == 2:
        pred, gt = pred[..., None], gt[..., None]
    return surface_distances(pred, gt, (1.0, 1.0, 1.0)).nsd(tolerance)


def _endovis(variant: str) -> Callable[..., dict[str, Any]]:
    def run(preds: Any, gts: Any, num_classes: int) -> dict[str, Any]:
        r = endovis_scores(preds, gts, num_classes, variant)
        return {k: r[k] for k in ("challenge_iou", "iou", "mciou", "per_class_iou")}

    run.__name__ = f"endovis_{variant}"
    run.__doc__ = (
        f"EndoVis challenge IoU / IoU / mcIoU, {variant.upper()} variant (uint8 (N, H, W) label maps)."
    )
    return run


def semantic_miou(preds: Any, gts: Any, num_classes: int, ignore_index: int | None = 255) -> dict[str, Any]:
    """mmsegmentation ``IoUMetric`` (fractions): per-class IoU (NaN if absent everywhere) and nan-mean mIoU."""
    r = _semantic(preds, gts, num_classes, ignore_index)
    return {"per_class_iou": r["per_class_iou"], "miou": r["miou"]}


def coco_eval(gt_json_path: str, dt_json_path: str, iou_type: str = "segm") -> list[float]:
    """The 12 ``COCOeval.stats`` (faster-coco-eval; identical to pycocotools)."""
    return coco_stats(gt_json_path, dt_json_path, iou_type)


REGISTRY: dict[str, Callable[..., Any]] = {
    "dice_deepmind": dice_deepmind,
    "dice_monai": dice_monai,
    "iou_monai": iou_monai,
    "nsd_deepmind": nsd_deepmind,
    "overlap_gt_deepmind": overlap_gt_deepmind,
    "overlap_pred_deepmind": overlap_pred_deepmind,
    "hd_deepmind": hd_deepmind,
    "asd_gt_to_pred_deepmind": asd_gt_to_pred_deepmind,
    "asd_pred_to_gt_deepmind": asd_pred_to_gt_deepmind,
    "nsd_monai": nsd_monai,
    "hd_monai": hd_monai,
    "asd_monai": asd_monai,
    "dice_medsam": dice_medsam,
    "nsd_medsam2d": nsd_medsam2d,
    "medsam_cvpr24": medsam_cvpr24,
    "medsam_cvpr25": medsam_cvpr25,
    "endovis_tapis": _endovis("tapis"),
    "endovis_matis": _endovis("matis"),
    "semantic_miou": semantic_miou,
    "tapis_map50_segm": tapis_map50_segm,
    "coco_eval": coco_eval,
}
