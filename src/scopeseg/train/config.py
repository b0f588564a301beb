"""Typed config of semantic training (task ``semantic``); presets live in ``scopeseg/configs``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..config import BaseConfig, register_config


class TrainerOptions(BaseConfig):
    """What every Lightning training shares: devices, precision, logging, stopping."""

    out: str = "runs/train"
    epochs: int = Field(10, ge=1)
    max_minutes: float | None = Field(None, gt=0, description="stop after this many minutes of training")
    batch_size: int = Field(4, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    schedule: Literal["cosine", "poly", "none"] = "cosine"
    warmup_steps: int = Field(0, ge=0)
    seed: int = 0
    accelerator: str = "auto"
    devices: int | str = 1
    strategy: str = "auto"
    num_nodes: int = Field(1, ge=1)
    precision: str = "auto"
    num_workers: int = Field(0, ge=0)
    early_stop_patience: int | None = Field(None, ge=1)
    limit_train_batches: int | float | None = None
    val_every: int = Field(1, ge=1, description="validate every N epochs")
    resume: str | None = None
    log_every: int = Field(10, ge=1)


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
