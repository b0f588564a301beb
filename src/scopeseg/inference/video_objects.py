"""``scopeseg track``: prompted video object segmentation of a video file into overlay mp4 + COCO-video RLE.

Why: one job for the three ways of following objects (the box tracker on LiteMedSAM / MobileSAM, the memory
head on their encoder, SAM2), so they are compared on the same inputs and outputs. Frames are decoded lazily
(``VideoFrames``: a bounded window of decoded frames, re-decoded for backward passes), prompts are checked
against the video's header before any model loads, and OUT appears at once (``PredictionWriter``).

Prompt grammar (``prompt=`` items, repeatable, or ``;``-separated): ``f<FRAME>[:o<OBJ>]:box:x0,y0,x1,y1``,
``f<FRAME>[:o<OBJ>]:point:x,y[,label]`` (label 1 positive, 0 negative), ``f<FRAME>[:o<OBJ>]:mask:PNG``.
Without ``o<OBJ>`` a box or mask starts a new object (ids 1, 2, ... in order) and a point belongs to object 1.
A prompts JSON (``prompts=FILE``): ``{"objects": {"1": "grasper"}, "prompts": [{"frame": 0, "object": 1,
"box": [x0, y0, x1, y1], "points": [[x, y, label]], "mask": "file.png"}]}`` (or only the list).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from ..errors import ConfigError, DataError
from ..io import check_inside, check_output, read_image, read_json
from ..progress import track as progress_track
from ..video_io import VideoWriter, iter_frames, video_info
from ..viz import palette_color
from .predictions import PredictionWriter
from .prompt_files import PromptEngineConfig
from .streams import source_name
from .tracking import BoxTracker, Prompt, Prompts, check_prompts
from .tracking import propagate as track_propagate

log = logging.getLogger(__name__)


# --- frames ----------------------------------------------------------------------------------------------


class VideoFrames(Sequence):
    """Random-access RGB frames of a video file, decoded lazily; at most ``window`` frames held in memory.

    Why: forward passes read the file once, in order; a backward pass re-decodes the window of frames that
    ends at the asked frame (PyAV decodes from the start, so a backward pass over n frames costs about
    n^2 / (2 x window) decodes) instead of holding the whole video.
    """

    def __init__(self, path: str | Path, window: int = 32, info: dict[str, Any] | None = None):
        self.path = Path(path)
        self.window = max(1, int(window))
        self.info = info or video_info(path)
        self._n = int(self.info["frames"])
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._gen: Iterator[tuple[int, np.ndarray]] | None = None
        self._next = 0  # index the open decoder yields next
        self.decoded = 0  # frames decoded in all (for tests and benchmarks)

    def __len__(self) -> int:
        return self._n

    def _keep(self, i: int, frame: np.ndarray) -> None:
        self._cache[i] = frame
        self._cache.move_to_end(i)
        while len(self._cache) > self.window:
            self._cache.popitem(last=False)

    def _open(self, start: int) -> None:
        if self._gen is not None:
            self._gen.close()
        self._gen = iter_frames(self.path, start=start)
        self._next = start

    def __getitem__(self, i: int) -> np.ndarray:  # type: ignore[override]
        if isinstance(i, slice):
            raise TypeError("VideoFrames does not slice; index frames one by one")
        i = int(i)
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError(f"frame {i} out of range 0..{self._n - 1}")
        if i in self._cache:
            return self._cache[i]
        if self._gen is None or i < self._next:
            self._open(max(0, i - self.window + 1) if self._gen is not None else i)
        assert self._gen is not None
        for j, frame in self._gen:
            self.decoded += 1
            self._next = j + 1
            if j >= i - self.window + 1:
                self._keep(j, frame)
            if j == i:
                return frame
        raise DataError(f"video ended before frame {i} (header says {self._n} frames)", self.path)

    def close(self) -> None:
        if self._gen is not None:
            self._gen.close()
            self._gen = None
        self._cache.clear()


class DatasetFrames(Sequence):
    """Frames of one video of a canonical data set (``data.video``), loaded from their image files on access."""

    def __init__(self, ds: Any, video_id: int):
        from ..data.video import video_frames

        self.ds, self.ids = ds, video_frames(ds, video_id)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> np.ndarray:  # type: ignore[override]
        from ..models.sam.recipes import as_rgb_uint8

        return as_rgb_uint8(self.ds.load_image(self.ids[int(i)]))


# --- prompts ---------------------------------------------------------------------------------------------


def _numbers(text: str, what: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise ConfigError(f"prompt {what!r}: not a comma-separated list of numbers") from None


def _read_mask(path: str | Path, base: Path | None = None) -> np.ndarray:
    """A mask image (any non-zero pixel is the object); relative paths of a prompts JSON resolve beside it."""
    p = check_inside(base, str(path)) if base is not None and not Path(path).is_absolute() else Path(path)
    img = read_image(p, mode="unchanged")
    return (img.reshape(img.shape[0], img.shape[1], -1) > 0).any(axis=2)


def parse_prompt_specs(specs: Sequence[str]) -> dict[int, dict[int, Prompt]]:
    """``["f0:box:10,20,80,90", "f12:o1:point:40,50,1"]`` -> ``{frame: {obj: Prompt}}`` (module grammar).

    Points of one frame and object add up; a box and points of the same object combine; the second box or mask
    of one object on one frame is refused.
    """
    parts: dict[int, dict[int, dict[str, Any]]] = {}
    next_obj = 1
    items = [s.strip() for spec in specs for s in str(spec).split(";") if s.strip()]
    for item in items:
        fields = item.split(":")
        if len(fields) < 3 or not fields[0].startswith("f"):
            raise ConfigError(
                f"prompt {item!r}: expected f<FRAME>[:o<OBJ>]:box|point|mask:VALUES (e.g. f0:box:10,20,80,90)"
            )
        try:
            frame = int(fields[0][1:])
        except ValueError:
            raise ConfigError(f"prompt {item!r}: frame {fields[0]!r} is not f<integer>") from None
        obj = None
        rest = fields[1:]
        if rest[0].startswith("o"):
            try:
                obj = int(rest[0][1:])
            except ValueError:
                raise ConfigError(f"prompt {item!r}: object {rest[0]!r} is not o<integer>") from None
            rest = rest[1:]
        if len(rest) < 2:
            raise ConfigError(f"prompt {item!r}: missing the prompt kind or its values")
        kind, value = rest[0], ":".join(rest[1:])
        if kind not in ("box", "point", "mask"):
            raise ConfigError(f"prompt {item!r}: kind must be box, point or mask, not {kind!r}")
        if obj is None:
            if kind == "point":
                obj = 1
            else:
                obj, next_obj = next_obj, next_obj + 1
        next_obj = max(next_obj, obj + 1)
        entry = parts.setdefault(frame, {}).setdefault(obj, {"points": [], "labels": []})
        if kind == "box":
            box = _numbers(value, item)
            if len(box) != 4:
                raise ConfigError(f"prompt {item!r}: a box is x0,y0,x1,y1")
            if "box" in entry:
                raise ConfigError(f"prompt {item!r}: object {obj} already has a box on frame {frame}")
            entry["box"] = box
        elif kind == "point":
            pt = _numbers(value, item)
            if len(pt) == 2:
                pt.append(1.0)
            if len(pt) != 3 or pt[2] not in (0.0, 1.0):
                raise ConfigError(f"prompt {item!r}: a point is x,y[,label] with label 1 or 0")
            entry["points"].append(pt[:2])
            entry["labels"].append(int(pt[2]))
        else:
            if "mask" in entry:
                raise ConfigError(f"prompt {item!r}: object {obj} already has a mask on frame {frame}")
            entry["mask"] = _read_mask(value)
    return {t: {o: Prompt(**e) for o, e in objs.items()} for t, objs in parts.items()}


def read_prompts_json(path: str | Path) -> tuple[dict[int, dict[int, Prompt]], dict[int, str]]:
    """A prompts JSON -> (prompts, object names); one-line ``DataError`` naming the file and the entry."""
    path = Path(path)
    doc = read_json(path, expect=(dict, list))
    names: dict[int, str] = {}
    entries = doc
    if isinstance(doc, dict):
        try:
            names = {int(k): str(v) for k, v in (doc.get("objects") or {}).items()}
        except (TypeError, ValueError, AttributeError):
            raise DataError("'objects' must map integer ids to names", path) from None
        entries = doc.get("prompts")
    if not isinstance(entries, list) or not entries:
        raise DataError("no prompts: expected a non-empty list under 'prompts'", path)
    out: dict[int, dict[int, Prompt]] = {}
    for i, e in enumerate(entries):
        where = f"prompt {i}"
        if not isinstance(e, dict):
            raise DataError(f"{where}: expected an object with frame, object and box/points/mask", path)
        try:
            frame, obj = int(e.get("frame", 0)), int(e.get("object", 1))
        except (TypeError, ValueError):
            raise DataError(f"{where}: frame and object must be integers", path) from None
        if obj in out.get(frame, {}):
            raise DataError(f"{where}: object {obj} has two prompts on frame {frame}", path)
        kw: dict[str, Any] = {}
        try:
            if e.get("box") is not None:
                kw["box"] = [float(v) for v in e["box"]]
            if e.get("points"):
                pts = [[float(v) for v in p] for p in e["points"]]
                kw["points"] = [p[:2] for p in pts]
                kw["labels"] = [int(p[2]) if len(p) > 2 else 1 for p in pts]
        except (TypeError, ValueError):
            raise DataError(f"{where}: box and points must be numbers", path) from None
        if e.get("mask") is not None:
            m = e["mask"]
            if isinstance(m, dict):
                from ..data import rle as rle_ops

                try:
                    kw["mask"] = rle_ops.decode(rle_ops.compress(m))
                except (ValueError, TypeError, KeyError):
                    raise DataError(f"{where}: mask is no valid RLE", path) from None
            else:
                kw["mask"] = _read_mask(str(m), path.parent)
        if "box" in kw and len(kw["box"]) != 4:
            raise DataError(f"{where}: a box is [x0, y0, x1, y1]", path)
        out.setdefault(frame, {})[obj] = Prompt(**kw)
    return out, names


# --- the job ---------------------------------------------------------------------------------------------


class TrackConfig(PromptEngineConfig):
    """Settings of ``scopeseg track MODEL VIDEO OUT key=value...`` (prompts, propagation, outputs)."""

    prompt: list[str] = []  # f<FRAME>[:o<OBJ>]:box:x0,y0,x1,y1 | :point:x,y[,label] | :mask:PNG (repeatable)
    prompts: str | None = None  # a prompts JSON (see the module docstring)
    #: auto: forward when every prompt is on the first prompted frame, else both (corrections re-propagate)
    direction: Literal["auto", "forward", "backward", "both"] = "auto"
    threshold: float | None = None  # video models: mask probability threshold (None: the model's tuned one)
    opening: int | None = Field(None, ge=0)  # morphological opening kernel side in pixels (0 / None: off)
    memory: int | None = Field(
        None, ge=1
    )  # video models: frames in the memory bank besides the prompted ones
    margin: float = Field(0.1, ge=0)  # tracker: box margin (fraction of the side) around the previous mask
    redetect: bool = True  # tracker: re-detect a vanished object from its last box
    min_score: float = Field(0.75, ge=0, le=1)  # tracker: predicted IoU needed to accept a re-detection
    window: int = Field(32, ge=1)  # decoded frames held for random access (backward passes)
    max_frames: int | None = Field(None, ge=1)  # only the first N frames
    overlays: bool = True  # write OUT/<video>_overlay.mp4
    images: bool = False  # store the frames as JPEGs in OUT/predicted (large); False: annotations only
    alpha: float = Field(0.5, ge=0, le=1)
    # archives (VIDEO = a folder of videos, one unit per video: scopeseg.archive.track)
    runner: Literal["local", "ray"] = "local"  # ray: units on Ray workers (pip install 'scopeseg[ray]')
    address: str | None = None  # runner=ray: auto | HOST:PORT of a running cluster (None: a local one)
    workers: int | None = Field(None, ge=1)  # runner=ray: workers, each with one model of `threads` threads


def object_names(prompts: Prompts, names: dict[int, str]) -> dict[int, str]:
    ids = sorted({int(o) for objs in prompts.values() for o in objs})
    return {o: names.get(o, f"object {o}") for o in ids}


def open_morph(mask: np.ndarray, kernel: int | None) -> np.ndarray:
    """Morphological opening with a ``kernel`` x ``kernel`` ellipse (removes specks; 0/None: unchanged)."""
    if not kernel or kernel < 2:
        return mask
    import cv2

    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (int(kernel), int(kernel)))
    return cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, k).astype(bool)


class Propagator:
    """A frame stepper (box tracker or video model) behind one ``propagate`` (``tracking.propagate``' rules)."""

    def __init__(self, stepper: Any, kind: str):
        self.stepper, self.kind = stepper, kind

    def propagate(
        self, frames: Sequence[np.ndarray], prompts: Prompts, direction: str = "forward", objects=None
    ) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
        return track_propagate(self.stepper, frames, prompts, direction, objects)


def load_propagator(model: str | Path | Any, cfg: TrackConfig) -> Propagator:
    """A propagator for ``model``: the video family's predictor, or the box tracker on a promptable model."""
    from ..models.base import ScopesegModel

    family = None
    if isinstance(model, ScopesegModel):
        family = model.family
    elif isinstance(model, (str, Path)) and (Path(model) / "config.json").is_file():
        from ..models.checkpoints import read_config

        family = read_config(model).get("family")
    if family == "video":
        from .video import VideoPredictor

        vp = VideoPredictor.from_pretrained(
            model,
            engine=cfg.engine,
            precision=cfg.precision,
            threads=cfg.threads,
            threshold=cfg.threshold,
            memory=cfg.memory,
        )
        return Propagator(vp, vp.kind)
    tracker = BoxTracker(
        cfg.predictor(model), margin=cfg.margin, redetect=cfg.redetect, min_score=cfg.min_score
    )
    return Propagator(tracker, "tracker")


def resolve_direction(direction: str, prompts: Prompts) -> str:
    if direction != "auto":
        return direction
    return "forward" if len(prompts) == 1 else "both"


def gather_prompts(cfg: TrackConfig) -> tuple[dict[int, dict[int, Prompt]], dict[int, str]]:
    """Prompts of the config (``prompt=`` items and/or ``prompts=`` JSON; the same frame/object twice is refused)."""
    prompts: dict[int, dict[int, Prompt]] = {}
    names: dict[int, str] = {}
    if cfg.prompts:
        prompts, names = read_prompts_json(cfg.prompts)
    if cfg.prompt:
        for t, objs in parse_prompt_specs(cfg.prompt).items():
            for o, p in objs.items():
                if o in prompts.get(t, {}):
                    raise ConfigError(f"object {o} is prompted twice on frame {t} (prompt= and prompts=)")
                prompts.setdefault(t, {})[o] = p
    if not prompts:
        raise ConfigError("no prompts: give prompt=f0:box:x0,y0,x1,y1 (repeatable) or prompts=FILE.json")
    return prompts, names


def _ascending(
    results: Iterator[tuple[int, dict[int, np.ndarray]]],
) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
    from ..data import rle as rle_ops

    held = {t: {o: rle_ops.encode(m) for o, m in masks.items()} for t, masks in results}
    for t in sorted(held):
        yield t, {o: rle_ops.decode(r) for o, r in held.pop(t).items()}


def track(
    model: str | Path | Any, video: str | Path, out: str | Path, cfg: TrackConfig, overwrite: bool = False
) -> dict[str, Any]:
    """Propagate the prompts of ``cfg`` through ``video`` and write ``out``: ``predicted/`` (COCO-video data
    set, one RLE annotation per object and frame, ``track_id`` = object id), ``results.json`` and
    ``<video>_overlay.mp4``. Inputs and prompts are checked, then OUT, then the model loads."""
    from ..viz import overlay

    prompts, names = gather_prompts(cfg)
    info = video_info(video)
    n = int(info["frames"])
    if cfg.max_frames:
        n = min(n, cfg.max_frames)
    size = (int(info["height"]), int(info["width"]))
    try:
        check_prompts(prompts, n, size, names or None)
    except DataError as e:  # name the input: the prompts file when there is one, else the video
        raise DataError(str(e), None if e.path else (cfg.prompts or video)) from None
    check_output(out, overwrite)
    direction = resolve_direction(cfg.direction, prompts)
    objects = object_names(prompts, names)
    propagator = model if isinstance(model, Propagator) else load_propagator(model, cfg)
    frames = VideoFrames(video, cfg.window, {**info, "frames": n})
    name = source_name(video)
    cats = {o: i + 1 for i, o in enumerate(objects)}
    categories = [{"id": cats[o], "name": nm, "color": palette_color(o - 1)} for o, nm in objects.items()]
    colors = {o: palette_color(o - 1) for o in objects}
    t0 = time.perf_counter()
    done = 0
    with PredictionWriter(out, categories, cfg.images, overwrite) as w:
        vid = w.add_video(name, fps=info.get("fps", 0.0), source=str(video))
        writer = None
        if cfg.overlays:
            writer = VideoWriter(w.view(f"{name}_overlay.mp4"), fps=info.get("fps") or 25.0)
        try:
            results = propagator.propagate(frames, prompts, direction, list(objects))
            if direction == "backward":  # written in frame order: held as RLE until the pass is done
                results = _ascending(results)
            last = -1
            for t, masks in progress_track(results, "tracking", n, rate="frames"):
                img = frames[t]
                if writer is not None:
                    for skipped in range(last + 1, t):  # frames before the first prompt: no masks
                        writer.write(frames[skipped])
                last = t
                iid = w.add_image(
                    f"{name}/{t:06d}.jpg", size[0], size[1], pixels=img, video_id=vid, frame_index=t
                )
                labels = np.zeros(size, np.int32)
                for o in sorted(masks):
                    m = open_morph(masks[o], cfg.opening)
                    if m.any():
                        w.add_mask(iid, cats[o], m, 1.0, track_id=o)
                        labels[m] = o
                if writer is not None:
                    writer.write(overlay(img, labels, colors, alpha=cfg.alpha))
                done += 1
            if writer is not None:
                for skipped in range(last + 1, n):
                    writer.write(frames[skipped])
                writer.close()
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        finally:
            frames.close()
    seconds = time.perf_counter() - t0
    res = {
        "frames": done,
        "objects": len(objects),
        "direction": direction,
        "model": getattr(propagator, "kind", "video"),
        **w.paths(),
        "seconds": round(seconds, 3),
        "fps": round(done / seconds, 2) if seconds else 0.0,
        "decoded_frames": frames.decoded,
    }
    if cfg.overlays:
        res["overlay_video"] = str(Path(out) / f"{name}_overlay.mp4")
    return res


# --- evaluation against ground truth ---------------------------------------------------------------------


def instrument_categories(ds: Any) -> list[int]:
    """Category ids whose supercategory is ``instrument`` (all categories when none says so)."""
    ids = [cid for cid, c in ds.categories.items() if c.get("supercategory") == "instrument"]
    return ids or list(ds.categories)


def gt_video_prompts(
    ds: Any,
    frame_ids: Sequence[int],
    tracks: dict[int, dict[int, dict]],
    mode: str = "first",
    kind: str = "box",
    k: int = 10,
    n_points: int = 1,
    seed: int = 0,
) -> dict[int, dict[int, Prompt]]:
    """Ground-truth prompts of one video (``data.video.prompt_frames`` / ``gt_prompt``): {frame: {obj: Prompt}}."""
    from ..data.video import gt_prompt, prompt_frames

    rng = np.random.default_rng(seed)
    out: dict[int, dict[int, Prompt]] = {}
    for oid, anns in tracks.items():
        visible = [iid in anns and anns[iid].get("area", 1) > 0 for iid in frame_ids]
        for t in prompt_frames(visible, "first" if mode == "on_error" else mode, k):
            out.setdefault(t, {})[oid] = Prompt(
                **gt_prompt(ds.mask(anns[frame_ids[t]]), kind, n_points, 0.0, rng)
            )
    return out


def evaluate_tracking(
    propagator: Any,
    data: str | Path | Any,
    mode: str = "first",
    kind: str = "box",
    k: int = 10,
    n_points: int = 1,
    direction: str = "forward",
    categories: Sequence[int] | None = None,
    max_corrections: int = 3,
    error_iou: float = 0.5,
    max_frames: int | None = None,
    opening: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Prompts from the ground truth of every video of ``data`` -> propagate -> the ``video`` protocol (J&F,
    per-frame / per-video Dice and IoU over object label maps: label value = object).

    ``mode``: ``first`` (first visible frame per object), ``every_k``, or ``on_error`` (first, then up to
    ``max_corrections`` times a box on the first frame whose IoU falls below ``error_iou``, propagated again in
    both directions). ``categories`` defaults to the instruments. Returns the protocol's metrics, the per-video
    rows and per-frame Dice per video.
    """
    from ..data.coco import load_dataset
    from ..data.video import gt_prompt, iter_videos, object_tracks
    from ..metrics.inputs import Pair
    from ..metrics.overlap import dice
    from ..metrics.protocols import score_pairs

    ds = load_dataset(data) if isinstance(data, (str, Path)) else data
    cats = list(categories) if categories is not None else instrument_categories(ds)
    pairs: list[Pair] = []
    frame_dice: dict[str, list[float]] = {}
    prompted: dict[str, dict[str, int]] = {}
    t0, n_frames = time.perf_counter(), 0
    for vid, ids in iter_videos(ds):
        ids = ids[:max_frames] if max_frames else ids
        tracks = object_tracks(ds, ids, cats)
        if not tracks:
            continue
        name = str(ds.videos.get(vid, {}).get("name", vid))
        h, w = ds._image_hw(ids[0])
        gt = np.zeros((len(ids), h, w), np.int32)
        for oid, anns in tracks.items():
            for t, iid in enumerate(ids):
                if iid in anns:
                    gt[t][ds.mask(anns[iid])] = oid
        prompts = gt_video_prompts(ds, ids, tracks, mode, kind, k, n_points, seed)
        frames = DatasetFrames(ds, vid)
        frames.ids = ids
        pred = _predict_labels(propagator, frames, prompts, direction, (h, w), list(tracks), opening)
        corrections = 0
        while mode == "on_error" and corrections < max_corrections:
            bad = _first_error(pred, gt, list(tracks), error_iou, prompts)
            if bad is None:
                break
            t, oid = bad
            prompts.setdefault(t, {})[oid] = Prompt(**gt_prompt(gt[t] == oid, kind, n_points))
            pred = _predict_labels(propagator, frames, prompts, "both", (h, w), list(tracks), opening)
            corrections += 1
        n_frames += len(ids) * (1 + corrections)
        prompted[name] = {"prompts": sum(len(v) for v in prompts.values()), "corrections": corrections}
        frame_dice[name] = [float(dice(pred[t] > 0, gt[t] > 0, "one")) for t in range(len(ids))]
        for t in range(len(ids)):
            pairs.append(Pair(f"{name}/{t}", gt[t], pred[t], video=name, frame=t))
    if not pairs:
        raise DataError(
            "no video with objects of the chosen categories to evaluate", getattr(ds, "path", None)
        )
    res = score_pairs("video", pairs)
    seconds = time.perf_counter() - t0
    return {
        "metrics": res.metrics,
        "videos": res.items,
        "frame_dice": frame_dice,
        "prompted": prompted,
        "seconds": round(seconds, 2),
        "frames_per_second": round(n_frames / seconds, 3) if seconds else 0.0,
        "prompt": {"mode": mode, "kind": kind, "k": k, "direction": direction},
    }


def _predict_labels(
    propagator: Any,
    frames: Sequence[np.ndarray],
    prompts: Prompts,
    direction: str,
    size: tuple[int, int],
    objects: list[int],
    opening: int | None,
) -> np.ndarray:
    """Label maps ``(T, H, W)`` (object id per pixel; a later object wins an overlap) of one propagation."""
    pred = np.zeros((len(frames), *size), np.int32)
    for t, masks in propagator.propagate(frames, prompts, direction, objects):
        for o in sorted(masks):
            pred[t][open_morph(masks[o], opening)] = o
    return pred


def _first_error(
    pred: np.ndarray, gt: np.ndarray, objects: list[int], thr: float, prompts: Prompts
) -> tuple[int, int] | None:
    """(frame, object) of the first frame where an object's IoU < ``thr`` and it is visible, not yet prompted."""
    for t in range(gt.shape[0]):
        for o in objects:
            g = gt[t] == o
            if not g.any() or o in prompts.get(t, {}):
                continue
            p = pred[t] == o
            if np.count_nonzero(p & g) / max(1, np.count_nonzero(p | g)) < thr:
                return t, o
    return None


def video_probability_maps(
    model: str | Path,
    data: str | Path,
    categories: Sequence[int] | None = None,
    max_frames: int | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per object and frame: the video model's mask probabilities and the ground truth (first-frame GT box per
    object, propagated forward), keyed ``video/frame/object``, for ``evaluate.tune_threshold``.

    Why: threshold and opening are chosen on what the model outputs along a real propagation, as the seed's
    grid search does; masks at the model's current threshold drive the propagation itself.
    """
    from ..data.coco import load_dataset
    from ..data.video import iter_videos, object_tracks
    from .video import VideoPredictor

    ds = load_dataset(data)
    stepper = VideoPredictor.from_pretrained(model)
    cats = list(categories) if categories is not None else instrument_categories(ds)
    probs: dict[str, np.ndarray] = {}
    gts: dict[str, np.ndarray] = {}
    for vid, ids in iter_videos(ds):
        ids = ids[:max_frames] if max_frames else ids
        tracks = object_tracks(ds, ids, cats)
        if not tracks:
            continue
        name = str(ds.videos.get(vid, {}).get("name", vid))
        frames = DatasetFrames(ds, vid)
        frames.ids = ids
        prompts = gt_video_prompts(ds, ids, tracks)
        for t, _ in track_propagate(stepper, frames, prompts, "forward", list(tracks)):
            for oid, p in stepper.last_probs.items():
                a = tracks[oid].get(ids[t])
                g = ds.mask(a) if a is not None else np.zeros(p.shape, bool)
                probs[f"{name}/{t}/{oid}"] = p.astype(np.float16)
                gts[f"{name}/{t}/{oid}"] = g
    if not probs:
        raise DataError("no video with objects of the chosen categories", data)
    return probs, gts
