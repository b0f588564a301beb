"""Fine-tuning of promptable models (``task: promptable``, preset ``litemedsam-finetune``).

Each ground-truth object of the canonical data set is one sample: its image through the model's own
recipe (``prompt_transforms``, the one inference uses), its tight box jittered by up to ``box_jitter`` x the
box side, and its mask at the decoder's low-res size. Loss by name (``losses.py``, default Dice + BCE on the
single-mask logits + MSE of the predicted IoU, as LiteMedSAM's training); validation Dice / IoU are the binary
protocol's on the thresholded masks (``metrics.protocols``); the image encoder can be frozen. Same Lightning loop,
checkpoints and DDP as semantic training (``runner.build_trainer``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch.utils.data import Dataset

from ..data.coco import CocoDataset, load_dataset
from ..errors import DataError, TrainingError
from ..io import write_json
from ..losses import build_loss
from ..models.sam.recipes import as_rgb_uint8, get_recipe
from .loop import TrainerOptions, configure_adamw, create_task_model, register_task
from .semantic import TrainValDataModule, train_val_ids
from .validation import RankMean, score_label_maps

log = logging.getLogger(__name__)


class PromptableTrainConfig(TrainerOptions):
    """Box-prompted fine-tuning of a SAM-family model on the canonical data set."""

    model: str = "litemedsam"
    pretrained: bool = True
    model_args: dict[str, Any] = Field(default_factory=dict, description="architecture overrides (tests)")
    data: str | None = None
    val_data: str | None = None
    val_fraction: float = Field(0.2, gt=0, lt=1)
    freeze_encoder: bool = False
    train_neck: bool = Field(
        False,
        description="with freeze_encoder: still train the encoder's neck (two convs after the frozen trunk, "
        "whose output is cached), so the embedding itself adapts to the new images",
    )
    freeze_bn: bool = Field(True, description="keep BatchNorm statistics fixed (small CPU batches)")
    box_jitter: float = Field(0.1, ge=0, le=0.5, description="max box side shift as a fraction of the side")
    box_shift: float = Field(
        0.0,
        ge=0,
        le=64,
        description="MedSAM box perturbation: each side moved outward by U(0, box_shift) model-input pixels "
        "(LiteMedSAM's bbox_shift 5 at 256 = MedSAM's 20 at 1024)",
    )
    loss: str = Field(
        "dice:1,bce:1,iou_mse:1",
        description="weighted losses by name (losses.py); iou_mse trains the IoU head",
    )
    flip: bool = True
    min_area: int = Field(16, ge=1, description="skip objects smaller than this many pixels")


def jitter_box(
    box: np.ndarray,
    image_hw: tuple[int, ...],
    rng: np.random.Generator,
    frac: float = 0.0,
    shift: float = 0.0,
) -> np.ndarray:
    """A training box perturbed as in MedSAM, kept inside the image and at least 1 px wide and high.

    ``shift``: each side moves outward by U(0, shift) pixels (MedSAM's ``bbox_shift``); ``frac``: each side
    moves by U(-frac, frac) x the box side. ``box`` is xyxy in the pixels of an ``image_hw`` image.
    """
    h, w = int(image_hw[0]), int(image_hw[1])
    box = np.asarray(box, np.float64).copy()
    if frac > 0:
        bw, bh = box[2] - box[0], box[3] - box[1]
        box = box + rng.uniform(-frac, frac, 4) * np.array([bw, bh, bw, bh])
    if shift > 0:
        box = box + rng.uniform(0, shift, 4) * np.array([-1.0, -1.0, 1.0, 1.0])
    box = np.clip(box, 0, [w, h, w, h])
    box[2] = max(box[2], min(box[0] + 1, w))  # a degenerate box would carry no prompt
    box[0] = min(box[0], box[2] - 1)
    box[3] = max(box[3], min(box[1] + 1, h))
    box[1] = min(box[1], box[3] - 1)
    return box


def input_frame_target(recipe: Any, mask: np.ndarray, size: int) -> torch.Tensor:
    """The 0/1 mask ``mask`` (HxW) as a ``(1, size, size)`` float target in the padded model-input frame.

    Targets live at the input size, where the loss meets the logits upsampled as at inference: for a decoder
    whose grid is a quarter of the input (SAM, MobileSAM: 256 for 1024) an object of a few input pixels would
    vanish from an area-resized low-res target. LiteMedSAM's grid is its input (256): nothing changes there.
    """
    small = recipe.resize(np.asarray(mask, np.uint8) * 255, size)
    gt = np.zeros((size, size), np.float32)
    gt[: small.shape[0], : small.shape[1]] = small > 127
    return torch.from_numpy(gt)[None]


def input_frame_logits(low: torch.Tensor, size: int) -> torch.Tensor:
    """Low-res mask logits ``(B, 1, L, L)`` upsampled bilinearly to the input frame, as inference does."""
    if low.shape[-1] == size:
        return low
    return F.interpolate(low, (size, size), mode="bilinear", align_corners=False)


class PromptSampleDataset(Dataset):
    """(pixels, box corners in input pixels, input-frame mask) per object; jitter and flips when training."""

    def __init__(
        self,
        ds: CocoDataset,
        image_ids: list[int],
        recipe_name: str,
        img_size: int,
        jitter: float,
        flip: bool,
        min_area: int,
        seed: int,
        shift: float = 0.0,
    ):
        self.ds, self.recipe, self.size = ds, get_recipe(recipe_name), img_size
        self.jitter, self.shift, self.flip, self.seed = jitter, shift, flip, seed
        ids = set(image_ids)
        self.items = [
            (a["image_id"], a["id"])
            for a in sorted(ds.annotations.values(), key=lambda a: a["id"])
            if a["image_id"] in ids and int(ds.mask(a).sum()) >= min_area
        ]
        self.epoch = 0
        self.split_bit = 0  # 1 for the validation set (its image ids may repeat the training set's)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        image_id, ann_id = self.items[i]
        rng = np.random.default_rng((self.seed, self.epoch, i))
        image = as_rgb_uint8(self.ds.load_image(image_id))
        mask = self.ds.mask(self.ds.annotations[ann_id]).astype(np.uint8)
        flipped = bool(self.flip and rng.random() < 0.5)
        if flipped:
            image, mask = image[:, ::-1].copy(), mask[:, ::-1].copy()
        prep = self.recipe.prepare(image, self.size)
        ys, xs = np.nonzero(mask)
        box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64)
        shift = self.shift * max(mask.shape) / self.size  # input pixels -> original pixels
        box = jitter_box(box, mask.shape, rng, self.jitter, shift)
        corners = self.recipe.scale_boxes(box[None], prep.original_size, self.size).reshape(2, 2)
        gt = input_frame_target(self.recipe, mask, self.size)
        key = 4 * int(image_id) + 2 * int(flipped) + self.split_bit  # embedding-cache key of this input
        return (
            torch.from_numpy(prep.pixels[0]),
            torch.from_numpy(corners.astype(np.float32)),
            gt,
            torch.tensor(key),
        )


def gradient_free_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Parameters box-prompted training cannot change, frozen so DDP has no unused parameters to hunt:
    the mask-prompt branch (no mask input is given) and the token->image key biases (a constant per
    query under the softmax: their gradient is exactly zero, and the decoder's reassociated products skip them).
    """
    if not hasattr(model, "prompt_encoder") or not hasattr(model, "mask_decoder"):
        return []
    out = list(model.prompt_encoder.mask_downscaling.parameters())
    for name, module in model.mask_decoder.named_modules():
        if name.endswith("token_to_image") and getattr(module, "k_proj", None) is not None:
            out.append(module.k_proj.bias)
    return out


class PromptableModule(L.LightningModule):
    """Box-prompted training step: encode, decode the single-mask output, Dice + BCE + IoU-MSE."""

    def __init__(self, model: torch.nn.Module, cfg: PromptableTrainConfig):
        super().__init__()
        self.model, self.cfg = model.train(), cfg
        self.loss_fn = build_loss(cfg.loss, binary=True, inputs=("pred_iou",))
        self.val_dice, self.val_iou = RankMean(), RankMean()
        self._emb_cache: dict[int, torch.Tensor] = {}
        if cfg.freeze_encoder:
            self.model.image_encoder.requires_grad_(False)
            if cfg.train_neck:
                self.model.image_encoder.neck.requires_grad_(True)
        for p in gradient_free_parameters(self.model):
            p.requires_grad_(False)
        self.save_hyperparameters(
            {
                "config": cfg.model_dump(mode="json"),
                "model_config": dict(model.config),
            }
        )

    def on_train_epoch_start(self) -> None:
        if self.cfg.freeze_encoder:
            self.model.image_encoder.eval()
        if self.cfg.freeze_bn:
            for m in self.model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.eval()
        loader = self.trainer.train_dataloader
        ds = getattr(loader, "dataset", None)
        if isinstance(ds, PromptSampleDataset):
            ds.epoch = self.current_epoch

    def _frozen_embeddings(self, pixels: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """Frozen encoder: each distinct input image is encoded once per run (CPU fine-tuning); with
        ``train_neck`` the cache holds the trunk's output and the neck runs (with gradients) every step."""
        enc = self.model.image_encoder
        missing = [i for i, k in enumerate(keys.tolist()) if k not in self._emb_cache]
        if missing:
            with torch.no_grad():
                new = (
                    enc.trunk(pixels[missing]) if self.cfg.train_neck else self.model.encode(pixels[missing])
                )
            for j, i in enumerate(missing):
                self._emb_cache[int(keys[i])] = new[j].detach()
        cached = torch.stack([self._emb_cache[int(k)] for k in keys.tolist()])
        return enc.neck(cached) if self.cfg.train_neck else cached

    def _step(self, batch):
        pixels, corners, gt, keys = batch
        labels = torch.tensor([2.0, 3.0], device=pixels.device).expand(pixels.shape[0], 2)
        if self.cfg.freeze_encoder:
            emb = self._frozen_embeddings(pixels, keys)
        else:
            emb = self.model.encode(pixels)
        low, iou = self.model.decode(emb, corners, labels)
        logits, target = input_frame_logits(low[:, :1], gt.shape[-1]), gt[:, 0]
        return self.loss_fn(logits, target, pred_iou=iou[:, 0]), logits, target

    def training_step(self, batch, batch_idx):
        loss, _, _ = self._step(batch)
        if not torch.isfinite(loss):
            raise TrainingError(
                f"loss is {float(loss)} at epoch {self.current_epoch} step {self.global_step} "
                "(lower lr=, check the data); the last good checkpoint is kept"
            )
        n = batch[0].shape[0]
        self.log("train_loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=n, sync_dist=True)
        for k, v in self.loss_fn.last.items():
            self.log(f"train_{k}_loss", v, on_step=False, on_epoch=True, batch_size=n, sync_dist=True)
        return loss

    def validation_step(self, batch, batch_idx):
        loss, logits, target = self._step(batch)
        self.log("val_loss", loss, on_epoch=True, batch_size=batch[0].shape[0], sync_dist=True)
        preds = (logits[:, 0] > 0).to(torch.uint8).cpu().numpy()
        rows = score_label_maps("binary", list(target.cpu().numpy() > 0.5), list(preds), surface=False)
        self.val_dice.update([r["dice"] for r in rows])
        self.val_iou.update([r["iou"] for r in rows])

    def on_validation_epoch_end(self) -> None:
        """``val_dice`` / ``val_iou``: binary-protocol means over every validation object of every rank."""
        self.log("val_dice", self.val_dice.compute(self.trainer.strategy), prog_bar=True)
        self.log("val_iou", self.val_iou.compute(self.trainer.strategy))

    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        return configure_adamw(params, self.cfg, int(self.trainer.estimated_stepping_batches))


class PromptDataModule(TrainValDataModule):
    def __init__(self, cfg: PromptableTrainConfig, model: torch.nn.Module):
        super().__init__()
        if not cfg.data:
            raise DataError("no training data: pass data=PATH (a data set folder or COCO JSON)")
        self.cfg = cfg
        ds = load_dataset(cfg.data)
        if not ds.annotations:
            raise DataError("data set has no annotations (objects to prompt)", ds.path)
        if cfg.val_data:
            val_ds = load_dataset(cfg.val_data)
            train_ids, val_ids = list(ds.images), list(val_ds.images)
        else:
            val_ds = ds
            train_ids, val_ids = train_val_ids(ds, cfg.val_fraction, cfg.seed)
        args = (model.preprocess, int(model.img_size))
        self.train_set = PromptSampleDataset(
            ds, train_ids, *args, cfg.box_jitter, cfg.flip, cfg.min_area, cfg.seed, cfg.box_shift
        )
        self.val_set = PromptSampleDataset(val_ds, val_ids, *args, 0.0, False, cfg.min_area, cfg.seed)
        self.val_set.split_bit = 1
        if not len(self.train_set) or not len(self.val_set):
            raise DataError(
                f"need objects in both splits (train {len(self.train_set)}, val {len(self.val_set)})", ds.path
            )


@register_task("promptable", config=PromptableTrainConfig)
def train_promptable(cfg: PromptableTrainConfig) -> dict[str, Any]:
    """Fine-tune; returns ``{"run_dir", "best", "train_seconds", "val"}`` (best = safetensors checkpoint).

    Every check (out=, resume=, model, data, trainer) runs before ``start_run`` writes the run folder.
    """
    from .loop import fit_and_release, plan_run, start_run

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    plan = plan_run(cfg, "promptable")
    model = create_task_model(cfg.model, "promptable", pretrained=cfg.pretrained, **cfg.model_args)
    dm = PromptDataModule(cfg, model)
    module = PromptableModule(model, cfg)
    run = start_run(plan, module)
    run_dir = run.dir
    card = f"{cfg.model} fine-tuned with box prompts by scopeseg (base weights Apache-2.0)."
    released = fit_and_release(
        module, dm, model, cfg, run_dir, card, ckpt_path=run.ckpt_path, trainer=run.trainer, undo=run.undo
    )
    if released is None:  # not rank 0
        return {"run_dir": str(run_dir)}
    run.release()
    trainer = released.pop("trainer")
    result = {
        "run_dir": str(run_dir),
        **released,
        "val": {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val_")},
    }
    write_json(run_dir / "result.json", result, indent=2)
    return result


# ------------------------------------------------------------------ training on cached image embeddings
# With the image encoder frozen its output is a constant per input image: encode each image (and each
# flipped copy) once, then train the prompt encoder + mask decoder on the cached embeddings alone.


@dataclass
class PromptObject:
    """One box-prompted object on a cached embedding: the tight box (original pixels) and its input-frame mask."""

    key: str
    box: np.ndarray
    image_size: tuple[int, int]
    target: torch.Tensor  # (1, S, S) float 0/1 in the padded model-input frame (S = img_size)
    group: str = ""


def prompt_objects(
    model: torch.nn.Module,
    labels: np.ndarray,
    key: str,
    group: str = "",
    min_area: int = 16,
) -> list[PromptObject]:
    """The objects 1..K of the label map ``labels`` (HxW ints) as training samples on embedding ``key``."""
    recipe, size = get_recipe(model.preprocess), int(model.img_size)
    out = []
    for k in range(1, int(labels.max()) + 1):
        mask = (labels == k).astype(np.uint8)
        if int(mask.sum()) < min_area:
            continue
        ys, xs = np.nonzero(mask)
        box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64)
        out.append(PromptObject(key, box, labels.shape[:2], input_frame_target(recipe, mask, size), group))
    return out


@torch.no_grad()
def encode_image(model: torch.nn.Module, image: np.ndarray, trunk: bool = False) -> torch.Tensor:
    """The frozen encoder's embedding ``(C, g, g)`` of one HxWx3 image through the model's own recipe
    (``trunk``: the features before the neck, what ``fit_on_embeddings`` needs with ``train_neck``)."""
    prep = get_recipe(model.preprocess).prepare(as_rgb_uint8(image), int(model.img_size))
    pixels = torch.from_numpy(prep.pixels)
    return (model.image_encoder.trunk(pixels) if trunk else model.encode(pixels))[0]


def _trainable(model: torch.nn.Module, neck: bool = False) -> list[torch.nn.Parameter]:
    frozen = {id(p) for p in gradient_free_parameters(model)}
    return [
        p
        for n, p in model.named_parameters()
        if (not n.startswith("image_encoder.") or (neck and n.startswith("image_encoder.neck.")))
        and id(p) not in frozen
    ]


def fit_on_embeddings(
    model: torch.nn.Module,
    embeddings: dict[str, torch.Tensor],
    objects: list[PromptObject],
    cfg: PromptableTrainConfig,
    steps: int,
    balance: bool = True,
    max_minutes: float | None = None,
) -> list[float]:
    """Train the prompt encoder + mask decoder of ``model`` on cached embeddings; returns the loss per step.

    With ``cfg.train_neck`` the cache holds trunk features (``encode_image(..., trunk=True)``) and the
    encoder's neck trains too. Each step draws ``cfg.batch_size`` objects (``balance``: a group uniformly, then an object of it, so a
    source with many objects does not dominate), jitters their boxes (``box_jitter``, ``box_shift``) and
    applies ``cfg.loss`` to the single-mask output (AdamW, ``cfg.lr`` with ``cfg.schedule``).
    """
    import time

    from .loop import lr_factor

    if not objects:
        raise DataError("no objects to train on")
    missing = sorted({o.key for o in objects} - set(embeddings))
    if missing:
        raise DataError(f"no cached embedding for {missing[0]!r} ({len(missing)} missing)")
    model.image_encoder.requires_grad_(False)
    neck = model.image_encoder.neck if cfg.train_neck else None
    if neck is not None:
        neck.requires_grad_(True)
    params = _trainable(model, neck=neck is not None)
    for p in gradient_free_parameters(model):
        p.requires_grad_(False)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = None
    if cfg.schedule != "none":
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(cfg.schedule, steps, cfg.warmup_steps))
    loss_fn = build_loss(cfg.loss, binary=True, inputs=("pred_iou",))
    recipe, size = get_recipe(model.preprocess), int(model.img_size)
    groups: dict[str, list[int]] = {}
    for i, o in enumerate(objects):
        groups.setdefault(o.group if balance else "", []).append(i)
    names = sorted(groups)
    rng = np.random.default_rng(cfg.seed)
    labels = torch.tensor([2.0, 3.0]).expand(cfg.batch_size, 2)
    model.mask_decoder.train()
    if neck is not None:  # trunk features in, not finished embeddings
        width = neck[0].in_channels
        bad = next((k for k, e in embeddings.items() if e.shape[0] != width), None)
        if bad is not None:
            raise DataError(
                f"train_neck needs trunk features ({width} channels); {bad!r} has {embeddings[bad].shape[0]}"
            )
    losses: list[float] = []
    t0 = time.perf_counter()
    for step in range(steps):
        picks = [int(rng.choice(groups[names[rng.integers(len(names))]])) for _ in range(cfg.batch_size)]
        batch = [objects[i] for i in picks]
        corners = []
        for o in batch:
            shift = cfg.box_shift * max(o.image_size) / size
            box = jitter_box(o.box, o.image_size, rng, cfg.box_jitter, shift)
            corners.append(recipe.scale_boxes(box[None], o.image_size, size).reshape(2, 2))
        emb = torch.stack([embeddings[o.key] for o in batch]).float()
        if neck is not None:
            emb = neck(emb)
        coords = torch.from_numpy(np.stack(corners).astype(np.float32))
        low, iou = model.decode(emb, coords, labels[: len(batch)])
        target = torch.stack([o.target[0] for o in batch])
        loss = loss_fn(input_frame_logits(low[:, :1], size), target, pred_iou=iou[:, 0])
        if not torch.isfinite(loss):
            raise TrainingError(f"loss is {float(loss.detach())} at step {step} (lower lr=)")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        losses.append(float(loss.detach()))
        if max_minutes is not None and time.perf_counter() - t0 > 60 * max_minutes:
            log.info("fit_on_embeddings: stopped after %d steps (max_minutes=%s)", step + 1, max_minutes)
            break
    model.eval()
    return losses
