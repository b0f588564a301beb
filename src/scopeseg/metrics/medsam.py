"""MedSAM laptop-challenge scoring (CVPR24 ``compute_metrics.py``, CVPR25 ``CVPR25_iter_eval.py``).

Why: the challenge numbers are multi-class means of DeepMind-convention Dice and NSD (tolerance 2) with two
rules that change results: NSD is only computed when the case's mean DSC > 0.2 (else 0), and 2D cases are
scored as ``(H, W, 1)`` volumes with spacing 1, so the slab's top and bottom faces count as surface.
CVPR24 scores classes 1..gt.max() (a class absent from both masks makes the mean NaN); CVPR25 scores the
sorted unique GT labels minus the first (the background).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import DataError
from .surface import surface_distances

MEDSAM_TOLERANCE = 2.0
MEDSAM_DSC_GATE = 0.2


def _classes(gt: np.ndarray, variant: str) -> list[int]:
    if variant == "cvpr24":
        return list(range(1, int(gt.max()) + 1)) if gt.size else []
    labels = np.unique(gt)
    return [int(v) for v in labels[1:]]


def _dice(gt_i: np.ndarray, seg_i: np.ndarray) -> float:
    total = int(np.count_nonzero(gt_i)) + int(np.count_nonzero(seg_i))
    if total == 0:
        return math.nan
    return 2 * int(np.count_nonzero(gt_i & seg_i)) / total


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def medsam_case(
    seg: np.ndarray,
    gt: np.ndarray,
    spacing: Sequence[float] | None = None,
    variant: str = "cvpr24",
    tolerance: float = MEDSAM_TOLERANCE,
    dsc_gate: float = MEDSAM_DSC_GATE,
) -> dict[str, Any]:
    """Score one case (integer label maps, 2D or 3D) as the MedSAM challenge scorer: ``{"dsc", "nsd", ...}``.

    2D (``spacing`` None and 2D arrays) is scored as an ``(H, W, 1)`` slab with spacing (1, 1, 1).
    """
    seg, gt = np.asarray(seg), np.asarray(gt)
    if seg.shape != gt.shape:
        raise DataError(f"segmentation shape {seg.shape} differs from ground-truth shape {gt.shape}")
    if gt.ndim == 2:
        seg, gt = seg[..., None], gt[..., None]
        spacing = (1.0, 1.0, 1.0) if spacing is None else tuple(spacing) + (1.0,) * (3 - len(spacing))
    elif gt.ndim != 3:
        raise DataError(f"MedSAM scoring needs 2D or 3D label maps, got shape {gt.shape}")
    classes = _classes(gt, variant)
    dscs = [_dice(gt == c, seg == c) for c in classes]
    dsc = _mean(dscs)
    nsds: list[float] = []
    if dsc > dsc_gate:
        nsds = [surface_distances(seg == c, gt == c, spacing).nsd(tolerance) for c in classes]
        nsd = _mean(nsds)
    else:
        nsd = 0.0
    return {"dsc": dsc, "nsd": nsd, "classes": classes, "dsc_per_class": dscs, "nsd_per_class": nsds}


def medsam_cvpr24(
    seg: np.ndarray, gt: np.ndarray, spacing: Sequence[float] | None = None
) -> dict[str, float]:
    """CVPR24 ``compute_metrics.py``: classes 1..gt.max(), NSD (tol 2) only when DSC > 0.2."""
    r = medsam_case(seg, gt, spacing, "cvpr24")
    return {"dsc": r["dsc"], "nsd": r["nsd"]}


def medsam_cvpr25(
    seg: np.ndarray, gt: np.ndarray, spacing: Sequence[float] | None = None
) -> dict[str, float]:
    """CVPR25 ``CVPR25_iter_eval.py``: classes = GT labels present (minus the first), NSD only when DSC > 0.2."""
    r = medsam_case(seg, gt, spacing, "cvpr25")
    return {"dsc": r["dsc"], "nsd": r["nsd"]}
