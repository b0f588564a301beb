"""Video-family predictor: frame by frame, the image encoder through an engine, memory + decoder in torch.

Why: the encoder is the cost (and frozen), so running it through ``engines.load_engine(..., "promptable")``
lets ONNX Runtime / OpenVINO apply; the memory attention and the fine-tuned decoder are small and stay in
torch. ``VideoPredictor`` is a frame stepper (``reset`` / ``step``) like ``tracking.BoxTracker``, so
``tracking.propagate`` gives it prompts on any frame, corrections and both directions.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ModelError
from ..models.sam.recipes import as_rgb_uint8, get_recipe
from ..models.video.memory import MemorySAM, ObjectMemory, box_from_logits, grow_corners
from ..models.video.sam2 import Sam2Recipe, Sam2Video
from .engines import load_engine
from .predictors import register_predictor
from .sources import load_torch_model
from .tracking import Prompt

log = logging.getLogger(__name__)


class _Obj:
    def __init__(self) -> None:
        self.bank = ObjectMemory()
        self.low: torch.Tensor | None = None  # last low-res logits (1, L, L)
        self.last_box: torch.Tensor | None = None
        self.lost = 0


@register_predictor("video")
class VideoPredictor:
    """``step(frame, prompts) -> {obj_id: bool mask}`` over a memory model; one bounded memory bank per object.

    ``threshold``: mask probability cut (default the model's ``threshold``, set by ``tune-threshold``);
    ``memory``: recent frames kept per object (default the model's); ``margin``: the previous mask's box grows
    by this fraction of its side before it prompts the next frame (``prompt_mode="box"`` models).
    """

    kind = "memory"

    def __init__(
        self,
        model: MemorySAM,
        engine: str = "torch",
        precision: str = "fp32",
        threads: int | None = None,
        threshold: float | None = None,
        memory: int | None = None,
        margin: float = 0.1,
        redetect_grow: float = 1.25,
        min_score: float = 0.75,
        source_dir: str | Path | None = None,
    ):
        if not isinstance(model, MemorySAM):
            raise ModelError(f"{type(model).__name__} is no memory-head video model")
        self.model = model.eval()
        self.encoder = load_engine(
            model.sam if engine == "torch" else self._base_folder(model, source_dir),
            "promptable",
            engine,
            precision,
            threads,
        )
        self.recipe = get_recipe(model.preprocess)
        self.threshold = float(model.threshold if threshold is None else threshold)
        if memory is not None:
            self.model.memory_size = min(int(memory), self.model.tpos.shape[0] - 1)
        self.margin, self.redetect_grow, self.min_score = margin, redetect_grow, min_score
        self.objects: dict[int, _Obj] = {}
        self.frames = 0
        self.last_probs: dict[int, np.ndarray] = {}  # probabilities of the last step (tune-threshold)

    def _base_folder(self, model: MemorySAM, source_dir: str | Path | None) -> Path:
        """The base SAM (frozen encoder) as a promptable checkpoint folder, for the graph engines to export once:
        ``SOURCE/base_sam`` beside a video checkpoint (announced), else a temporary folder of this predictor."""
        if source_dir is not None:
            folder = Path(source_dir) / "base_sam"
        else:
            import tempfile

            self._tmp = tempfile.TemporaryDirectory(prefix="scopeseg-video-base-")
            folder = Path(self._tmp.name) / "base_sam"
        if not (folder / "config.json").is_file():
            log.warning("writing the memory model's base SAM to %s for the %s engine (once)", folder, "graph")
            sam = model.sam
            saved = dict(sam.config)
            sam.config["pretrained"] = False
            try:
                sam.save_pretrained(folder)
            finally:
                sam.config.clear()
                sam.config.update(saved)
        return folder

    @classmethod
    def from_pretrained(cls, source: str | Path | Any, **options: Any) -> VideoPredictor:
        """A video checkpoint folder (or a ``MemorySAM`` object); ``options`` as the constructor's."""
        model = load_torch_model(source)
        if isinstance(model, Sam2Video):
            return Sam2Predictor(model, threshold=options.get("threshold"), memory=options.get("memory"))
        folder = Path(source) if isinstance(source, (str, Path)) and Path(source).is_dir() else None
        return cls(model, source_dir=folder, **options)

    def reset(self) -> None:
        """Forget every object and its memory."""
        self.objects = {}

    def _mask_logits(self, mask: np.ndarray, prep: Any) -> torch.Tensor:
        """A full-size bool mask -> ``(1, L, L)`` logits (+-10) in the padded input frame (memory of a mask prompt)."""
        size, low = self.model.img_size, self.model.low_res_size
        small = self.recipe.resize(mask.astype(np.uint8) * 255, size)
        canvas = np.zeros((size, size), np.float32)
        canvas[: small.shape[0], : small.shape[1]] = small > 127
        t = F.interpolate(torch.from_numpy(canvas)[None, None], (low, low), mode="area")[0] > 0.5
        return t.float() * 20.0 - 10.0

    @torch.inference_mode()
    def step(self, image: np.ndarray, prompts: Mapping[int, Prompt] | None = None) -> dict[int, np.ndarray]:
        prompts = prompts or {}
        rgb = as_rgb_uint8(image)
        size = rgb.shape[:2]
        for oid in prompts:
            self.objects.setdefault(oid, _Obj())
        if not self.objects:
            return {}
        prep = self.recipe.prepare(rgb, self.model.img_size)
        enc = self.encoder.encode(prep.pixels)
        emb = enc.float() if isinstance(enc, torch.Tensor) else torch.from_numpy(np.asarray(enc, np.float32))
        self.frames += 1
        valid = prep.input_size
        ids, coords, labels, prompted, given, redetect = [], [], [], [], [], []
        for oid, ob in self.objects.items():
            p = prompts.get(oid)
            c, lab, mask = self._prompt(p, ob, prep, valid)
            if c is None:  # lost and nothing to re-detect from
                continue
            ids.append(oid)
            coords.append(c)
            labels.append(lab)
            prompted.append(p is not None)
            given.append(mask)
            redetect.append(p is None and ob.low is None)
        out = {oid: np.zeros(size, bool) for oid in self.objects}
        if not ids:
            return out
        width = max(c.shape[0] for c in coords)
        cs = torch.zeros(len(ids), width, 2)
        ls = -torch.ones(len(ids), width)
        for i, (c, lab) in enumerate(zip(coords, labels)):
            cs[i, : c.shape[0]], ls[i, : c.shape[0]] = c, lab
        banks = [self.objects[o].bank for o in ids]
        low, iou = self.model.step(emb, banks, cs, ls, prompted, given)
        probs = torch.sigmoid(self.recipe.postprocess(low, prep, self.model.img_size))[:, 0]
        self.last_probs = {oid: probs[i].numpy() for i, oid in enumerate(ids)}
        for i, oid in enumerate(ids):
            ob = self.objects[oid]
            m = (probs[i] > self.threshold).numpy()
            if redetect[i] and float(iou[i]) < self.min_score:
                m = np.zeros(size, bool)
            if m.sum() < 16:
                ob.low, ob.lost = None, ob.lost + 1
                out[oid] = np.zeros(size, bool)
                continue
            ob.low, ob.lost = low[i, 0], 0
            ob.last_box = box_from_logits(ob.low, valid, 0.0)
            out[oid] = m
        return out

    def _prompt(self, p: Prompt | None, ob: _Obj, prep: Any, valid: tuple[int, int]):
        """(coords ``(P, 2)``, labels ``(P,)``, given mask logits or None) of an object on this frame."""
        scale = self.recipe.scale_points
        if p is not None:
            if p.mask is not None:
                logits = self._mask_logits(p.mask, prep)
                box = box_from_logits(logits[0], valid, 0.0)
                c = box if box is not None else torch.tensor([[0.0, 0.0], [float(valid[1]), float(valid[0])]])
                return c, torch.tensor([2.0, 3.0]), logits
            parts_c, parts_l = [], []
            if p.points:
                pts = scale(np.array(p.points, np.float64), prep.original_size, self.model.img_size)
                parts_c.append(torch.as_tensor(pts, dtype=torch.float32))
                parts_l.append(torch.tensor(p.labels, dtype=torch.float32))
            if p.box is not None:
                box = self.recipe.scale_boxes(
                    np.array([p.box], np.float64), prep.original_size, self.model.img_size
                )
                parts_c.append(torch.as_tensor(box.reshape(2, 2), dtype=torch.float32))
                parts_l.append(torch.tensor([2.0, 3.0]))
            return torch.cat(parts_c), torch.cat(parts_l), None
        if self.model.prompt_mode == "none":
            return torch.zeros(1, 2), -torch.ones(1), None
        if ob.low is not None:
            box = box_from_logits(ob.low, valid, self.margin)
            if box is not None:
                return box, torch.tensor([2.0, 3.0]), None
        if ob.last_box is None:
            return None, None, None
        return (
            grow_corners(ob.last_box, self.redetect_grow ** max(1, ob.lost), valid),
            torch.tensor([2.0, 3.0]),
            None,
        )


class Sam2Predictor:
    """SAM2 (transformers) as a frame stepper: one inference session per pass, pruned to what memory reaches.

    Why: the session otherwise keeps every frame's pixels and outputs; pruning keeps memory flat over long videos.
    Runs in torch (the SAM2 image encoder lives inside transformers' session, outside our engines).
    """

    kind = "sam2"

    def __init__(self, model: Sam2Video, threshold: float | None = None, memory: int | None = None):
        self.model = model.eval()
        self.recipe = Sam2Recipe()
        self.threshold = float(model.threshold if threshold is None else threshold)
        if memory is not None:
            log.info("SAM2 keeps its trained memory size (%d); memory=%s ignored", model.memory_size, memory)
        self.reset()

    def reset(self) -> None:
        self.last_probs: dict[int, np.ndarray] = {}
        self.session = None
        self.t = 0
        self.known: set[int] = set()

    @torch.inference_mode()
    def step(self, image: np.ndarray, prompts: Mapping[int, Prompt] | None = None) -> dict[int, np.ndarray]:
        rgb = as_rgb_uint8(image)
        size = rgb.shape[:2]
        s = self.model.img_size
        if self.session is None:
            self.session = self.model.new_session(*size)
        prep = self.recipe.prepare(rgb, s)
        for oid, p in (prompts or {}).items():
            if p.mask is not None:
                small = self.recipe.resize(p.mask.astype(np.uint8) * 255, s) > 127
                self.model.add_prompt(self.session, self.t, oid, mask=torch.from_numpy(small))
            else:
                parts_c, parts_l = [], []
                if p.box is not None:
                    parts_c.append(
                        self.recipe.scale_boxes(np.array([p.box], np.float64), size, s).reshape(2, 2)
                    )
                    parts_l.append(np.array([2.0, 3.0]))
                if p.points:
                    parts_c.append(self.recipe.scale_points(np.array(p.points, np.float64), size, s))
                    parts_l.append(np.array(p.labels, np.float64))
                self.model.add_prompt(
                    self.session,
                    self.t,
                    oid,
                    torch.from_numpy(np.concatenate(parts_c)),
                    torch.from_numpy(np.concatenate(parts_l)),
                )
            self.known.add(oid)
        if not self.known:
            self.t += 1
            return {}
        out = self.model.step_frame(self.session, self.t, torch.from_numpy(prep.pixels[0]))
        probs = torch.sigmoid(self.recipe.postprocess(out.pred_masks.float(), prep, s))[:, 0]
        self.last_probs = {int(oid): probs[i].numpy() for i, oid in enumerate(out.object_ids)}
        masks = {oid: p > self.threshold for oid, p in self.last_probs.items()}
        self.model.prune(self.session, self.t)
        self.t += 1
        return masks
