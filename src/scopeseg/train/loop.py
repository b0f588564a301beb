"""The one Lightning training loop every task family shares: options, trainer, run folder, fit -> checkpoint.

A family registers its task where it is defined (``@register_task("semantic", config=SemanticTrainConfig)``);
``train(cfg)`` runs the task whose config class ``cfg`` is.

Run folder layout: ``checkpoints/`` (Lightning resume state, ours only), ``logs/`` (CSV + TensorBoard),
``best/`` (safetensors checkpoint: the model with the best validation score), ``metrics.json``,
``report.html``, ``config.yaml``, ``run.json`` (marks the folder as a scopeseg run).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import torch
import yaml
from pydantic import Field
from torch.utils.data import DataLoader, Dataset

from ..config import BaseConfig, register_config
from ..errors import ConfigError, ScopesegError, TrainingError
from ..io import read_json, write_json, write_text
from ..models.base import ScopesegModel
from ..registry import Registry

log = logging.getLogger(__name__)
RunFn = TypeVar("RunFn", bound=Callable[..., dict[str, Any]])
RUN_MARKER = "run.json"


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
    from ..data.records import resolve_data_path
    from ..models.checkpoints import file_digest

    return file_digest(resolve_data_path(path)[0])


@dataclass(frozen=True)
class Task:
    """A training task: its config class and the function that runs one training from that config."""

    name: str
    config: type[TrainerOptions]
    run: Callable[[Any], dict[str, Any]]


#: task name -> ``Task``, filled by ``@register_task`` in each family's training module
TASKS: Registry[Task] = Registry("training task", ConfigError, packages=("scopeseg.train",))


def register_task(name: str, config: type[TrainerOptions]) -> Callable[[RunFn], RunFn]:
    """Decorator on a family's ``run(cfg) -> result``: ``train(cfg)`` of a ``config`` instance calls it.

    Also registers ``config`` as the config class of ``task: NAME`` presets (``build_config``).
    """

    def deco(run: RunFn) -> RunFn:
        TASKS.register(name, Task(name, config, run), origin=f"{run.__module__}.{run.__qualname__}")
        register_config(name)(config)
        return run

    return deco


def task_of(cfg: TrainerOptions) -> Task:
    """The registered task whose config class is exactly ``type(cfg)``."""
    for _, task in TASKS.items():
        if type(cfg) is task.config:
            return task
    raise ConfigError(f"no training task takes a {type(cfg).__name__}; tasks: {', '.join(TASKS.names())}")


def create_task_model(name: str, family: str, **args: Any) -> ScopesegModel:
    """Build registered model ``name`` for a task that trains ``family`` models; another family's is refused."""
    from ..models.registry import create_model, list_models, model_entry

    entry = model_entry(name)
    if entry.family != family:
        raise ConfigError(
            f"model {name!r} is a {entry.family} model; this task trains {family} models: "
            + ", ".join(list_models(family=family))
        )
    return create_model(name, **args)


def train(cfg: TrainerOptions) -> dict[str, Any]:
    """Run the training task of a typed config (``build_config`` gives it from a preset); returns its result."""
    return task_of(cfg).run(cfg)


def load_result(run_dir: str | os.PathLike) -> dict[str, Any]:
    return read_json(Path(run_dir) / "result.json")


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
    model: ScopesegModel,
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
    from ..models.checkpoints import run_manifest

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
        model.config["pretrained"] = False  # the weights are in the checkpoint now
        manifest = run_manifest(
            cfg.model_dump(mode="json"), seed=cfg.seed, data_digest=data_digest(getattr(cfg, "data", None))
        )
        model.cpu().eval().save_pretrained(best_dir, manifest=manifest, card=card)
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
