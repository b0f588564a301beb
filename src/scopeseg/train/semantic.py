"""LightningModule for semantic segmentation: weighted losses, AdamW + cosine/poly, Dice on validation."""

from __future__ import annotations

import lightning as L
import torch

from ..errors import TrainingError
from ..losses import build_loss
from .common import configure_adamw
from .config import SemanticTrainConfig


def batch_dice(
    logits: torch.Tensor, target: torch.Tensor, threshold: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image foreground Dice (binary: the foreground; multi-class: mean over classes present in GT or pred).

    Returns ``(dice per image, valid mask)``; an image with empty GT and empty prediction counts as 1.
    """
    if logits.shape[1] == 1:
        pred = torch.sigmoid(logits[:, 0]) > threshold
        gt = target > 0
        inter = (pred & gt).flatten(1).sum(1).float()
        denom = (pred.flatten(1).sum(1) + gt.flatten(1).sum(1)).float()
        dice = torch.where(denom > 0, 2 * inter / denom.clamp(min=1), torch.ones_like(denom))
        return dice, torch.ones_like(dice, dtype=torch.bool)
    pred = logits.argmax(1)
    scores = []
    for c in range(1, logits.shape[1]):
        p, g = pred == c, target == c
        inter = (p & g).flatten(1).sum(1).float()
        denom = (p.flatten(1).sum(1) + g.flatten(1).sum(1)).float()
        scores.append(
            torch.where(denom > 0, 2 * inter / denom.clamp(min=1), torch.full_like(denom, float("nan")))
        )
    s = torch.stack(scores, 1)
    valid = ~torch.isnan(s).all(1)
    return torch.nan_to_num(torch.nanmean(s, 1), nan=1.0), valid


class SemanticModule(L.LightningModule):
    def __init__(self, model: torch.nn.Module, cfg: SemanticTrainConfig):
        super().__init__()
        self.model = model
        self.cfg = cfg
        self.loss_fn = build_loss(cfg.loss, binary=getattr(model, "binary", True))
        self.save_hyperparameters(
            {"config": cfg.model_dump(mode="json"), "model_config": dict(model.scopeseg_config)}
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self.model(x)
        loss = self.loss_fn(logits, y)
        if not torch.isfinite(loss):
            raise TrainingError(
                f"loss is {float(loss)} at epoch {self.current_epoch} step {self.global_step} "
                f"(lower lr=, check the data); the last good checkpoint is kept"
            )
        self.log(
            "train_loss",
            loss,
            on_step=True,
            on_epoch=True,
            prog_bar=True,
            batch_size=x.shape[0],
            sync_dist=True,
        )
        for k, v in self.loss_fn.last.items():
            self.log(f"train_{k}", v, on_step=False, on_epoch=True, batch_size=x.shape[0], sync_dist=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.model(x)
        loss = self.loss_fn(logits, y)
        dice, valid = batch_dice(logits, y, self.cfg.threshold)
        self.log("val_loss", loss, on_epoch=True, prog_bar=False, batch_size=x.shape[0], sync_dist=True)
        self.log(
            "val_dice",
            dice[valid].mean() if valid.any() else dice.new_tensor(1.0),
            on_epoch=True,
            prog_bar=True,
            batch_size=int(valid.sum().clamp(min=1)),
            sync_dist=True,
        )

    def configure_optimizers(self):
        return configure_adamw(
            self.model.parameters(), self.cfg, int(self.trainer.estimated_stepping_batches)
        )
