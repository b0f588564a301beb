"""Pieces every task family's training shares: AdamW + schedule, data loaders, fit -> released checkpoint."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import ScopesegError, TrainingError
from .config import TrainerOptions


def lr_factor(schedule: str, total: int, warmup: int):
    """Multiplier of the base lr at a step: linear warm-up, then cosine or poly(0.9) decay to 2 %."""
    total = max(1, total)
    warm = min(warmup, total - 1)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        t = min(1.0, (step - warm) / max(1, total - warm))
        if schedule == "cosine":
            return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * t))
        return max(0.02, (1 - t) ** 0.9)

    return factor


def configure_adamw(params: Iterable[torch.nn.Parameter], cfg: TrainerOptions, total_steps: int) -> Any:
    """Lightning ``configure_optimizers`` result: AdamW, stepped per batch by the configured schedule."""
    opt = torch.optim.AdamW(list(params), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.schedule == "none":
        return opt
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(cfg.schedule, total_steps, cfg.warmup_steps))
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def make_loader(dataset: Dataset, cfg: TrainerOptions, shuffle: bool) -> DataLoader:
    """Training loaders shuffle and drop a ragged last batch (BatchNorm); validation keeps every item."""
    return DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        shuffle=shuffle,
        num_workers=cfg.num_workers,
        drop_last=shuffle and len(dataset) > cfg.batch_size,
        persistent_workers=cfg.num_workers > 0,
    )


def fit_and_release(
    module,
    datamodule,
    model: torch.nn.Module,
    cfg: TrainerOptions,
    run_dir: Path,
    card: str,
    ckpt_path: str | None = None,
    monitor: str = "val_dice",
    mode: str = "max",
) -> dict[str, Any] | None:
    """Fit, then (rank 0) save the best weights as a safetensors checkpoint in ``run_dir/best``.

    A ``TrainingError`` (NaN loss) still releases the last good checkpoint, then is raised naming it.
    Returns None on other ranks, else ``{"best", "train_seconds", "epochs_run", "trainer"}``.
    """
    from ..models.registry import run_manifest, save_pretrained
    from .runner import best_state_dict, build_trainer, data_digest

    trainer = build_trainer(cfg, run_dir, monitor=monitor, mode=mode)
    t0 = time.time()
    error: ScopesegError | None = None
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    except TrainingError as e:
        error = e
    seconds = time.time() - t0
    if not trainer.is_global_zero:
        return None
    state = best_state_dict(run_dir)
    best_dir = Path(run_dir) / "best"
    if state is not None:
        model.load_state_dict(state)
        model.scopeseg_config["pretrained"] = False  # the weights are in the checkpoint now
        manifest = run_manifest(
            cfg.model_dump(mode="json"), seed=cfg.seed, data_digest=data_digest(getattr(cfg, "data", None))
        )
        save_pretrained(model.cpu().eval(), best_dir, manifest=manifest, card=card)
    if error is not None:
        kept = f"; last good checkpoint: {best_dir}" if state is not None else ""
        raise TrainingError(f"{error}{kept}")
    if state is None:
        raise TrainingError(
            f"{run_dir}: no checkpoint was written (training stopped before the first validation; "
            "raise max_minutes= or lower val_every=)"
        )
    return {
        "best": str(best_dir),
        "train_seconds": seconds,
        "epochs_run": trainer.current_epoch,
        "trainer": trainer,
    }
