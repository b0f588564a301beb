"""Validation scores of a training task: per-image numbers from ``metrics.protocols``, averaged over all ranks.

Why: ``val_dice`` (the best-checkpoint monitor) is the Dice ``scopeseg evaluate`` gives on the same label maps;
under DDP each rank sees part of the images, so per-image sums and counts are reduced, never per-rank means.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..metrics.inputs import Pair
from ..metrics.protocols import score_pairs


def score_label_maps(
    protocol: str, gts: Sequence[np.ndarray], preds: Sequence[np.ndarray], **params: Any
) -> list[dict[str, Any]]:
    """Per-image rows of ``protocol`` for matched integer label maps (one row per pair, in order)."""
    pairs = [Pair(str(i), np.asarray(g), np.asarray(p)) for i, (g, p) in enumerate(zip(gts, preds))]
    return score_pairs(protocol, pairs, **params).items


class RankMean:
    """Mean of per-image scores over every rank: NaN scores (undefined by the empty rule) are left out."""

    def __init__(self) -> None:
        self.total, self.count = 0.0, 0

    def update(self, values: Sequence[float]) -> None:
        finite = [float(v) for v in values if not math.isnan(v)]
        self.total += sum(finite)
        self.count += len(finite)

    def compute(self, strategy: Any) -> torch.Tensor:
        """Sum and count reduced over ranks by the Lightning ``strategy``, then divided; resets for the next epoch."""
        t = torch.tensor([self.total, float(self.count)], dtype=torch.float64, device=strategy.root_device)
        t = strategy.reduce(t, reduce_op="sum")
        self.total, self.count = 0.0, 0
        return (t[0] / t[1] if t[1] > 0 else t[0] * math.nan).float()
