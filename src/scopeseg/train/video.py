"""Clip training of video models (``task: video``; presets ``litemedsam-memory-video`` and ``sam2-tiny-video``).

A sample is a fixed-length clip of one video (``data.video.padded_clips``: no clip crosses a video; the tail is
padded and the padding is kept out of the loss) with up to ``max_objects`` objects (``track_id``s of the chosen
categories). Each object is prompted from its ground truth on its first visible frame of the clip and on up to
``prompted_frames - 1`` more frames (``prompt_types``: box / points / mask, drawn per clip); every later frame
is prompted as at inference (the box of the previous predicted mask, or nothing), and the model's memory
carries the object (``MemorySAM.step``, the code inference runs). Losses by name with weights (``losses.py``;
default SAM2's focal 20 + dice 1 + IoU 1); augmentation is the same for every frame of a clip (flip, time
reversal). The frozen encoder's embeddings are cached per (frame, flip) as float16 (``cache_embeddings``).
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from pathlib import Path
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch.utils.data import DataLoader, Dataset

from ..data.coco import CocoDataset, load_dataset
from ..data.video import gt_prompt, object_tracks, padded_clips, prompt_frames
from ..errors import ConfigError, DataError, TrainingError
from ..io import write_json
from ..losses import build_loss
from ..models.sam.recipes import as_rgb_uint8
from ..models.video.memory import MemorySAM, ObjectMemory, box_from_logits, grow_corners
from ..models.video.sam2 import Sam2Video, video_recipe
from .loop import TrainerOptions, configure_adamw, create_task_model, register_task
from .promptable import gradient_free_parameters
from .semantic import TrainValDataModule
from .validation import RankMean, score_label_maps

log = logging.getLogger(__name__)


class VideoTrainConfig(TrainerOptions):
    """Clip training of a video-family model on a canonical COCO-video data set."""

    model: str = "litemedsam-memory"
    pretrained: bool = True
    model_args: dict[str, Any] = Field(default_factory=dict, description="architecture / head overrides")
    data: str | None = None
    val_data: str | None = None
    val_fraction: float = Field(0.2, gt=0, lt=1, description="fraction of the videos held out (by video)")
    clip_length: int = Field(6, ge=1)
    clip_stride: int | None = Field(None, ge=1, description="default: clip_length (no overlap)")
    size: tuple[int, int] | None = Field(None, description="resize frames to HxW first (None: as stored)")
    categories: list[str] | None = Field(None, description="object categories (default: the instruments)")
    max_objects: int = Field(3, ge=1)
    prompt_types: list[Literal["box", "points", "mask"]] = ["box"]
    prompt_points: int = Field(1, ge=1, description="clicks per points prompt")
    prompted_frames: int = Field(1, ge=1, description="frames per object with a ground-truth prompt")
    box_jitter: float = Field(0.1, ge=0, le=0.5)
    loss: str = "focal:20,dice:1,iou_mse:1"
    flip: bool = True
    reverse: bool = Field(True, description="play half the clips backwards (time reversal)")
    margin: float = Field(0.1, ge=0, description="box margin around the previous mask (as at inference)")
    cache_embeddings: bool = True
    embedding_cache: str | None = Field(
        None,
        description="folder: the frozen encoder's embeddings of every train/val frame are computed once before "
        "training (float16 safetensors, keyed by data, model and size) and reused by later runs",
    )
    train_decoder: bool = Field(True, description="memory head: also fine-tune the base SAM's mask decoder")
    batch_size: int = 2
    lr: float = 1e-4
    epochs: int = 20


def _as_list(batch: list) -> list:
    return batch


class ClipDataset(Dataset):
    """Clips with their objects' low-res masks and ground-truth prompts (in model-input pixels)."""

    def __init__(
        self,
        ds: CocoDataset,
        video_ids: list[int],
        cfg: VideoTrainConfig,
        recipe: str,
        img_size: int,
        low_res: int,
        train: bool,
    ):
        self.ds, self.cfg, self.train = ds, cfg, train
        self.recipe, self.size, self.low_res = video_recipe(recipe), img_size, low_res
        self.cats = _category_ids(ds, cfg.categories)
        self.clips = []
        for ids, valid in padded_clips(ds, cfg.clip_length, cfg.clip_stride, video_ids):
            if object_tracks(ds, [i for i, v in zip(ids, valid) if v], self.cats):
                self.clips.append((ids, valid))
        self.epoch = 0
        self.key_offset = 0  # added to image ids in cache keys (a separate val data set: 10**9)
        self.cached: set[tuple[int, bool]] = set()  # (image id, flipped) whose embedding the module holds

    def __len__(self) -> int:
        return len(self.clips)

    def _frame(self, iid: int, flip: bool) -> tuple[np.ndarray, Any]:
        img = as_rgb_uint8(self.ds.load_image(iid))
        if self.cfg.size is not None:
            import cv2

            img = cv2.resize(img, (self.cfg.size[1], self.cfg.size[0]), interpolation=cv2.INTER_AREA)
        if flip:
            img = img[:, ::-1].copy()
        return img, self.recipe.prepare(img, self.size)

    def _low(self, mask: np.ndarray) -> torch.Tensor:
        small = self.recipe.resize(mask.astype(np.uint8) * 255, self.size)
        canvas = np.zeros((self.size, self.size), np.float32)
        canvas[: small.shape[0], : small.shape[1]] = small > 127
        return (
            F.interpolate(torch.from_numpy(canvas)[None, None], (self.low_res,) * 2, mode="area")[0, 0] > 0.5
        )

    def __getitem__(self, i: int) -> dict[str, Any]:
        ids, valid = self.clips[i]
        rng = np.random.default_rng((self.cfg.seed, self.epoch if self.train else 0, i))
        flip = bool(self.train and self.cfg.flip and rng.random() < 0.5)
        order = list(range(len(ids)))
        n_valid = sum(valid)
        if self.train and self.cfg.reverse and rng.random() < 0.5:
            order = list(range(n_valid - 1, -1, -1)) + list(range(n_valid, len(ids)))
        ids = [ids[j] for j in order]
        valid = [valid[j] for j in order]
        tracks = object_tracks(self.ds, [x for x, v in zip(ids, valid) if v], self.cats)
        oids = list(tracks)
        if len(oids) > self.cfg.max_objects:
            oids = sorted(rng.choice(oids, self.cfg.max_objects, replace=False).tolist())
        kind = self.cfg.prompt_types[int(rng.integers(len(self.cfg.prompt_types)))] if self.train else "box"
        pixels, keys, preps = [], [], []
        for iid in ids:
            key = (int(iid) + self.key_offset, flip)
            img, prep = self._frame(iid, flip)
            preps.append((img.shape[:2], prep.input_size))
            pixels.append(None if key in self.cached else torch.from_numpy(prep.pixels[0]))
            keys.append(key)
        (h, w), valid_in = preps[0]
        gt = torch.zeros(len(ids), len(oids), self.low_res, self.low_res, dtype=torch.bool)
        visible = torch.zeros(len(ids), len(oids), dtype=torch.bool)
        full_masks: dict[tuple[int, int], np.ndarray] = {}
        for t, iid in enumerate(ids):
            if not valid[t]:
                continue
            for k, oid in enumerate(oids):
                a = tracks[oid].get(iid)
                if a is None:
                    continue
                m = self.ds.mask(a)
                if self.cfg.size is not None:
                    import cv2

                    m = cv2.resize(m.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
                if flip:
                    m = m[:, ::-1]
                if m.any():
                    full_masks[t, k] = m
                    gt[t, k] = self._low(m)
                    visible[t, k] = True
        prompts: dict[tuple[int, int], dict[str, Any]] = {}
        for k in range(len(oids)):
            vis = [bool(visible[t, k]) for t in range(len(ids))]
            frames = prompt_frames(vis, "first")
            seen = [t for t, v in enumerate(vis) if v and (not frames or t > frames[0])]
            extra = self.cfg.prompted_frames - 1
            if self.train and extra and seen:
                frames += sorted(rng.choice(seen, min(extra, len(seen)), replace=False).tolist())
            elif extra and seen:
                frames += seen[:: max(1, len(seen) // extra)][:extra]
            for t in frames:
                jitter = self.cfg.box_jitter if self.train else 0.0
                p = gt_prompt(full_masks[t, k], kind, self.cfg.prompt_points, jitter, rng)
                prompts[t, k] = self._input_prompt(p, (h, w), gt[t, k])
        return {
            "pixels": pixels,
            "keys": keys,
            "gt": gt,
            "visible": visible,
            "valid": torch.tensor(valid),
            "prompts": prompts,
            "input_valid": valid_in,
        }

    def _input_prompt(self, p: dict[str, Any], hw: tuple[int, int], low_gt: torch.Tensor) -> dict[str, Any]:
        """A ground-truth prompt in model-input pixels: coords (P, 2), labels (P,), optional mask logits."""
        if "mask" in p:
            ys, xs = np.nonzero(p["mask"])
            box = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float64)
            c = self.recipe.scale_boxes(box, hw, self.size).reshape(2, 2)
            return {"coords": torch.tensor(c, dtype=torch.float32), "labels": torch.tensor([2.0, 3.0]),
                    "mask": low_gt.float()[None] * 20.0 - 10.0}  # fmt: skip
        if "box" in p:
            c = self.recipe.scale_boxes(np.array([p["box"]], np.float64), hw, self.size).reshape(2, 2)
            return {"coords": torch.tensor(c, dtype=torch.float32), "labels": torch.tensor([2.0, 3.0])}
        c = self.recipe.scale_points(np.array(p["points"], np.float64), hw, self.size)
        return {
            "coords": torch.tensor(c, dtype=torch.float32),
            "labels": torch.tensor(p["labels"], dtype=torch.float32),
        }


def _category_ids(ds: CocoDataset, names: list[str] | None) -> list[int]:
    if names is None:
        ids = [cid for cid, c in ds.categories.items() if c.get("supercategory") == "instrument"]
        return ids or list(ds.categories)
    by_name = {c["name"]: cid for cid, c in ds.categories.items()}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise ConfigError(f"categories {missing} not in the data set ({', '.join(sorted(by_name))})")
    return [by_name[n] for n in names]


def split_videos(ds: CocoDataset, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train, val) video ids: a seeded ``fraction`` of the videos held out (at least one each)."""
    vids = sorted(ds.videos)
    if len(vids) < 2:
        raise DataError(
            f"need at least 2 videos to hold some out for validation (found {len(vids)})", ds.path
        )
    rng = random.Random(seed)
    rng.shuffle(vids)
    n_val = min(len(vids) - 1, max(1, round(fraction * len(vids))))
    return sorted(vids[n_val:]), sorted(vids[:n_val])


class VideoModule(L.LightningModule):
    """Clip step: frames in order, each object through ``model.step`` with its memory; weighted losses."""

    def __init__(self, model: torch.nn.Module, cfg: VideoTrainConfig):
        super().__init__()
        self.model, self.cfg = model.train(), cfg
        self.memory_head = isinstance(model, MemorySAM)
        self.loss_fn = build_loss(cfg.loss, binary=True, inputs=("pred_iou",) if self.memory_head else ())
        self.val_dice, self.val_iou = RankMean(), RankMean()
        self._emb: dict[tuple[int, bool], torch.Tensor] = {}
        if self.memory_head:
            self.model.sam.image_encoder.requires_grad_(False)
            if not cfg.train_decoder:
                self.model.sam.requires_grad_(False)
            for p in gradient_free_parameters(self.model.sam):  # DDP: no unused parameters to hunt
                p.requires_grad_(False)
        self.save_hyperparameters({"config": cfg.model_dump(mode="json"), "model_config": dict(model.config)})

    def on_train_epoch_start(self) -> None:
        if self.memory_head:
            self.model.sam.image_encoder.eval()
            if not self.cfg.train_decoder:
                self.model.sam.eval()
        ds = getattr(self.trainer.train_dataloader, "dataset", None)
        if isinstance(ds, ClipDataset):
            ds.epoch = self.current_epoch

    def _embedding(self, clip: dict[str, Any], t: int) -> torch.Tensor:
        key = clip["keys"][t]
        if key in self._emb:
            return self._emb[key].float()[None]
        with torch.no_grad():
            emb = self.model.encode(clip["pixels"][t][None].to(self.device))
        if self.cfg.cache_embeddings:
            self._emb[key] = emb[0].half()
            for loader in (self.trainer.train_dataloader, self.trainer.val_dataloaders):
                if isinstance(getattr(loader, "dataset", None), ClipDataset):
                    loader.dataset.cached.add(key)
        return emb

    def clip_forward(self, clip: dict[str, Any]) -> tuple[list[torch.Tensor], list[dict[str, Any]]]:
        """Run one clip; returns per-frame losses and the (pred, gt) low-res masks of non-given object-frames."""
        if isinstance(self.model, Sam2Video):
            return self._clip_forward_sam2(clip)
        gt, valid, prompts = clip["gt"], clip["valid"], clip["prompts"]
        n_obj = gt.shape[1]
        banks = [ObjectMemory() for _ in range(n_obj)]
        prev: list[torch.Tensor | None] = [None] * n_obj
        last_box: list[torch.Tensor | None] = [None] * n_obj
        lost = [0] * n_obj
        active = [False] * n_obj
        losses, scored = [], []
        vin = tuple(clip["input_valid"])
        for t in range(gt.shape[0]):
            if not bool(valid[t]):
                continue
            rows = []
            for k in range(n_obj):
                p = prompts.get((t, k))
                if p is not None:
                    active[k] = True
                    rows.append((k, p["coords"], p["labels"], True, p.get("mask")))
                elif active[k]:
                    c = None
                    if self.model.prompt_mode == "none":
                        rows.append((k, torch.zeros(1, 2), -torch.ones(1), False, None))
                        continue
                    if prev[k] is not None:
                        c = box_from_logits(prev[k], vin, self.cfg.margin)
                    if c is None and last_box[k] is not None:
                        c = grow_corners(last_box[k], 1.25 ** max(1, lost[k]), vin)
                    if c is not None:
                        rows.append((k, c, torch.tensor([2.0, 3.0]), False, None))
            if not rows:
                continue
            emb = self._embedding(clip, t)
            width = max(r[1].shape[0] for r in rows)
            cs = torch.zeros(len(rows), width, 2)
            ls = -torch.ones(len(rows), width)
            for i, r in enumerate(rows):
                cs[i, : r[1].shape[0]], ls[i, : r[1].shape[0]] = r[1], r[2]
            low, iou = self.model.step(
                emb, [banks[r[0]] for r in rows], cs.to(self.device), ls.to(self.device),
                [r[3] for r in rows], [None if r[4] is None else r[4].to(self.device) for r in rows],
            )  # fmt: skip
            decoded = [i for i, r in enumerate(rows) if r[4] is None]
            if decoded:
                idx = torch.tensor(decoded)
                target = gt[t, [rows[i][0] for i in decoded]].to(self.device)
                losses.append(self.loss_fn(low[idx], target, pred_iou=iou[idx]))
                for i in decoded:
                    if not rows[i][3]:  # scored: frames the model propagated to, not prompted ones
                        scored.append({"pred": (low[i, 0] > 0).detach().cpu(), "gt": gt[t, rows[i][0]].cpu()})
            for i, r in enumerate(rows):
                k = r[0]
                cur = low[i, 0].detach()
                if (cur > 0).sum() < 4:
                    prev[k], lost[k] = None, lost[k] + 1
                else:
                    prev[k], lost[k] = cur, 0
                    last_box[k] = box_from_logits(cur, vin, 0.0)
        return losses, scored

    def _clip_forward_sam2(self, clip: dict[str, Any]) -> tuple[list[torch.Tensor], list[dict[str, Any]]]:
        """SAM2: the clip through one inference session (gradients on), objects added at their prompts."""
        gt, valid, prompts = clip["gt"], clip["valid"], clip["prompts"]
        m, s = self.model, self.model.img_size
        session = m.new_session(s, s)
        started: set[int] = set()
        losses, scored = [], []
        grad = torch.is_grad_enabled()
        for t in range(gt.shape[0]):
            if not bool(valid[t]):
                continue
            for k in range(gt.shape[1]):
                p = prompts.get((t, k))
                if p is None:
                    continue
                if "mask" in p:
                    big = F.interpolate(p["mask"][None], (s, s), mode="bilinear")[0, 0] > 0
                    m.add_prompt(session, t, k + 1, mask=big)
                else:
                    m.add_prompt(session, t, k + 1, p["coords"], p["labels"])
                started.add(k)
            if not started:
                continue
            pixels = clip["pixels"][t]
            out = m.step_frame(session, t, pixels.to(self.device), grad=grad)
            ks = [int(o) - 1 for o in out.object_ids]
            decoded = [i for i, k in enumerate(ks) if "mask" not in prompts.get((t, k), {})]
            if decoded:
                idx = torch.tensor(decoded)
                low = out.pred_masks[idx]
                losses.append(self.loss_fn(low, gt[t, [ks[i] for i in decoded]].to(self.device)))
                for i in decoded:
                    if (t, ks[i]) not in prompts:
                        scored.append(
                            {"pred": (out.pred_masks[i, 0] > 0).detach().cpu(), "gt": gt[t, ks[i]].cpu()}
                        )
            m.prune(session, t)
        return losses, scored

    def training_step(self, batch, batch_idx):
        total, n = None, 0
        for clip in batch:
            losses, _ = self.clip_forward(clip)
            if losses:
                loss = torch.stack(losses).mean()
                total = loss if total is None else total + loss
                n += 1
        if total is None:
            return None
        loss = total / n
        if not torch.isfinite(loss):
            raise TrainingError(
                f"loss is {float(loss)} at epoch {self.current_epoch} step {self.global_step} "
                "(lower lr=, check the data); the last good checkpoint is kept"
            )
        self.log("train_loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=n, sync_dist=True)
        for k, v in self.loss_fn.last.items():
            self.log(f"train_{k}_loss", v, on_step=False, on_epoch=True, batch_size=n, sync_dist=True)
        return loss

    def validation_step(self, batch, batch_idx):
        for clip in batch:
            losses, scored = self.clip_forward(clip)
            if losses:
                self.log("val_loss", torch.stack(losses).mean(), on_epoch=True, batch_size=1, sync_dist=True)
            if scored:
                rows = score_label_maps(
                    "binary",
                    [s["gt"].numpy().astype(np.uint8) for s in scored],
                    [s["pred"].numpy().astype(np.uint8) for s in scored],
                    surface=False,
                    empty="one",
                )
                self.val_dice.update([r["dice"] for r in rows])
                self.val_iou.update([r["iou"] for r in rows])

    def on_validation_epoch_end(self) -> None:
        """``val_dice`` / ``val_iou``: binary protocol over every propagated (not prompted) object-frame."""
        self.log("val_dice", self.val_dice.compute(self.trainer.strategy), prog_bar=True)
        self.log("val_iou", self.val_iou.compute(self.trainer.strategy))

    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        return configure_adamw(params, self.cfg, int(self.trainer.estimated_stepping_batches))


class ClipDataModule(TrainValDataModule):
    def __init__(self, cfg: VideoTrainConfig, model: torch.nn.Module):
        super().__init__()
        if not cfg.data:
            raise DataError("no training data: pass data=PATH (a COCO-video data set folder or JSON)")
        self.cfg = cfg
        ds = load_dataset(cfg.data)
        if not ds.videos:
            raise DataError("data set has no videos (clip training needs frames grouped by video)", ds.path)
        if cfg.val_data:
            val_ds = load_dataset(cfg.val_data)
            train_v, val_v = sorted(ds.videos), sorted(val_ds.videos)
        else:
            val_ds = ds
            train_v, val_v = split_videos(ds, cfg.val_fraction, cfg.seed)
        args = (model.preprocess, int(model.img_size), int(model.low_res_size))
        self.train_set = ClipDataset(ds, train_v, cfg, *args, train=True)
        self.val_set = ClipDataset(val_ds, val_v, cfg, *args, train=False)
        if val_ds is not ds:
            self.val_set.key_offset = 10**9
        if not len(self.train_set) or not len(self.val_set):
            raise DataError(
                f"need clips with objects in both splits (train {len(self.train_set)}, val {len(self.val_set)})",
                ds.path,
            )

    def _loader(self, dataset, shuffle: bool) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.cfg.batch_size,
            shuffle=shuffle,
            num_workers=self.cfg.num_workers,
            collate_fn=_as_list,
            persistent_workers=self.cfg.num_workers > 0,
        )


def _cache_file(cfg: VideoTrainConfig, model: MemorySAM) -> Path:
    """``EMBEDDING_CACHE/<digest>.safetensors``: one file per (data, val data, model, base weights, frame size)."""
    parts = []
    for d in (cfg.data, cfg.val_data):
        if d:
            ann = Path(d) / "annotations.json" if Path(d).is_dir() else Path(d)
            st = ann.stat() if ann.is_file() else None
            parts.append(f"{ann.resolve()}:{st.st_size if st else 0}:{st.st_mtime_ns if st else 0}")
    enc = model.sam.image_encoder.state_dict()
    probe = sum(float(v.float().sum()) for v in list(enc.values())[:8])
    parts += [cfg.model, str(cfg.pretrained), str(cfg.size), str(model.img_size), f"{probe:.6e}"]
    digest = hashlib.sha1("|".join(parts).encode()).hexdigest()[:16]
    return Path(cfg.embedding_cache) / f"{digest}.safetensors"


def precompute_embeddings(
    cfg: VideoTrainConfig, model: MemorySAM, dm: ClipDataModule
) -> dict[tuple[int, bool], torch.Tensor]:
    """The frozen encoder's float16 embedding of every (frame, flip) the clips can ask for, from the cache file
    when it exists (else computed once and written atomically). Why: the encoder is the cost of clip training;
    with the embeddings at hand, the training time goes to optimiser steps."""
    from safetensors.torch import load_file, save_file

    from ..io import atomic_path

    path = _cache_file(cfg, model)
    flips = (False, True) if cfg.flip else (False,)
    need: dict[tuple[int, bool], ClipDataset] = {}
    for ds in (dm.train_set, dm.val_set):
        for ids, _ in ds.clips:
            for iid in ids:
                for f in flips if ds.train else (False,):
                    need.setdefault((int(iid) + ds.key_offset, f), ds)
    if path.is_file():
        stored = load_file(str(path))
        out = {(int(k.split(":")[0]), k.endswith(":1")): v for k, v in stored.items()}
        if all(k in out for k in need):
            log.info("embeddings of %d frames from %s", len(need), path)
            return out
    t0 = time.time()
    out = {}
    was = model.sam.image_encoder.training
    model.sam.image_encoder.eval()
    with torch.no_grad():
        for (iid, f), ds in need.items():
            _, prep = ds._frame(iid - ds.key_offset, f)
            out[iid, f] = model.encode(torch.from_numpy(prep.pixels))[0].half().contiguous()
    model.sam.image_encoder.train(was)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file({f"{k[0]}:{int(k[1])}": v for k, v in out.items()}, str(tmp))
    log.warning("computed the embeddings of %d frames in %.0f s -> %s", len(out), time.time() - t0, path)
    return out


@register_task("video", config=VideoTrainConfig)
def train_video(cfg: VideoTrainConfig) -> dict[str, Any]:
    """Train on clips; returns ``{"run_dir", "best", "train_seconds", "val"}`` (best = safetensors checkpoint)."""
    from .loop import fit_and_release, plan_run, start_run

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    plan = plan_run(cfg, "video")
    model = create_task_model(cfg.model, "video", pretrained=cfg.pretrained, **cfg.model_args)
    dm = ClipDataModule(cfg, model)
    module = VideoModule(model, cfg)
    if cfg.embedding_cache and isinstance(model, MemorySAM):
        module._emb = precompute_embeddings(cfg, model, dm)
        for ds in (dm.train_set, dm.val_set):
            ds.cached.update(module._emb)
    run = start_run(plan, module)
    card = f"{cfg.model} trained on clips by scopeseg (base image weights Apache-2.0 where pretrained)."
    released = fit_and_release(
        module, dm, model, cfg, run.dir, card, ckpt_path=run.ckpt_path, trainer=run.trainer, undo=run.undo
    )
    if released is None:
        return {"run_dir": str(run.dir)}
    run.release()
    trainer = released.pop("trainer")
    result = {
        "run_dir": str(run.dir),
        **released,
        "val": {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val_")},
    }
    write_json(run.dir / "result.json", result, indent=2)
    return result
