"""Video object tracking with a promptable image model (LiteMedSAM / MobileSAM): prompts on any frame, propagated.

Why: real pretrained weights exist for the SAM image models only, so a tracker built from them works on a
laptop today. Each frame is prompted with the (slightly enlarged) box of the object's mask on the previous
frame; when the mask vanishes the object is re-detected from its last box, grown frame by frame, and a
re-detection is accepted only when the model's predicted IoU passes ``min_score``. A prompt on a later frame
(a correction) restarts the object there; ``direction="both"`` also propagates backward, and every frame takes
each object's mask from its nearest prompt in time (SAM2's rule for interactive corrections).

Public API (``propagate`` is what callers use)::

    from scopeseg.inference.tracking import Prompt, propagate
    prompts = {0: {1: Prompt(box=(10, 20, 110, 90)), 2: Prompt(points=[(50, 60)], labels=[1])}}
    for frame_index, masks in propagate("litemedsam", frames, prompts, direction="both"):
        ...  # masks: {obj_id: bool HxW}
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..data import rle as rle_ops
from ..errors import DataError
from .prompt import PromptPredictor

log = logging.getLogger(__name__)

Direction = Literal["forward", "backward", "both"]
#: frame index -> object id -> prompt
Prompts = Mapping[int, Mapping[int, "Prompt"]]


@dataclass(eq=False)
class Prompt:
    """One object's prompt on one frame: a box ``(x0, y0, x1, y1)``, points ``[(x, y)]`` with labels (1
    positive, 0 negative), and/or a mask (bool HxW, taken as the object's mask on that frame), in frame pixels.
    """

    box: tuple[float, float, float, float] | None = None
    points: Sequence[Sequence[float]] = field(default_factory=tuple)
    labels: Sequence[int] = field(default_factory=tuple)
    mask: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.box is not None:
            self.box = tuple(float(v) for v in np.asarray(self.box, dtype=np.float64).reshape(-1))
        self.points = tuple(tuple(float(v) for v in p) for p in self.points)
        self.labels = tuple(int(v) for v in self.labels)
        if self.mask is not None:
            self.mask = np.asarray(self.mask).astype(bool)

    @property
    def positive(self) -> bool:
        """True when the prompt says where the object is (a box, a mask or a positive point)."""
        return self.box is not None or self.mask is not None or any(v == 1 for v in self.labels)

    def check(self, size: tuple[int, int], where: str) -> None:
        """One-line ``DataError`` (``where`` names frame and object) unless the prompt fits an HxW frame."""
        h, w = size
        if self.box is None and self.mask is None and not self.points:
            raise DataError(f"{where}: empty prompt (give a box, points or a mask)")
        if self.box is not None:
            if len(self.box) != 4 or not np.isfinite(self.box).all():
                raise DataError(f"{where}: box must be 4 finite numbers x0,y0,x1,y1, got {list(self.box)}")
            x0, y0, x1, y1 = self.box
            if x1 <= x0 or y1 <= y0:
                raise DataError(
                    f"{where}: box [{x0:g}, {y0:g}, {x1:g}, {y1:g}] is degenerate (need x0<x1, y0<y1)"
                )
            if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
                raise DataError(
                    f"{where}: box [{x0:g}, {y0:g}, {x1:g}, {y1:g}] lies outside the {w}x{h} (WxH) frame"
                )
        if self.points:
            if len(self.labels) != len(self.points):
                raise DataError(f"{where}: {len(self.points)} points but {len(self.labels)} labels")
            for (x, y), lab in zip(self.points, self.labels):
                if lab not in (0, 1):
                    raise DataError(f"{where}: point label must be 1 (positive) or 0 (negative), got {lab}")
                if not (np.isfinite(x) and np.isfinite(y)) or x < 0 or y < 0 or x > w or y > h:
                    raise DataError(f"{where}: point ({x:g}, {y:g}) lies outside the {w}x{h} (WxH) frame")
        if self.mask is not None and self.mask.shape != (h, w):
            raise DataError(f"{where}: mask has size {self.mask.shape}, the frame is {h}x{w}")


def check_prompts(
    prompts: Prompts,
    n_frames: int | None,
    size: tuple[int, int] | None,
    objects: Iterable[int] | None = None,
) -> None:
    """Refuse bad prompts in one line: frame out of range, prompt outside the frame, unknown object id.

    ``objects`` (when given) lists the known object ids; otherwise ids must be positive integers and every
    object needs a positive prompt somewhere (negative points alone say nothing about where it is).
    """
    if not prompts:
        raise DataError("no prompts: give at least one box, point or mask on some frame")
    known = None if objects is None else {int(o) for o in objects}
    positive: dict[int, bool] = {}
    for t, per_obj in prompts.items():
        if not isinstance(t, (int, np.integer)) or isinstance(t, bool):
            raise DataError(f"prompt frame {t!r} is not an integer frame index")
        if t < 0 or (n_frames is not None and t >= n_frames):
            limit = f"0..{n_frames - 1}" if n_frames else ">= 0"
            raise DataError(f"prompt on frame {t} is out of range (the video has frames {limit})")
        for oid, p in per_obj.items():
            where = f"prompt on frame {t}, object {oid}"
            if not isinstance(oid, (int, np.integer)) or isinstance(oid, bool) or oid < 1:
                raise DataError(f"{where}: object ids are positive integers")
            if known is not None and int(oid) not in known:
                raise DataError(f"{where}: unknown object id {oid} (known: {sorted(known)})")
            if not isinstance(p, Prompt):
                raise DataError(f"{where}: not a Prompt")
            if size is not None:
                p.check(size, where)
            positive[int(oid)] = positive.get(int(oid), False) or p.positive
    for oid, ok in positive.items():
        if not ok:
            raise DataError(f"object {oid} has only negative points: give a box, a mask or a positive point")


def mask_box(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    """Tight xyxy box (x1, y1 exclusive) of a bool mask, or None when empty."""
    ys = np.flatnonzero(mask.any(axis=1))
    if ys.size == 0:
        return None
    xs = np.flatnonzero(mask.any(axis=0))
    return float(xs[0]), float(ys[0]), float(xs[-1] + 1), float(ys[-1] + 1)


def grow_box(box: Sequence[float], factor: float, pad: float, size: tuple[int, int]) -> tuple[float, ...]:
    """``box`` scaled about its centre by ``factor`` plus ``pad`` pixels per side, clipped to the HxW frame."""
    h, w = size
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    hw, hh = (x1 - x0) * factor / 2 + pad, (y1 - y0) * factor / 2 + pad
    nx0, ny0 = max(0.0, cx - hw), max(0.0, cy - hh)
    nx1, ny1 = min(float(w), cx + hw), min(float(h), cy + hh)
    if nx1 - nx0 < 1:
        nx0, nx1 = max(0.0, min(nx0, w - 1.0)), min(float(w), max(nx0, w - 1.0) + 1.0)
    if ny1 - ny0 < 1:
        ny0, ny1 = max(0.0, min(ny0, h - 1.0)), min(float(h), max(ny0, h - 1.0) + 1.0)
    return nx0, ny0, nx1, ny1


@dataclass
class _Track:
    box: tuple[float, ...] | None = None  # the prompt box for the next frame (None: lost)
    last_box: tuple[float, ...] | None = None  # the last non-empty mask's box
    lost: int = 0  # frames since the mask vanished


class BoxTracker:
    """Frame-by-frame box tracker over a ``PromptPredictor``: ``step(frame, prompts) -> {obj_id: mask}``.

    ``margin``: the previous mask's box grows by this fraction of its side (+1 px) before prompting, since the
    object moves. ``min_area``: masks smaller (pixels) count as vanished. Re-detection (``redetect``): a lost
    object is prompted with its last box grown by ``redetect_grow`` per lost frame (up to the whole frame);
    the mask is kept only when the predicted IoU is at least ``min_score``. ``max_lost`` frames without a
    re-detection end the object (None: never).
    """

    def __init__(
        self,
        predictor: PromptPredictor,
        margin: float = 0.1,
        min_area: int = 16,
        redetect: bool = True,
        redetect_grow: float = 1.25,
        min_score: float = 0.75,
        max_lost: int | None = None,
    ):
        self.predictor = predictor
        self.margin, self.min_area = margin, min_area
        self.redetect, self.redetect_grow, self.min_score = redetect, redetect_grow, min_score
        self.max_lost = max_lost
        self.tracks: dict[int, _Track] = {}
        self.frames = 0  # frames encoded

    def reset(self) -> None:
        """Forget every object (a new propagation pass)."""
        self.tracks = {}

    def step(self, image: np.ndarray, prompts: Mapping[int, Prompt] | None = None) -> dict[int, np.ndarray]:
        """Masks of every known object on ``image`` (HxWx3 RGB); ``prompts`` (re)start objects on this frame."""
        prompts = prompts or {}
        size = image.shape[:2]
        out: dict[int, np.ndarray] = {}
        boxes: dict[int, tuple[float, ...]] = {}
        redetecting: set[int] = set()
        pointed: dict[int, Prompt] = {}
        for oid, p in prompts.items():
            self.tracks[oid] = _Track()
            if p.mask is not None:
                out[oid] = p.mask.copy()
            elif p.points:
                pointed[oid] = p
            else:
                boxes[oid] = p.box
        for oid, tr in self.tracks.items():
            if oid in prompts:
                continue
            if tr.box is not None:
                boxes[oid] = grow_box(tr.box, 1.0 + 2 * self.margin, 1.0, size)
            elif self.redetect and tr.last_box is not None:
                if self.max_lost is not None and tr.lost > self.max_lost:
                    continue
                factor = min(self.redetect_grow**tr.lost, 2.0 * max(size))
                boxes[oid] = grow_box(tr.last_box, factor, 1.0, size)
                redetecting.add(oid)
        if boxes or pointed:
            self.predictor.set_image(image)
            self.frames += 1
        if boxes:
            ids = list(boxes)
            res = self.predictor.predict(boxes=np.array([boxes[o] for o in ids], np.float64))
            for k, oid in enumerate(ids):
                m = res.masks[k]
                if oid in redetecting and float(res.scores[k]) < self.min_score:
                    m = np.zeros(size, bool)
                out[oid] = m
        for oid, p in pointed.items():
            res = self.predictor.predict(
                boxes=None if p.box is None else np.array([p.box], np.float64),
                points=np.array([p.points], np.float64),
                point_labels=np.array([p.labels], np.float64),
            )
            out[oid] = res.masks[0]
        for oid, tr in self.tracks.items():
            m = out.get(oid)
            if m is None:
                out[oid] = np.zeros(size, bool)
                tr.lost += 1
                continue
            if int(m.sum()) < self.min_area:
                out[oid] = np.zeros(size, bool)
                tr.box = None
                tr.lost += 1
            else:
                tr.box = tr.last_box = mask_box(m)
                tr.lost = 0
        return out


FrameSource = Sequence[np.ndarray] | Iterable[np.ndarray]


def _as_tracker(model: Any, options: Mapping[str, Any]) -> Any:
    """A frame stepper (``reset()``, ``step(image, prompts)``): given, or a ``BoxTracker`` on a predictor/name."""
    if hasattr(model, "step") and hasattr(model, "reset"):
        return model
    if isinstance(model, (str, Path)):
        model = PromptPredictor.from_pretrained(model)
    return BoxTracker(model, **options)


def _pass(
    tracker: Any, frames: Sequence[np.ndarray], order: Iterable[int], prompts: Prompts
) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
    tracker.reset()
    for t in order:
        yield t, tracker.step(np.asarray(frames[t]), prompts.get(t))


def propagate(
    model: Any,
    frames: FrameSource,
    prompts: Prompts,
    direction: Direction = "forward",
    objects: Iterable[int] | None = None,
    **tracker_options: Any,
) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
    """Yield ``(frame_index, {obj_id: bool HxW mask})`` for the frames the prompts reach, in frame order.

    ``model``: a ``PromptPredictor``, a frame stepper (``BoxTracker``, ``video.VideoPredictor``: ``reset()`` and
    ``step(image, prompts) -> masks``), or a name/folder for ``PromptPredictor.from_pretrained``
    (``"litemedsam"``, ``"mobilesam"``, a checkpoint or export folder). ``frames``: RGB HxWx3 arrays; a
    sequence (random access: a list, an array, ``video_objects.VideoFrames``) or, for ``"forward"`` only
    without materialising, any iterable. ``prompts``: ``{frame: {obj_id: Prompt}}``, checked first
    (``check_prompts``). ``"forward"`` runs from the first prompted frame to the end, ``"backward"`` from the
    last prompted frame to frame 0 (yielded in descending order), ``"both"`` covers every frame, each object
    taking the pass that starts at its nearest prompt in time (ties: forward). An object appears in a frame's
    dict from its first prompt on (forward), up to its last (backward), everywhere (both).
    ``tracker_options`` go to ``BoxTracker`` (margin, min_area, redetect, redetect_grow, min_score, max_lost).
    """
    if direction not in ("forward", "backward", "both"):
        raise DataError(f"direction must be forward, backward or both, got {direction!r}")
    tracker = _as_tracker(model, tracker_options)
    seq = frames if isinstance(frames, Sequence) or hasattr(frames, "__getitem__") else None
    if seq is None and direction == "forward":
        yield from _propagate_stream(tracker, frames, prompts, objects)
        return
    if seq is None:
        seq = list(frames)
    n = len(seq)
    first = np.asarray(seq[0]) if n else None
    check_prompts(prompts, n, None if first is None else first.shape[:2], objects)
    start, stop = min(prompts), max(prompts)
    if direction == "forward":
        yield from _pass(tracker, seq, range(start, n), prompts)
        return
    if direction == "backward":
        yield from _pass(tracker, seq, range(stop, -1, -1), prompts)
        return
    # both: keep the forward pass as RLE, then merge with the backward pass frame by frame
    fwd: dict[int, dict[int, dict]] = {}
    for t, masks in _pass(tracker, seq, range(start, n), prompts):
        fwd[t] = {o: rle_ops.encode(m) for o, m in masks.items()}
    frames_of: dict[int, list[int]] = {}
    for t in sorted(prompts):
        for o in prompts[t]:
            frames_of.setdefault(int(o), []).append(t)
    merged: dict[int, dict[int, np.ndarray]] = {}
    for t, masks in _pass(tracker, seq, range(stop, -1, -1), prompts):
        out = {}
        for o, pf in frames_of.items():
            before = [f for f in pf if f <= t]
            after = [f for f in pf if f >= t]
            use_fwd = bool(before) and (not after or t - before[-1] <= after[0] - t)
            if use_fwd and o in fwd.get(t, {}):
                out[o] = rle_ops.decode(fwd[t][o])
            elif o in masks:
                out[o] = masks[o]
        merged[t] = {o: rle_ops.encode(m) for o, m in out.items()}
    for t in range(n):
        if t in merged:
            yield t, {o: rle_ops.decode(r) for o, r in merged.pop(t).items()}
        else:  # after the last prompt: forward only
            yield t, {o: rle_ops.decode(r) for o, r in fwd.pop(t).items()}


def _propagate_stream(
    tracker: Any, frames: Iterable[np.ndarray], prompts: Prompts, objects: Iterable[int] | None
) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
    """Forward over an iterable without holding frames (bounded memory); frame range checked at the end."""
    check_prompts(prompts, None, None, objects)
    start, last = min(prompts), -1
    tracker.reset()
    checked = False
    for t, frame in enumerate(frames):
        last = t
        frame = np.asarray(frame)
        if not checked:
            check_prompts(prompts, None, frame.shape[:2], objects)
            checked = True
        if t < start:
            continue
        yield t, tracker.step(frame, prompts.get(t))
    if max(prompts) > last:
        raise DataError(f"prompt on frame {max(prompts)} is out of range (the video has frames 0..{last})")
