"""Semantic segmentation training (task ``semantic``): config, data module, Lightning module and run.

UNet family on the canonical data set: weighted losses, AdamW + cosine/poly, split by video, best checkpoint
by validation Dice; presets live in ``scopeseg/configs``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from pydantic import Field
from torch.utils.data import DataLoader

from ..config import register_config
from ..data.coco import CocoDataset, load_dataset
from ..data.datasets import SemanticDataset, build_class_map
from ..data.transforms import eval_transform, train_transform
from ..errors import DataError, TrainingError
from ..io import write_json
from ..losses import build_loss
from .loop import (
    TrainerOptions,
    configure_adamw,
    fit_and_release,
    make_loader,
    prepare_run_dir,
    resolve_resume,
)


@register_config("semantic")
class SemanticTrainConfig(TrainerOptions):
    """Semantic segmentation training: UNet family on the canonical data set."""

    model: str = "unet-lite0"
    pretrained: bool = True
    data: str | None = None
    val_data: str | None = None
    val_fraction: float = Field(0.2, gt=0, lt=1)
    mode: Literal["binary", "multiclass"] = "binary"
    categories: list[str] | None = None
    train_size: tuple[int, int] | None = (256, 384)
    augment: Literal["none", "light", "default"] = "default"
    loss: str = "dice:1,bce:1"
    threshold: float = Field(0.5, gt=0, lt=1)
    cache_images: bool = True
    report: bool = True
    report_examples: int = Field(4, ge=0)


def train_val_ids(ds: CocoDataset, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Use the data's ``split`` fields when they name train/val; otherwise split by video with ``seed``."""
    splits = ds.splits()
    if "train" in splits and "val" in splits:
        return splits["train"], splits["val"]
    parts = ds.copy().assign_splits({"train": 1 - val_fraction, "val": val_fraction}, seed=seed)
    if not parts["val"] or not parts["train"]:
        raise DataError(f"cannot split {len(ds)} images into train and val; give val_data=", ds.path)
    return parts["train"], parts["val"]


class SemanticDataModule(L.LightningDataModule):
    def __init__(self, cfg: SemanticTrainConfig):
        super().__init__()
        if not cfg.data:
            raise DataError("no training data: pass data=PATH (a data set folder or COCO JSON)")
        self.cfg = cfg
        self.ds = load_dataset(cfg.data)
        if not self.ds.images:
            raise DataError("data set has no images", self.ds.path)
        self.class_map, self.classes = build_class_map(self.ds, cfg.mode, cfg.categories)
        if cfg.val_data:
            self.val_ds = load_dataset(cfg.val_data)
            vmap, _ = build_class_map(self.val_ds, cfg.mode, cfg.categories)
            names = {self.ds.categories[c]["name"] for c in self.class_map}
            vnames = {self.val_ds.categories[c]["name"] for c in vmap}
            if names != vnames:
                raise DataError(
                    f"validation categories {sorted(vnames)} differ from training {sorted(names)}",
                    self.val_ds.path,
                )
            self.val_class_map = vmap
            self.train_ids, self.val_ids = list(self.ds.images), list(self.val_ds.images)
        else:
            self.val_ds, self.val_class_map = self.ds, self.class_map
            self.train_ids, self.val_ids = train_val_ids(self.ds, cfg.val_fraction, cfg.seed)
        size = cfg.train_size
        cache = eval_transform(size) if cfg.cache_images else None
        self.train_set = SemanticDataset(
            self.ds,
            self.class_map,
            self.train_ids,
            transform=train_transform(None if cache else size, cfg.augment),
            cache_transform=cache,
        )
        self.val_set = SemanticDataset(
            self.val_ds,
            self.val_class_map,
            self.val_ids,
            transform=None if cache else eval_transform(size),
            cache_transform=cache,
        )

    def _loader(self, dataset, shuffle: bool) -> DataLoader:
        return make_loader(dataset, self.cfg, shuffle)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, False)


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


def train_semantic(cfg) -> dict[str, Any]:
    """Train a semantic UNet; returns ``{"run_dir", "best", "metrics"}`` (metrics on rank 0 only)."""
    import lightning as L

    from ..models.registry import create_model

    torch.set_float32_matmul_precision("high")
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    ckpt_path = resolve_resume(cfg.resume)
    run_dir = prepare_run_dir(cfg, "semantic")
    dm = SemanticDataModule(cfg)
    model = create_model(cfg.model, classes=dm.classes, pretrained=cfg.pretrained)
    model.scopeseg_config.update(
        {
            "mode": cfg.mode,
            "input_size": list(cfg.train_size) if cfg.train_size else None,
            "threshold": cfg.threshold,
            "categories": cfg.categories,
            "category_map": {dm.ds.categories[c]["name"]: i for c, i in dm.class_map.items()},
            "encoder_weights": getattr(model, "encoder_weights", None),
        }
    )
    module = SemanticModule(model, cfg)
    card = f"Semantic segmentation ({cfg.mode}) of {', '.join(dm.classes)}, trained with scopeseg."
    released = fit_and_release(module, dm, model, cfg, run_dir, card, ckpt_path=ckpt_path)
    if released is None:  # not rank 0
        return {"run_dir": str(run_dir)}
    best_dir = Path(released["best"])
    result: dict[str, Any] = {
        "run_dir": str(run_dir),
        **{k: v for k, v in released.items() if k != "trainer"},
    }
    write_json(run_dir / "result.json", result, indent=2)  # the report reads epochs and time from it
    if cfg.report:
        from .evaluation import evaluate_semantic_run

        result["metrics"] = evaluate_semantic_run(run_dir, best_dir, dm, cfg)
    write_json(run_dir / "result.json", result, indent=2)
    return result
