"""Semantic segmentation training (task ``semantic``): config, data module, Lightning module and run.

UNet family on the canonical data set: weighted losses, AdamW + cosine/poly, split by video, best checkpoint
by validation Dice; presets live in ``scopeseg/configs``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from pydantic import Field, field_validator
from torch.utils.data import DataLoader, Dataset

from ..data.coco import CocoDataset, load_dataset
from ..data.datasets import SemanticDataset, build_class_map
from ..data.transforms import eval_transform, load_style_images, train_transform
from ..errors import DataError, TrainingError
from ..io import write_json
from ..losses import build_loss
from ..metrics.inputs import Pair
from ..metrics.protocols import EvalResult, score_pairs
from .loop import (
    EncoderOptions,
    TrainerOptions,
    configure_adamw,
    create_task_model,
    encoder_param_groups,
    fit_and_release,
    freeze_encoder,
    keep_encoder_frozen,
    make_loader,
    plan_run,
    register_task,
    start_run,
)
from .validation import RankMean, score_label_maps


class SemanticTrainConfig(TrainerOptions, EncoderOptions):
    """Semantic segmentation training: UNet family on the canonical data set."""

    model: str = "unet-lite0"
    pretrained: bool = True
    data: str | None = None
    val_data: str | None = None
    val_fraction: float = Field(0.2, gt=0, lt=1)
    mode: Literal["binary", "multiclass"] = "binary"
    categories: list[str] | None = None
    train_size: tuple[int, int] | None = (256, 384)
    augment: Literal["none", "light", "default", "real", "randconv", "domain"] = "default"
    #: zoom range of the random affine (augment levels from "default" on); > 1 zooms in
    augment_scale: tuple[float, float] = (0.85, 1.2)
    #: unlabeled real frames (folders or image files) whose style the training images take on with probability
    #: style_p (sim-to-real: synthetic frames made to look like the user's camera); their labels are never read
    style_images: list[str] | None = None
    style: Literal["fda", "histogram", "pixel"] = "histogram"
    style_p: float = Field(0.5, ge=0, le=1)
    init: str | None = None  # start from this checkpoint's weights (fine-tuning; same model and classes)
    loss: str = "dice:1,bce:1"
    threshold: float = Field(0.5, gt=0, lt=1)
    cache_images: bool = True
    report: bool = True
    report_examples: int = Field(4, ge=0)

    @field_validator("style_images", mode="before")
    @classmethod
    def _style_images(cls, v: Any) -> Any:
        return [v] if isinstance(v, str | Path) else v

    @field_validator("augment_scale")
    @classmethod
    def _scale(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 < v[0] <= v[1]:
            raise ValueError(f"augment_scale must be (low, high) with 0 < low <= high, got {list(v)}")
        return v


def train_val_ids(ds: CocoDataset, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Use the data's ``split`` fields when they name train/val; otherwise split by video with ``seed``."""
    splits = ds.splits()
    if "train" in splits and "val" in splits:
        return splits["train"], splits["val"]
    parts = ds.copy().assign_splits({"train": 1 - val_fraction, "val": val_fraction}, seed=seed)
    if not parts["val"] or not parts["train"]:
        raise DataError(f"cannot split {len(ds)} images into train and val; give val_data=", ds.path)
    return parts["train"], parts["val"]


class TrainValDataModule(L.LightningDataModule):
    """A task's ``train_set`` / ``val_set`` behind the shared loaders (shuffle + drop_last only when training)."""

    cfg: TrainerOptions
    train_set: Dataset
    val_set: Dataset

    def _loader(self, dataset, shuffle: bool) -> DataLoader:
        return make_loader(dataset, self.cfg, shuffle)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, False)


class SemanticDataModule(TrainValDataModule):
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
        refs = load_style_images(cfg.style_images, size) if cfg.style_images else []
        self.train_set = SemanticDataset(
            self.ds,
            self.class_map,
            self.train_ids,
            transform=train_transform(
                None if cache else size, cfg.augment, cfg.augment_scale, cfg.style, refs, cfg.style_p
            ),
            cache_transform=cache,
        )
        self.val_set = SemanticDataset(
            self.val_ds,
            self.val_class_map,
            self.val_ids,
            transform=None if cache else eval_transform(size),
            cache_transform=cache,
        )


#: how validation and the best-checkpoint report score a model: binary -> protocol "binary" (foreground Dice),
#: multi-class -> protocol "semantic" (per-image mean Dice over classes present); (protocol, per-image Dice column)
VAL_PROTOCOL: dict[bool, tuple[str, str]] = {True: ("binary", "dice"), False: ("semantic", "mdice")}


def predicted_labels(logits: torch.Tensor, threshold: float) -> torch.Tensor:
    """Label maps ``(B, H, W)`` of logits: binary ``sigmoid > threshold`` (as ``Predictor``), else argmax."""
    if logits.shape[1] == 1:
        return (torch.sigmoid(logits[:, 0]) > threshold).to(torch.uint8)
    return logits.argmax(1)


class SemanticModule(L.LightningModule):
    def __init__(self, model: torch.nn.Module, cfg: SemanticTrainConfig):
        super().__init__()
        self.model = model
        self.cfg = cfg
        self.loss_fn = build_loss(cfg.loss, binary=model.binary)
        self.val_dice = RankMean()
        freeze_encoder(model, cfg)
        self.save_hyperparameters({"config": cfg.model_dump(mode="json"), "model_config": dict(model.config)})

    def train(self, mode: bool = True):
        """Lightning switches modes around validation: keep the frozen encoder parts in eval mode."""
        super().train(mode)
        if mode:
            keep_encoder_frozen(self.model, self.cfg)
        return self

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
            self.log(
                f"train_{k}_loss", v, on_step=False, on_epoch=True, batch_size=x.shape[0], sync_dist=True
            )
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.model(x)
        loss = self.loss_fn(logits, y)
        self.log("val_loss", loss, on_epoch=True, prog_bar=False, batch_size=x.shape[0], sync_dist=True)
        protocol, column = VAL_PROTOCOL[logits.shape[1] == 1]
        params = {"surface": False} if protocol == "binary" else {"num_classes": logits.shape[1]}
        preds = predicted_labels(logits, self.cfg.threshold).cpu().numpy()
        rows = score_label_maps(protocol, list(y.cpu().numpy()), list(preds), **params)
        self.val_dice.update([r[column] for r in rows])

    def on_validation_epoch_end(self) -> None:
        """``val_dice``: mean per-image Dice of the protocol over all validation images of all ranks."""
        self.log("val_dice", self.val_dice.compute(self.trainer.strategy), prog_bar=True)

    def configure_optimizers(self):
        return configure_adamw(
            encoder_param_groups(self.model, self.cfg), self.cfg, int(self.trainer.estimated_stepping_batches)
        )


def init_from_checkpoint(model: torch.nn.Module, path: str) -> None:
    """Copy a checkpoint's weights into ``model`` (fine-tuning): same architecture and number of classes.

    Class names may differ (a synthetic ``instrument`` model fine-tuned on a real ``tool`` mask set).
    """
    from ..models.checkpoints import load_model

    src = load_model(path)
    name, n_src = src.config.get("name"), len(src.config.get("classes") or [])
    if name != model.config.get("name") or n_src != len(model.config.get("classes") or []):
        raise DataError(
            f"init checkpoint is {name} with {n_src} classes; this run trains "
            f"{model.config.get('name')} with {len(model.config.get('classes') or [])}",
            path,
        )
    model.load_state_dict(src.state_dict())


@register_task("semantic", config=SemanticTrainConfig)
def train_semantic(cfg: SemanticTrainConfig) -> dict[str, Any]:
    """Train a semantic UNet; returns ``{"run_dir", "best", "metrics"}`` (metrics on rank 0 only).

    Every check (out=, resume=, data, model, trainer) runs before ``start_run`` writes the run folder.
    """
    import lightning as L

    torch.set_float32_matmul_precision("high")
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    plan = plan_run(cfg, "semantic")
    dm = SemanticDataModule(cfg)
    model = create_task_model(cfg.model, "semantic", classes=dm.classes, pretrained=cfg.pretrained)
    if cfg.init:
        init_from_checkpoint(model, cfg.init)
    model.config.update(
        {
            "mode": cfg.mode,
            "input_size": list(cfg.train_size) if cfg.train_size else None,
            "threshold": cfg.threshold,
            "categories": cfg.categories,
            "category_map": {dm.ds.categories[c]["name"]: i for c, i in dm.class_map.items()},
            "encoder_weights": model.encoder_weights,
        }
    )
    module = SemanticModule(model, cfg)
    run = start_run(plan, module)
    run_dir = run.dir
    card = f"Semantic segmentation ({cfg.mode}) of {', '.join(dm.classes)}, trained with scopeseg."
    released = fit_and_release(
        module, dm, model, cfg, run_dir, card, ckpt_path=run.ckpt_path, trainer=run.trainer, undo=run.undo
    )
    if released is None:  # not rank 0
        return {"run_dir": str(run_dir)}
    run.release()
    best_dir = Path(released["best"])
    result: dict[str, Any] = {
        "run_dir": str(run_dir),
        **{k: v for k, v in released.items() if k != "trainer"},
    }
    write_json(run_dir / "result.json", result, indent=2)  # the report reads epochs and time from it
    if cfg.report:
        result["metrics"] = report_best_checkpoint(run_dir, best_dir, dm, cfg)
    write_json(run_dir / "result.json", result, indent=2)
    return result


def predict_pairs(
    predictor: Any, ds: CocoDataset, image_ids: list[int], class_map: dict[int, int]
) -> list[Pair]:
    """(ground-truth label map, ``predictor``'s label map) pairs of ``image_ids`` at the images' own size."""
    from ..progress import track

    ids, bs, pairs = list(image_ids), max(1, predictor.batch_size), []
    for start in track(range(0, len(ids), bs), "evaluating", total=(len(ids) + bs - 1) // bs):
        chunk = ids[start : start + bs]
        for iid, pred in zip(chunk, predictor.predict([ds.load_image(i) for i in chunk])):
            key = str(Path(str(ds.images[iid]["file_name"])).with_suffix(""))
            extra = {"image_id": iid, "image_path": ds.image_path(iid)}
            pairs.append(Pair(key, ds.semantic_mask(iid, class_map), pred, extra=extra))
    return pairs


def score_best_checkpoint(best_dir: Path, dm: SemanticDataModule, cfg: SemanticTrainConfig) -> EvalResult:
    """The best checkpoint's predictions on the validation images at their own size, scored by its protocol.

    Why: the numbers of the training report are those ``scopeseg evaluate`` gives on the same masks (binary:
    protocol ``binary`` with surface metrics; multi-class: ``semantic``).
    """
    from ..models.checkpoints import load_model
    from ..models.dense_recipe import DenseRecipe, torch_forward

    model = load_model(best_dir)
    predictor = DenseRecipe(torch_forward(model), model.config, batch_size=max(1, cfg.batch_size))
    pairs = predict_pairs(predictor, dm.val_ds, dm.val_ids, dm.val_class_map)
    protocol, _ = VAL_PROTOCOL[predictor.binary]
    classes = dict(enumerate(predictor.classes, start=1))
    params = {} if predictor.binary else {"num_classes": len(predictor.classes) + 1}
    result = score_pairs(protocol, pairs, classes, **params)
    result.examples = {}  # the report shows cfg.report_examples worst images
    return result.attach_examples(pairs, cfg.report_examples)


def report_best_checkpoint(run_dir: Path, best_dir: Path, dm: SemanticDataModule, cfg: SemanticTrainConfig):
    """Score the best checkpoint (``score_best_checkpoint``); write ``metrics.json`` and ``report.html``."""
    from ..evaluate import metrics_json
    from ..report.training import training_report, training_summary

    result = score_best_checkpoint(best_dir, dm, cfg)
    write_json(Path(run_dir) / "metrics.json", metrics_json(result, dm.val_ds.path, best_dir), indent=2)
    training_report(run_dir, cfg, result)
    return training_summary(result)
