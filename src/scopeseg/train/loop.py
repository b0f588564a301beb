"""The one Lightning training loop every task family shares: options, trainer, run folder, fit -> checkpoint.

A family registers its task where it is defined (``@register_task("semantic", config=SemanticTrainConfig)``);
``train(cfg)`` runs the task whose config class ``cfg`` is.

Run folder layout: ``checkpoints/`` (Lightning resume state, ours only), ``logs/`` (CSV + TensorBoard),
``best/`` (safetensors checkpoint: the model with the best validation score), ``metrics.json``,
``report.html``, ``config.yaml``, ``run.json`` (marks the folder as a scopeseg run).

Safety order of every task's run function: ``plan_run`` (out= and resume= checked, nothing written), data and
model built, ``start_run`` (resume weights match the model, Lightning trainer built, only then the folder is
written). An earlier run in out= is refused unless ``overwrite=true`` or ``resume=`` continues it; checkpoints
are written temp + rename in their own folder and read back weights-only.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import shutil
import time
import zipfile
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
from ..io import atomic_path, pid_alive, read_json, tidy, write_json, write_text
from ..models.base import ScopesegModel
from ..registry import Registry
from ..runtime import native_bf16

log = logging.getLogger(__name__)
RunFn = TypeVar("RunFn", bound=Callable[..., dict[str, Any]])
RUN_MARKER = "run.json"
#: what a run writes into its folder (``best`` first: a replaced run never leaves a complete-looking best/)
RUN_OUTPUTS = (
    "best",
    "result.json",
    "metrics.json",
    "report.html",
    "checkpoints",
    "logs",
    "config.yaml",
    RUN_MARKER,
)
#: what a Lightning checkpoint of our loop holds at the top level (``trainer.save_checkpoint``)
CKPT_KEYS = ("epoch", "global_step", "state_dict", "loops", "optimizer_states")
#: the Lightning checkpoints of ``build_trainer`` in ``checkpoints/``
CKPT_FILES = ("best.ckpt", "last.ckpt")


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
    overwrite: bool = Field(
        False, description="replace an earlier run in out= (only after every check passed)"
    )
    log_every: int = Field(10, ge=1)


def resolve_precision(precision: str, accelerator: str) -> str:
    """``auto`` -> bf16-mixed on CUDA with bf16, 16-mixed on other CUDA, 32-true on CPU (a reduced CPU
    precision only when asked: ``precision=bf16-mixed``, which is fast only with native bf16)."""
    on_cuda = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    if precision != "auto":
        if precision.startswith("bf16") and not on_cuda and not native_bf16():
            logging.getLogger("scopeseg").warning(
                "precision=%s on a CPU without native bf16 (no avx512_bf16/AMX): bf16 is emulated and "
                "usually slower than 32-true here (benchmarks/results/train_precision.md)",
                precision,
            )
        return precision
    if on_cuda:
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


def _first_line(e: BaseException) -> str:
    """The first line of an outside library's exception message (its type name when it has none)."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def read_resume_checkpoint(resume: str | None) -> tuple[str, dict[str, tuple[int, ...]]] | None:
    """(path, weight shapes) of our own Lightning checkpoint named by ``resume=``; anything else is refused.

    Why: the file is loaded weights-only (no pickle runs), so a foreign, pickled or truncated file is one line
    here, before the run folder or its logs are touched, instead of a traceback inside Lightning.
    """
    path = resolve_resume(resume)
    if path is None:
        return None
    if not zipfile.is_zipfile(path):  # torch.save writes a zip; a cut one has no central directory
        raise ConfigError(
            f"{path}: not a torch checkpoint (truncated or another format); cannot resume from it"
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ConfigError(
            f"{path}: holds Python objects, not only weights (not a scopeseg run checkpoint); refusing to unpickle it"
        ) from None
    except Exception as e:  # torn zip, text, empty file: torch raises RuntimeError/EOFError/ValueError
        raise ConfigError(
            f"{path}: unreadable checkpoint ({_first_line(e)}); cannot resume from it"
        ) from None
    missing = [k for k in CKPT_KEYS if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise ConfigError(f"{path}: not a Lightning checkpoint of a scopeseg run (no {', '.join(missing)})")
    state = ckpt["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"{path}: its state_dict is not a table of tensors; cannot resume from it")
    return path, {k: tuple(v.shape) for k, v in state.items()}


def check_resume_matches(path: str, shapes: dict[str, tuple[int, ...]], module: torch.nn.Module) -> None:
    """Refuse a resume checkpoint whose weights are not those of ``module`` (another model or settings)."""
    own = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    for key in sorted(own.keys() | shapes.keys()):
        if own.get(key) != shapes.get(key):
            have = "absent" if key not in shapes else f"shape {list(shapes[key])}"
            want = "absent" if key not in own else f"shape {list(own[key])}"
            raise ConfigError(
                f"{path}: weights do not fit this model ({key}: checkpoint {have}, model {want}); "
                "resume with the run's own model= and settings"
            )


def _is_rank_zero() -> bool:
    """False in a DDP worker of another rank (Lightning, torchrun and SLURM set these): only rank 0 writes."""
    return all(int(os.environ.get(v) or 0) == 0 for v in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"))


def earlier_run_outputs(run_dir: Path) -> list[str]:
    """Names of run outputs (``RUN_OUTPUTS``) already in ``run_dir``: a non-empty list means an earlier run."""
    return [name for name in RUN_OUTPUTS if (run_dir / name).exists() or (run_dir / name).is_symlink()]


@dataclass(frozen=True)
class RunPlan:
    """What ``plan_run`` decided, writing nothing: the folder, earlier outputs to replace, the resume checkpoint."""

    cfg: TrainerOptions
    task: str
    dir: Path
    replace: tuple[str, ...]
    resume: str | None
    resume_shapes: dict[str, tuple[int, ...]] | None
    writer: bool


@dataclass(frozen=True)
class Run:
    """A started run: its folder (written), the checkpoint Lightning resumes from, the trainer."""

    dir: Path
    ckpt_path: str | None
    trainer: Any
    created: bool = False  # the folder did not exist (or was empty) before this run wrote it
    kept: tuple[str, ...] = ()  # run outputs already there that this run leaves in place (a resumed run's)

    def undo(self) -> None:
        """A refusal during fit, before any checkpoint: remove what this run wrote and put back the outputs
        ``overwrite=true`` set aside, so the folder is as it was before the command."""
        if self.created:
            shutil.rmtree(self.dir, ignore_errors=True)
            return
        for name in RUN_OUTPUTS:
            if name not in self.kept and ((self.dir / name).exists() or (self.dir / name).is_symlink()):
                _remove_output(self.dir / name)
        aside = overwritten_dir(self.dir)
        if aside.is_dir():
            for old in aside.iterdir():
                os.replace(old, self.dir / old.name)
            aside.rmdir()

    def release(self) -> None:
        """The run released its best checkpoint: the outputs it replaced are dropped for good."""
        shutil.rmtree(overwritten_dir(self.dir), ignore_errors=True)


def overwritten_dir(run_dir: Path, pid: int | None = None) -> Path:
    """Hidden folder where ``overwrite=true`` keeps the earlier run's outputs until the new run has a checkpoint."""
    return run_dir / f".overwritten-{os.getpid() if pid is None else pid}"


def _remove_output(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def plan_run(cfg: TrainerOptions, task: str) -> RunPlan:
    """Check ``out=`` and ``resume=`` before any data is read; writes nothing.

    A folder holding an earlier run is refused unless ``resume=`` names that run (continue it) or
    ``overwrite=true`` (its outputs are removed by ``start_run``, after every other check passed).
    """
    run_dir = Path(cfg.out)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: out= is a file, not a folder")
    resume = read_resume_checkpoint(cfg.resume)
    earlier = earlier_run_outputs(run_dir)
    continuing = resume is not None and Path(resume[0]).resolve().parent.parent == run_dir.resolve()
    writer = _is_rank_zero()
    if writer and earlier and not continuing and not cfg.overwrite:
        raise ConfigError(
            f"{run_dir}: holds an earlier run ({', '.join(earlier)}); pass overwrite=true to replace it, "
            f"resume={run_dir} to continue it, or another out="
        )
    return RunPlan(
        cfg=cfg,
        task=task,
        dir=run_dir,
        replace=() if continuing else tuple(earlier),
        resume=resume[0] if resume else None,
        resume_shapes=resume[1] if resume else None,
        writer=writer,
    )


def write_run_dir(plan: RunPlan) -> Path:
    """Create the run folder: leftovers of a killed run put right, replaced outputs removed (``best`` first),
    then config and marker written."""
    run_dir = plan.dir
    run_dir.mkdir(parents=True, exist_ok=True)
    for path in [run_dir / n for n in RUN_OUTPUTS] + [run_dir / "checkpoints" / n for n in CKPT_FILES]:
        tidy(path)  # temp siblings of atomic writes that kill -9 stopped (.best.partial-PID-..., ...)
    for stale in run_dir.glob(".overwritten-*"):  # a killed overwrite run: the replacement was asked for
        pid = stale.name.rpartition("-")[2]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    if plan.replace:  # set aside, not deleted: a refusal during fit puts them back (Run.undo)
        kept = overwritten_dir(run_dir)
        kept.mkdir(exist_ok=True)
        for name in plan.replace:
            path = run_dir / name
            if path.exists() or path.is_symlink():
                os.replace(path, kept / name)
    write_text(
        run_dir / "config.yaml",
        yaml.safe_dump({"task": plan.task, **plan.cfg.model_dump(mode="json")}, sort_keys=False),
    )
    if not (run_dir / RUN_MARKER).exists():
        write_json(run_dir / RUN_MARKER, {"task": plan.task, "created": time.time()}, indent=2)
    return run_dir


def start_run(plan: RunPlan, module: torch.nn.Module, monitor: str = "val_dice", mode: str = "max") -> Run:
    """The last checks (resume weights fit ``module``, Lightning accepts devices/precision), then the folder
    is written (rank 0). Call it after the data and the model were built: a refusal before it changes nothing."""
    if plan.resume is not None and plan.resume_shapes is not None:
        check_resume_matches(plan.resume, plan.resume_shapes, module)
    trainer = build_trainer(plan.cfg, plan.dir, monitor=monitor, mode=mode)
    created = not plan.dir.exists() or not any(plan.dir.iterdir())
    kept = (
        tuple(n for n in earlier_run_outputs(plan.dir) if n not in plan.replace) if plan.dir.is_dir() else ()
    )
    if plan.writer:
        write_run_dir(plan)
    return Run(plan.dir, plan.resume, trainer, created=created and plan.writer, kept=kept)


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
        flush_logs_callback(),
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
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    try:
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
            plugins=[atomic_checkpoint_io()],
            **kwargs,
        )
    except (MisconfigurationException, ValueError, ImportError) as e:  # no such device/backend/precision
        raise ConfigError(
            f"trainer settings refused (accelerator={cfg.accelerator} devices={cfg.devices} "
            f"strategy={cfg.strategy} precision={cfg.precision}): {_first_line(e)}"
        ) from None


def flush_logs_callback():
    """Write buffered log rows before each checkpoint and at each epoch start (CSV buffers 100 steps), so a
    run killed after a checkpoint keeps the logs of every epoch that checkpoint holds."""
    from lightning.pytorch.callbacks import Callback

    class FlushLogs(Callback):
        def _flush(self, trainer, *_: Any) -> None:
            for logger in trainer.loggers:
                logger.save()

        on_validation_end = on_train_epoch_start = _flush

    return FlushLogs()


def atomic_checkpoint_io():
    """Lightning checkpoint I/O that writes temp + rename beside the file (Lightning's own temp file lives in
    the system temp folder, so its final move is a copy that kill -9 can cut when that is another disk)."""
    from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

    class AtomicCheckpointIO(TorchCheckpointIO):
        def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
            if storage_options is not None:
                raise TypeError("storage_options are not supported by scopeseg checkpoints")
            with atomic_path(path) as tmp:
                torch.save(checkpoint, tmp)

    return AtomicCheckpointIO()


def best_state_dict(run_dir: Path, prefix: str = "model.") -> dict[str, torch.Tensor] | None:
    """The module weights of our own best (else last) Lightning checkpoint in ``run_dir``."""
    for name in CKPT_FILES:
        p = run_dir / "checkpoints" / name
        if p.is_file():
            ckpt = torch.load(p, map_location="cpu", weights_only=True)
            return {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    return None


def prepare_run_dir(cfg: TrainerOptions, task: str) -> Path:
    """``plan_run`` + ``write_run_dir`` in one step, for tasks that check their data after it (plugins)."""
    plan = plan_run(cfg, task)
    return write_run_dir(plan) if plan.writer else plan.dir


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


def configure_adamw(
    params: Iterable[Any],
    cfg: TrainerOptions,
    total_steps: int,
    factor: Callable[[int], float] | None = None,
) -> Any:
    """Lightning ``configure_optimizers`` result: AdamW, stepped per batch by the configured schedule.

    ``params``: parameters or param-group dicts (a group may set its own ``lr``); ``factor(step)`` replaces
    the schedule's lr multiplier (the same for every group).
    """
    opt = torch.optim.AdamW(list(params), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.schedule == "none":
        return opt
    f = factor or lr_factor(cfg.schedule, total_steps, cfg.warmup_steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, f)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class EncoderOptions(BaseConfig):
    """How a pretrained encoder trains (tasks whose model has ``.encoder``): its lr, its BatchNorm, its frozen
    prefix. Defaults leave it training like the rest of the model."""

    encoder_lr_factor: float = Field(1.0, gt=0, le=1, description="encoder lr = lr x this")
    #: encoder BatchNorm frozen (eval statistics, fixed affine): small-batch statistics are noise, and
    #: ImageNet statistics keep the pretrained features' scale
    freeze_encoder_bn: bool = False
    #: encoder modules computing the first N feature maps (strides 2 .. 2**N) frozen, as detectron2's
    #: FREEZE_AT: ImageNet edges and blobs need no retraining, and the backward pass skips the
    #: highest-resolution layers
    freeze_encoder_at: int = Field(0, ge=0, le=5)


def _frozen_encoder_parts(model: torch.nn.Module, cfg: EncoderOptions) -> list[torch.nn.Module]:
    enc = getattr(model, "encoder", None)
    if enc is None:
        return []
    parts: list[torch.nn.Module] = []
    if cfg.freeze_encoder_at:
        if not hasattr(enc, "feature_prefix"):  # MONAI's encoders (unet-effb*) have no layer taps
            raise ConfigError(
                f"freeze_encoder_at needs an encoder with layer taps (efficientnet-lite, mobilenetv2); "
                f"this model's is {type(enc).__name__}"
            )
        parts = list(enc.feature_prefix(cfg.freeze_encoder_at))
    if cfg.freeze_encoder_bn:
        parts += [m for m in enc.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    return parts


def freeze_encoder(model: torch.nn.Module, cfg: EncoderOptions) -> None:
    """Stop gradients into the frozen encoder parts (``freeze_encoder_at`` prefix, ``freeze_encoder_bn``)."""
    for m in _frozen_encoder_parts(model, cfg):
        m.requires_grad_(False)


def keep_encoder_frozen(model: torch.nn.Module, cfg: EncoderOptions) -> None:
    """Put the frozen encoder parts back in eval mode (Lightning calls ``train()`` around validation)."""
    for m in _frozen_encoder_parts(model, cfg):
        m.eval()


def encoder_param_groups(model: torch.nn.Module, cfg: EncoderOptions) -> list[dict[str, Any]]:
    """AdamW groups of the trainable parameters: the encoder's at ``lr x encoder_lr_factor``, the rest at lr."""
    encoder = getattr(model, "encoder", None)
    in_encoder = {id(p) for p in encoder.parameters()} if encoder is not None else set()
    trainable = [p for p in model.parameters() if p.requires_grad]
    enc = [p for p in trainable if id(p) in in_encoder]
    rest = [p for p in trainable if id(p) not in in_encoder]
    groups: list[dict[str, Any]] = [{"params": rest}]
    if enc:
        groups.append({"params": enc, "lr": cfg.lr * cfg.encoder_lr_factor})  # type: ignore[attr-defined]
    return groups


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
    trainer: Any = None,
    undo: Callable[[], None] | None = None,
) -> dict[str, Any] | None:
    """Fit (resuming weights-only from ``ckpt_path``), then (rank 0) save the best weights in ``run_dir/best``.

    A ``TrainingError`` (NaN loss) still releases the last good checkpoint, then is raised naming it.
    Returns None on other ranks, else ``{"best", "train_seconds", "epochs_run", "trainer"}``.
    ``trainer``: the one ``start_run`` built (else one is built here). ``undo`` (``Run.undo``) is called when a
    user-caused error (a corrupt image met while training) stops the fit before any checkpoint exists.
    """
    from ..models.checkpoints import run_manifest

    if trainer is None:
        trainer = build_trainer(cfg, run_dir, monitor=monitor, mode=mode)
    t0 = time.time()
    error: ScopesegError | None = None
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except TrainingError as e:
        error = e
    except ScopesegError:
        if undo is not None and best_state_dict(run_dir) is None:
            undo()
        raise
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
