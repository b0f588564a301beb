"""``train(cfg)``: one Lightning run from a typed config to a released checkpoint, metrics and report.

Run folder layout: ``checkpoints/`` (Lightning resume state, ours only), ``logs/`` (CSV + TensorBoard),
``best/`` (safetensors checkpoint: the model with the best validation Dice), ``metrics.json``,
``report.html``, ``config.yaml``, ``run.json`` (marks the folder as a scopeseg run).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from ..errors import ConfigError
from ..io import read_json, write_json, write_text
from .config import TrainerOptions

log = logging.getLogger(__name__)
RUN_MARKER = "run.json"


def resolve_precision(precision: str, accelerator: str) -> str:
    """``auto`` -> bf16-mixed on CUDA with bf16, 16-mixed on other CUDA, 32-true on CPU."""
    if precision != "auto":
        return precision
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32-true"


def resolve_resume(resume: str | None) -> str | None:
    """A run folder or a ``.ckpt`` inside one of our run folders; anything else is refused (pickle)."""
    if not resume:
        return None
    p = Path(resume)
    ckpt = p / "checkpoints" / "last.ckpt" if p.is_dir() else p
    run_dir = ckpt.parent.parent
    if not ckpt.is_file():
        raise ConfigError(f"resume checkpoint not found: {ckpt}")
    if not (run_dir / RUN_MARKER).is_file():
        raise ConfigError(
            f"{ckpt}: not inside a scopeseg run folder (no {RUN_MARKER}); refusing to unpickle it"
        )
    return str(ckpt)


def quiet_lightning() -> None:
    """Keep Lightning's INFO chatter (GPU available, tips) and its deprecation warnings out of our output
    unless ``-v`` was given (Lightning sets its own loggers to INFO when imported)."""
    import warnings

    verbose = logging.getLogger().level <= logging.INFO
    for name in (
        "lightning",
        "lightning.pytorch",
        "lightning.fabric",
        "lightning.pytorch.utilities.rank_zero",
        "lightning.fabric.utilities.rank_zero",
        "lightning.pytorch.accelerators.cuda",
    ):
        lg = logging.getLogger(name)
        if not verbose:
            lg.setLevel(logging.WARNING)
    if not verbose:
        warnings.filterwarnings(
            "ignore",
            message=r".*(LeafSpec|litlogger|log_every_n_steps|does not have many workers|"
            r"Checkpoint directory .* exists|Experiment logs directory|exists and is not empty).*",
        )


def _log_version(run_dir: Path, resuming: bool) -> str:
    """``csv`` for a fresh run; ``csv-resumeN`` when resuming, so earlier logs are kept (Lightning overwrites)."""
    if not resuming:
        return "csv"
    n = 1
    while (run_dir / "logs" / f"csv-resume{n}").exists():
        n += 1
    return f"csv-resume{n}"


def build_trainer(cfg: TrainerOptions, run_dir: Path, monitor: str = "val_dice", mode: str = "max"):
    """Lightning Trainer with our callbacks: best/last checkpoints, early stop, logs, progress bar."""
    import lightning as L
    from lightning.pytorch.callbacks import (
        EarlyStopping,
        LearningRateMonitor,
        ModelCheckpoint,
        TQDMProgressBar,
    )
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    from .. import progress

    quiet_lightning()
    callbacks: list[Any] = [
        ModelCheckpoint(
            dirpath=run_dir / "checkpoints",
            filename="best",
            monitor=monitor,
            mode=mode,
            save_last=True,
            save_top_k=1,
            auto_insert_metric_name=False,
            enable_version_counter=False,
        ),
        LearningRateMonitor(logging_interval="step"),
    ]
    if cfg.early_stop_patience:
        callbacks.append(EarlyStopping(monitor=monitor, mode=mode, patience=cfg.early_stop_patience))
    show = progress.enabled()
    if show:
        callbacks.append(TQDMProgressBar(refresh_rate=max(1, cfg.log_every // 2)))
    version = _log_version(run_dir, bool(cfg.resume))
    loggers = [
        CSVLogger(str(run_dir), name="logs", version=version),
        TensorBoardLogger(
            str(run_dir), name="logs", version=version.replace("csv", "tb"), default_hp_metric=False
        ),
    ]
    kwargs: dict[str, Any] = {}
    if cfg.max_minutes:
        kwargs["max_time"] = {"minutes": cfg.max_minutes}
    if cfg.limit_train_batches is not None:
        kwargs["limit_train_batches"] = cfg.limit_train_batches
    strategy = cfg.strategy
    if (
        strategy == "ddp"
        and cfg.accelerator in ("cpu",)
        or (strategy == "ddp" and not torch.cuda.is_available())
    ):
        from lightning.pytorch.strategies import DDPStrategy

        strategy = DDPStrategy(process_group_backend="gloo")
    return L.Trainer(
        max_epochs=cfg.epochs,
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        strategy=strategy,
        num_nodes=cfg.num_nodes,
        precision=resolve_precision(cfg.precision, cfg.accelerator),
        callbacks=callbacks,
        logger=loggers,
        log_every_n_steps=cfg.log_every,
        enable_progress_bar=show,
        enable_model_summary=False,
        check_val_every_n_epoch=cfg.val_every,
        deterministic=False,
        default_root_dir=str(run_dir),
        num_sanity_val_steps=0,
        **kwargs,
    )


def best_state_dict(run_dir: Path, prefix: str = "model.") -> dict[str, torch.Tensor] | None:
    """The module weights of our own best (else last) Lightning checkpoint in ``run_dir``."""
    for name in ("best.ckpt", "last.ckpt"):
        p = run_dir / "checkpoints" / name
        if p.is_file():
            ckpt = torch.load(p, map_location="cpu", weights_only=True)
            return {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    return None


def prepare_run_dir(cfg: TrainerOptions, task: str) -> Path:
    """Create the run folder; a fresh (not resumed) run into an existing one clears its old checkpoints."""
    run_dir = Path(cfg.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not cfg.resume:
        import shutil

        for old in ("checkpoints", "best", "logs"):
            if (run_dir / old).exists():
                shutil.rmtree(run_dir / old)
    write_text(
        run_dir / "config.yaml",
        yaml.safe_dump({"task": task, **cfg.model_dump(mode="json")}, sort_keys=False),
    )
    if not (run_dir / RUN_MARKER).exists():
        write_json(run_dir / RUN_MARKER, {"task": task, "created": time.time()}, indent=2)
    return run_dir


def data_digest(path: str | None) -> str | None:
    if not path:
        return None
    from ..data.coco import resolve_data_path
    from ..models.registry import file_digest

    return file_digest(resolve_data_path(path)[0])


def train(cfg: TrainerOptions) -> dict[str, Any]:
    """Dispatch a typed training config to its task's runner (semantic, promptable, ...)."""
    from . import TRAINERS

    task = next((t for t, c in _task_classes().items() if type(cfg) is c), None)
    if task not in TRAINERS:
        raise ConfigError(f"no trainer for config {type(cfg).__name__}")
    return TRAINERS[task](cfg)


def _task_classes():
    from ..config import CONFIG_CLASSES

    return CONFIG_CLASSES


def train_semantic(cfg) -> dict[str, Any]:
    """Train a semantic UNet; returns ``{"run_dir", "best", "metrics"}`` (metrics on rank 0 only)."""
    import lightning as L

    from ..models.registry import create_model
    from .common import fit_and_release
    from .data import SemanticDataModule
    from .semantic import SemanticModule

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


def load_result(run_dir: str | os.PathLike) -> dict[str, Any]:
    return read_json(Path(run_dir) / "result.json")
