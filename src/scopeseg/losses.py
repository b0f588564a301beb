"""Segmentation losses by name with weights: ``"dice:1,focal:20"`` -> one weighted-sum module.

Built on MONAI's losses (sigmoid for binary 1-channel logits, softmax for K+1-channel logits); targets are
integer label maps ``(B, H, W)`` in both cases (binary: 0/1). A loss that needs more than logits and target
(``iou_mse``: a promptable decoder's predicted mask IoU) names those inputs when registered; a task passes them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError

LOSSES: dict[str, Callable[[bool], nn.Module]] = {}
#: extra inputs a loss needs besides (logits, target), given by the task as keyword arguments
LOSS_INPUTS: dict[str, tuple[str, ...]] = {}


def register_loss(name: str, needs: tuple[str, ...] = ()):
    """Register ``factory(binary) -> module(logits, target, **needs)`` as loss ``name``."""

    def deco(fn):
        LOSSES[name] = fn
        LOSS_INPUTS[name] = needs
        return fn

    return deco


class _OnLabels(nn.Module):
    """Adapt a MONAI loss that wants one-hot/channel targets to integer label-map targets."""

    def __init__(self, loss: nn.Module, binary: bool, one_hot: bool = True):
        super().__init__()
        self.loss, self.binary, self.one_hot = loss, binary, one_hot

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.binary:
            return self.loss(logits, target.unsqueeze(1).to(logits.dtype))
        if self.one_hot:
            t = F.one_hot(target.long(), logits.shape[1]).permute(0, 3, 1, 2).to(logits.dtype)
        else:
            t = target.unsqueeze(1)
        return self.loss(logits, t)


def _dice_loss(binary: bool, batch: bool) -> nn.Module:
    from monai.losses import DiceLoss

    return _OnLabels(
        DiceLoss(sigmoid=binary, softmax=not binary, include_background=binary, batch=batch), binary
    )


@register_loss("dice")
def _dice(binary: bool) -> nn.Module:
    """One Dice pooled over the batch."""
    return _dice_loss(binary, batch=True)


@register_loss("sample_dice")
def _sample_dice(binary: bool) -> nn.Module:
    """Dice of each item, averaged (MedSAM's recipe): ``dice`` pools the batch, where a prompted object of
    ten pixels beside ones of 2000 adds nothing and the BCE mean teaches the decoder to return it empty."""
    return _dice_loss(binary, batch=False)


@register_loss("dice_ce")
def _dice_ce(binary: bool) -> nn.Module:
    from monai.losses import DiceCELoss

    if binary:
        return _OnLabels(DiceCELoss(sigmoid=True, batch=True), True)
    return _OnLabels(
        DiceCELoss(softmax=True, include_background=False, batch=True, to_onehot_y=True), False, one_hot=False
    )


@register_loss("focal")
def _focal(binary: bool) -> nn.Module:
    from monai.losses import FocalLoss

    return _OnLabels(FocalLoss(gamma=2.0, use_softmax=not binary, include_background=True), binary)


class _BCE(nn.Module):
    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.shape[1] != 1:
            raise ConfigError("loss 'bce' needs a binary (1-channel) model; use 'ce' for multi-class")
        return F.binary_cross_entropy_with_logits(logits[:, 0], target.to(logits.dtype))


class _CE(nn.Module):
    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.shape[1] == 1:
            return F.binary_cross_entropy_with_logits(logits[:, 0], target.to(logits.dtype))
        return F.cross_entropy(logits, target.long())


def mask_iou(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IoU of ``logits > 0`` with a binary target, per item of the batch (both empty -> 1).

    Why: the regression target of a SAM-style IoU head (LiteMedSAM training), computed on the torch device.
    """
    pred, t = (logits > 0).flatten(1), (target > 0).flatten(1)
    inter, union = (pred & t).sum(1).float(), (pred | t).sum(1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


class _IouMse(nn.Module):
    """MSE between the predicted mask IoU and the IoU the thresholded mask reaches (SAM / LiteMedSAM IoU head)."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor, pred_iou: torch.Tensor) -> torch.Tensor:
        if logits.shape[1] != 1:
            raise ConfigError("loss 'iou_mse' needs single-mask (1-channel) logits")
        return F.mse_loss(pred_iou.float(), mask_iou(logits.detach()[:, 0], target))


register_loss("bce")(lambda binary: _BCE())
register_loss("ce")(lambda binary: _CE())
register_loss("iou_mse", needs=("pred_iou",))(lambda binary: _IouMse())


def parse_loss_spec(spec: str) -> list[tuple[str, float]]:
    """``"dice:1,focal:20"`` -> ``[("dice", 1.0), ("focal", 20.0)]``; weight defaults to 1."""
    out = []
    for part in [p.strip() for p in spec.split(",") if p.strip()]:
        name, _, w = part.partition(":")
        name = name.strip()
        if name not in LOSSES:
            import difflib

            close = difflib.get_close_matches(name, list(LOSSES), n=2)
            raise ConfigError(
                f"unknown loss {name!r}; {'did you mean ' + ', '.join(close) + '?' if close else 'losses: ' + ', '.join(LOSSES)}"
            )
        try:
            weight = float(w) if w else 1.0
        except ValueError:
            raise ConfigError(f"loss weight for {name!r} is not a number: {w!r}") from None
        out.append((name, weight))
    if not out:
        raise ConfigError("empty loss spec")
    return out


class WeightedLoss(nn.Module):
    """Weighted sum of named losses; ``.last`` holds the detached parts for logging.

    ``inputs`` names the extra keyword inputs the task passes to ``forward`` (e.g. ``pred_iou``); a loss that
    needs one the task does not give is refused when the loss is built, not mid-training.
    """

    def __init__(self, spec: str, binary: bool, inputs: Sequence[str] = ()):
        super().__init__()
        self.parts = parse_loss_spec(spec)
        for name, _ in self.parts:
            missing = [k for k in LOSS_INPUTS[name] if k not in inputs]
            if missing:
                raise ConfigError(
                    f"loss {name!r} needs {', '.join(missing)}, which this task's model does not give"
                )
        self.losses = nn.ModuleList([LOSSES[n](binary) for n, _ in self.parts])
        self.last: dict[str, float] = {}

    def forward(self, logits: torch.Tensor, target: torch.Tensor, **inputs: torch.Tensor) -> torch.Tensor:
        total = logits.new_zeros(())
        self.last = {}
        for (name, w), fn in zip(self.parts, self.losses):
            v = fn(logits.float(), target, **{k: inputs[k] for k in LOSS_INPUTS[name]})
            self.last[name] = float(v.detach())
            total = total + w * v
        return total


def build_loss(spec: str, binary: bool, inputs: Sequence[str] = ()) -> WeightedLoss:
    """The weighted loss of ``spec`` (``"dice:1,bce:1"``) for binary or multi-class logits."""
    return WeightedLoss(spec, binary, inputs)
