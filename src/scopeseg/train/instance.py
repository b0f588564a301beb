"""Instance segmentation training (task ``instance``): Mask2Former family on the canonical data set.

Each image's annotations are its objects (category -> class index); validation runs the model's own
post-processing and scores COCO segm AP50 (faster-coco-eval), which picks the best checkpoint.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
from pydantic import Field, field_validator
from torch.utils.data import DataLoader, Dataset

from ..config import parse_size
from ..data.coco import CocoDataset, load_dataset
from ..data.datasets import resolve_categories
from ..errors import DataError, TrainingError
from ..io import write_json
from ..models.instance.criterion import SetCriterion, Target
from ..models.instance.postprocess import instances_from_outputs
from .loop import (
    EncoderOptions,
    TrainerOptions,
    configure_adamw,
    create_task_model,
    encoder_param_groups,
    fit_and_release,
    freeze_encoder,
    keep_encoder_frozen,
    lr_factor,
    plan_run,
    register_task,
    start_run,
)
from .semantic import train_val_ids

MONITOR = "val_ap50"


class InstanceTrainConfig(TrainerOptions, EncoderOptions):
    """Mask2Former instance training; the model switches are the SiMaskFormer / LEMIS options."""

    model: str = "mask2former-lite0"
    pretrained: bool = True
    data: str | None = None
    val_data: str | None = None
    val_fraction: float = Field(0.2, gt=0, lt=1)
    categories: list[str] | None = None  # None: every category with annotations in the training data
    train_size: tuple[int, int] = (224, 352)
    flip: bool = True  # training: random horizontal flips
    jitter: bool = True  # training: random brightness / contrast / channel gains
    hidden_dim: int = Field(64, ge=32)
    num_queries: int = Field(20, ge=1)
    dec_layers: int = Field(6, ge=1)
    enc_layers: int = Field(2, ge=1)
    heads: int = Field(4, ge=1)
    ffn_dim: int = Field(256, ge=8)
    #: text fusion (None: the model's own: none for mask2former-*, cross_attention for lemis-*)
    text: Literal["none", "additive", "cross_attention"] | None = None
    text_encoder: Literal["minilm", "random"] = "minilm"
    quality_head: bool = False
    shared_matching: bool = False
    refine: bool = False
    box_head: bool = False
    #: class head also sees the stride-4 pixel features pooled under each query's mask
    mask_pool: bool = False
    #: mask_pool also takes the max of the features under each mask (a small coloured head is not averaged away)
    pool_max: bool = False
    #: text models, training only: noise added to each class-name embedding (x its norm), so names that mean
    #: the same (synonyms at inference) land on the same class
    text_noise: float = Field(0.0, ge=0)
    encoder_lr_factor: float = Field(0.1, gt=0, le=1)
    #: encoder BatchNorm frozen as in Mask2Former's backbones: batch-4 statistics are noise, and the
    #: encoder's backward is ~25 % cheaper on CPU without them (freeze_encoder_at=2, Mask2Former's
    #: FREEZE_AT, saves another 13 % of step time)
    freeze_encoder_bn: bool = True
    #: with max_minutes, the lr schedule advances by wall-clock time too (whichever is further), so a
    #: time-limited run still warms up, decays and ends at the low lr instead of being cut mid-schedule
    time_schedule: bool = True
    no_object_weight: float = Field(0.1, gt=0, le=1)
    topk: int = Field(20, ge=1)

    @field_validator("train_size", mode="before")
    @classmethod
    def _size(cls, v: Any) -> Any:
        return parse_size(v)


def model_args(cfg: InstanceTrainConfig) -> dict[str, Any]:
    keys = (
        "hidden_dim",
        "num_queries",
        "dec_layers",
        "enc_layers",
        "heads",
        "ffn_dim",
        "text",
        "text_encoder",
    )
    keys += ("quality_head", "shared_matching", "refine", "box_head", "mask_pool", "pool_max")
    return {k: getattr(cfg, k) for k in keys if getattr(cfg, k) is not None}


def _resize(img: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    import cv2

    h, w = size
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)


class InstanceDataset(Dataset):
    """(image float[3,H,W] in [0,1], Target) of ``image_ids`` resized to ``size``; kept in memory once read."""

    def __init__(
        self,
        ds: CocoDataset,
        class_map: dict[int, int],
        image_ids: list[int],
        size: tuple[int, int],
        flip: bool = False,
        jitter: bool = False,
    ):
        self.ds, self.class_map, self.ids, self.size = ds, class_map, list(image_ids), size
        self.flip, self.jitter = flip, jitter
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def _load(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if i not in self._cache:
            iid = self.ds_id(i)
            img = _resize(self.ds.load_image(iid), self.size)
            masks, cats, _ = self.ds.instance_masks(iid)
            keep = [k for k, c in enumerate(cats) if c in self.class_map]
            ms = [_resize(masks[k].astype(np.uint8), self.size, nearest=True) for k in keep]
            labels = [self.class_map[cats[k]] for k in keep]
            ms_t = torch.from_numpy(np.stack(ms)) if ms else torch.zeros((0, *self.size), dtype=torch.uint8)
            good = ms_t.flatten(1).bool().any(1) if len(ms) else torch.zeros(0, dtype=torch.bool)
            self._cache[i] = (
                torch.from_numpy(img).permute(2, 0, 1).contiguous(),
                ms_t[good],
                torch.tensor(labels, dtype=torch.long)[good],
            )
        return self._cache[i]

    def ds_id(self, i: int) -> int:
        return self.ids[i]

    def __getitem__(self, i: int):
        img, masks, labels = self._load(i)
        if self.flip and torch.rand(()) < 0.5:
            img, masks = img.flip(-1), masks.flip(-1)
        x = img.float() / 255.0
        if self.jitter:  # training: photometric jitter (brightness, contrast, per-channel gain)
            x = color_jitter(x)
        return x, Target(labels, masks.float(), masks_to_boxes(masks))


def color_jitter(x: torch.Tensor, strength: float = 0.2) -> torch.Tensor:
    """Random brightness, contrast and per-channel gain of an image in [0, 1] (why: scenes vary by video)."""
    r = (torch.rand(5) * 2 - 1) * strength
    mean = x.mean()
    x = (x - mean) * (1 + r[0]) + mean + r[1] * 0.5
    return (x * (1 + r[2:].view(3, 1, 1) * 0.5)).clamp(0, 1)


def masks_to_boxes(masks: torch.Tensor) -> torch.Tensor:
    """Normalised (cx, cy, w, h) boxes of binary masks ``(G, H, W)``."""
    if masks.shape[0] == 0:
        return torch.zeros(0, 4)
    h, w = masks.shape[-2:]
    out = []
    for m in masks.bool():
        ys, xs = torch.nonzero(m, as_tuple=True)
        x0, x1, y0, y1 = xs.min().item(), xs.max().item() + 1, ys.min().item(), ys.max().item() + 1
        out.append([(x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h])
    return torch.tensor(out, dtype=torch.float32)


def collate(batch):
    return torch.stack([b[0] for b in batch]), [b[1] for b in batch]


def class_map_of(ds: CocoDataset, selectors: list[str] | None) -> tuple[dict[int, int], list[str]]:
    """Category id -> class index (0-based) and class names; default: categories that have annotations."""
    if selectors:
        cids = resolve_categories(ds, selectors)
    else:
        used = {a["category_id"] for a in ds.annotations.values()}
        cids = sorted(c for c in ds.categories if c in used)
    if not cids:
        raise DataError("no annotated categories to train an instance model on", ds.path)
    return {c: i for i, c in enumerate(cids)}, [ds.categories[c]["name"] for c in cids]


class InstanceDataModule(L.LightningDataModule):
    def __init__(self, cfg: InstanceTrainConfig):
        super().__init__()
        if not cfg.data:
            raise DataError("no training data: pass data=PATH (a data set folder or COCO JSON)")
        self.cfg = cfg
        self.ds = load_dataset(cfg.data)
        if not self.ds.images:
            raise DataError("data set has no images", self.ds.path)
        self.class_map, self.classes = class_map_of(self.ds, cfg.categories)
        if cfg.val_data:
            self.val_ds = load_dataset(cfg.val_data)
            names = {self.val_ds.categories[c]["name"]: c for c in self.val_ds.categories}
            missing = [n for n in self.classes if n not in names]
            if missing:
                raise DataError(f"validation data has no categories {missing}", self.val_ds.path)
            self.val_class_map = {names[n]: i for i, n in enumerate(self.classes)}
            self.train_ids, self.val_ids = list(self.ds.images), list(self.val_ds.images)
        else:
            self.val_ds, self.val_class_map = self.ds, self.class_map
            self.train_ids, self.val_ids = train_val_ids(self.ds, cfg.val_fraction, cfg.seed)
        size = tuple(cfg.train_size)
        self.train_set = InstanceDataset(self.ds, self.class_map, self.train_ids, size, cfg.flip, cfg.jitter)
        self.val_set = InstanceDataset(self.val_ds, self.val_class_map, self.val_ids, size, False)

    def _loader(self, dataset, shuffle: bool) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.cfg.batch_size,
            shuffle=shuffle,
            num_workers=self.cfg.num_workers,
            drop_last=shuffle and len(dataset) > self.cfg.batch_size,
            collate_fn=collate,
            persistent_workers=self.cfg.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, False)


def coco_ap_of(preds: list[list], targets: list[Target], size: tuple[int, int], num_classes: int) -> dict:
    """COCO segm AP / AP50 / AP75 of post-processed instances against targets at the training size."""
    from ..data import rle as rle_utils
    from ..metrics.instances import coco_evaluate

    h, w = size
    gt = {
        "images": [],
        "annotations": [],
        "categories": [{"id": k + 1, "name": str(k)} for k in range(num_classes)],
    }
    dts = []
    for i, (inst, t) in enumerate(zip(preds, targets)):
        gt["images"].append({"id": i + 1, "height": h, "width": w, "file_name": f"{i}.png"})
        for m, lab in zip(t.masks.cpu().numpy() > 0.5, t.labels.tolist()):
            r = rle_utils.encode(m)
            gt["annotations"].append(
                {
                    "id": len(gt["annotations"]) + 1,
                    "image_id": i + 1,
                    "category_id": lab + 1,
                    "segmentation": r,
                    "area": float(m.sum()),
                    "bbox": [float(v) for v in rle_utils.bbox(r)],
                    "iscrowd": 0,
                }
            )
        for x in inst:
            dts.append(
                {
                    "image_id": i + 1,
                    "category_id": x.label + 1,
                    "segmentation": rle_utils.encode(x.mask),
                    "score": x.score,
                }
            )
    if not gt["annotations"]:
        return {"AP": 0.0, "AP50": 0.0, "AP75": 0.0}
    named = coco_evaluate(gt, dts, "segm")["named"]
    return {k: max(0.0, named[k]) for k in ("AP", "AP50", "AP75")}


class InstanceModule(L.LightningModule):
    def __init__(self, model: torch.nn.Module, cfg: InstanceTrainConfig):
        super().__init__()
        self.model = model
        self.cfg = cfg
        model.text_noise = cfg.text_noise
        self.criterion = SetCriterion(
            len(model.classes), no_object_weight=cfg.no_object_weight, shared_matching=cfg.shared_matching
        )
        freeze_encoder(model, cfg)
        self._val: tuple[list, list] = ([], [])
        self.save_hyperparameters({"config": cfg.model_dump(mode="json"), "model_config": dict(model.config)})

    def train(self, mode: bool = True):
        """Lightning switches modes around validation: keep the frozen encoder norms and layers in eval mode."""
        super().train(mode)
        if mode:
            keep_encoder_frozen(self.model, self.cfg)
        return self

    def training_step(self, batch, batch_idx):
        x, targets = batch
        loss = self.criterion(self.model.forward_all(x), targets)
        if not torch.isfinite(loss):
            raise TrainingError(
                f"loss is {float(loss)} at epoch {self.current_epoch} step {self.global_step} "
                f"(lower lr=, check the data); the last good checkpoint is kept"
            )
        self.log("train_loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=x.shape[0])
        for k, v in self.criterion.last.items():
            self.log(f"train_{k}_loss", v, on_step=False, on_epoch=True, batch_size=x.shape[0])
        return loss

    def validation_step(self, batch, batch_idx):
        x, targets = batch
        logits, masks, quality, boxes = self.model(x)
        size = tuple(x.shape[-2:])
        for b in range(x.shape[0]):
            self._val[0].append(
                instances_from_outputs(
                    logits[b],
                    masks[b],
                    quality[b] if self.model.quality_head else None,
                    boxes[b] if self.model.box_head else None,
                    size,
                    size,
                    self.cfg.topk,
                )
            )
            self._val[1].append(targets[b])

    def on_validation_epoch_end(self) -> None:
        preds, targets = self._val
        self._val = ([], [])
        r = coco_ap_of(preds, targets, tuple(self.cfg.train_size), len(self.model.classes))
        self.log(MONITOR, r["AP50"], prog_bar=True)
        self.log("val_ap", r["AP"])

    def configure_optimizers(self):
        total = int(self.trainer.estimated_stepping_batches)
        factor = None
        if self.cfg.time_schedule and self.cfg.max_minutes and self.cfg.schedule != "none":
            f = lr_factor(self.cfg.schedule, total, self.cfg.warmup_steps)
            factor = timed_factor(f, total, self.cfg.warmup_steps, self.cfg.max_minutes)
        return configure_adamw(encoder_param_groups(self.model, self.cfg), self.cfg, total, factor)


def timed_factor(factor, total: int, warmup: int, minutes: float):
    """``factor(step)`` advanced to the wall-clock fraction of ``minutes`` when that is further along.

    Why: a run stopped by ``max_minutes`` otherwise ends mid-schedule at a high lr; here the schedule
    reaches its end when the time does, whatever the machine's speed (warm-up stays step-based).
    """
    start: list[float] = []

    def timed(step: int) -> float:
        if not start:
            start.append(time.monotonic())
        if step < warmup:
            return factor(step)
        frac = min(1.0, (time.monotonic() - start[0]) / (60.0 * minutes))
        return factor(max(step, int(warmup + frac * (total - warmup))))

    return timed


@register_task("instance", config=InstanceTrainConfig)
def train_instance(cfg: InstanceTrainConfig) -> dict[str, Any]:
    """Train a Mask2Former instance model; returns ``{"run_dir", "best", "metrics"}`` (metrics on rank 0)."""
    torch.set_float32_matmul_precision("high")
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    plan = plan_run(cfg, "instance")
    dm = InstanceDataModule(cfg)
    model = create_task_model(
        cfg.model, "instance", classes=dm.classes, pretrained=cfg.pretrained, **model_args(cfg)
    )
    if model.text_conditioned:  # the class names' table (also when the encoder starts from random weights)
        from ..models.instance.text import text_encoder

        model.set_class_embeddings(dm.classes, text_encoder(cfg.text_encoder).embed(dm.classes))
    model.config.update(
        {
            "input_size": list(cfg.train_size),
            "topk": cfg.topk,
            "category_map": {dm.ds.categories[c]["name"]: i for c, i in dm.class_map.items()},
            "encoder_weights": model.encoder_weights,
        }
    )
    module = InstanceModule(model, cfg)
    run = start_run(plan, module, monitor=MONITOR, mode="max")
    card = f"Instance segmentation (Mask2Former) of {', '.join(dm.classes)}, trained with scopeseg."
    released = fit_and_release(
        module,
        dm,
        model,
        cfg,
        run.dir,
        card,
        ckpt_path=run.ckpt_path,
        monitor=MONITOR,
        mode="max",
        trainer=run.trainer,
        undo=run.undo,
    )
    if released is None:
        return {"run_dir": str(run.dir)}
    run.release()
    result: dict[str, Any] = {
        "run_dir": str(run.dir),
        **{k: v for k, v in released.items() if k != "trainer"},
    }
    best = released["trainer"].checkpoint_callback
    if best is not None and best.best_model_score is not None:
        result["metrics"] = {MONITOR: float(best.best_model_score)}
    write_json(Path(run.dir) / "result.json", result, indent=2)
    return result
