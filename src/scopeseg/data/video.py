"""Frames grouped by video: a video's frames in order, and fixed-length clips for video models.

Frame order is ``frame_index`` (set on import, see ``records``); the record set keeps the per-video order in
``frames_by_video`` so these are look-ups, not sorts.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from ..errors import DataError
from .records import RecordSet


def video_frames(ds: RecordSet, video_id: int) -> list[int]:
    """Image ids of a video in frame order; ``DataError`` for an unknown video."""
    if video_id not in ds.videos and video_id not in ds.frames_by_video:
        raise DataError(f"unknown video id {video_id}", ds.path)
    return list(ds.frames_by_video.get(video_id, []))


def iter_video(ds: RecordSet, video_id: int) -> Iterator[dict]:
    """Image records of a video in frame order."""
    for iid in video_frames(ds, video_id):
        yield ds.images[iid]


def iter_videos(ds: RecordSet) -> Iterator[tuple[int, list[int]]]:
    """(video id, image ids in frame order) for every video, in ``videos`` table order."""
    for vid in ds.videos:
        yield vid, video_frames(ds, vid)


def clips(
    ds: RecordSet, length: int, stride: int | None = None, video_ids: Iterable[int] | None = None
) -> list[list[int]]:
    """Fixed-length windows of consecutive frames (image ids), per video; short videos are skipped.

    ``stride`` defaults to ``length`` (no overlap); windows never cross a video boundary.
    """
    if length < 1:
        raise DataError(f"clip length must be >= 1, got {length}")
    stride = stride or length
    if stride < 1:
        raise DataError(f"clip stride must be >= 1, got {stride}")
    out = []
    for vid in video_ids if video_ids is not None else ds.videos:
        frames = video_frames(ds, vid)
        for start in range(0, len(frames) - length + 1, stride):
            out.append(frames[start : start + length])
    return out


def padded_clips(
    ds: RecordSet,
    length: int,
    stride: int | None = None,
    video_ids: Iterable[int] | None = None,
) -> list[tuple[list[int], list[bool]]]:
    """Like ``clips`` but no frame is dropped: the tail of a video (and a video shorter than ``length``) gives
    one more window padded by repeating its last frame; returns ``(image ids, valid flags)`` per clip.

    Why: clip training sees every frame while batches keep one shape; the flags keep padding out of the loss.
    Windows never cross a video boundary.
    """
    if length < 1:
        raise DataError(f"clip length must be >= 1, got {length}")
    stride = stride or length
    if stride < 1:
        raise DataError(f"clip stride must be >= 1, got {stride}")
    out = []
    for vid in video_ids if video_ids is not None else ds.videos:
        frames = video_frames(ds, vid)
        if not frames:
            continue
        start = 0
        while True:
            window = frames[start : start + length]
            pad = length - len(window)
            out.append((window + [window[-1]] * pad, [True] * len(window) + [False] * pad))
            if start + length >= len(frames):
                break
            start += stride
    return out


def object_tracks(
    ds: RecordSet, image_ids: Iterable[int], category_ids: Iterable[int] | None = None
) -> dict[int, dict[int, dict]]:
    """Objects of a clip: ``{object id: {image id: annotation}}``, object id = ``track_id`` (else the category).

    Why: video object segmentation follows instances through time; COCO-video keeps them as ``track_id``.
    ``category_ids`` keeps only those categories (e.g. the instruments).
    """
    keep = None if category_ids is None else set(category_ids)
    out: dict[int, dict[int, dict]] = {}
    for iid in image_ids:
        for a in ds.image_anns(iid):
            if keep is not None and a["category_id"] not in keep:
                continue
            oid = a.get("track_id", a["category_id"])
            out.setdefault(int(oid), {})[iid] = a
    return dict(sorted(out.items()))


PROMPT_KINDS = ("box", "points", "mask")
PROMPT_MODES = ("first", "every_k", "on_error")


def prompt_frames(visible: list[bool], mode: str = "first", k: int = 10) -> list[int]:
    """Frame positions (in a clip/video) that get a ground-truth prompt, for one object.

    ``first``: the first frame where the object is visible (the DAVIS semi-supervised rule); ``every_k``:
    that frame and every ``k``-th visible frame after it. ``on_error`` starts like ``first``: the evaluator
    adds a prompt on the first frame whose IoU drops below its threshold (it needs predictions).
    """
    if mode not in PROMPT_MODES:
        raise DataError(f"prompt mode must be one of {', '.join(PROMPT_MODES)}, got {mode!r}")
    if k < 1:
        raise DataError(f"prompt every k frames needs k >= 1, got {k}")
    seen = [i for i, v in enumerate(visible) if v]
    if not seen:
        return []
    if mode != "every_k":
        return [seen[0]]
    return [i for i in seen if (i - seen[0]) % k == 0]


def gt_prompt(
    mask: np.ndarray,
    kind: str = "box",
    n_points: int = 1,
    jitter: float = 0.0,
    rng: np.random.Generator | None = None,
) -> dict[str, Any]:
    """A prompt derived from a ground-truth mask (bool HxW, not empty), as a dict of plain values.

    ``box``: tight xyxy box (x1, y1 exclusive), sides moved by up to ``jitter`` x the side; ``points``:
    ``n_points`` positive clicks drawn inside the mask (the first at the pixel farthest from the boundary,
    as interactive benchmarks click); ``mask``: the mask itself. Keys match ``tracking.Prompt``.
    """
    if kind not in PROMPT_KINDS:
        raise DataError(f"prompt kind must be one of {', '.join(PROMPT_KINDS)}, got {kind!r}")
    mask = np.asarray(mask).astype(bool)
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        raise DataError("cannot derive a prompt from an empty mask")
    rng = rng if rng is not None else np.random.default_rng(0)
    if kind == "mask":
        return {"mask": mask}
    if kind == "box":
        h, w = mask.shape
        box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64)
        if jitter > 0:
            bw, bh = box[2] - box[0], box[3] - box[1]
            box = box + rng.uniform(-jitter, jitter, 4) * np.array([bw, bh, bw, bh])
            box = np.clip(box, 0, [w, h, w, h])
            if box[2] - box[0] < 1 or box[3] - box[1] < 1:
                box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64)
        return {"box": tuple(float(v) for v in box)}
    import cv2

    dist = cv2.distanceTransform(np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, 3)[1:-1, 1:-1]
    y0, x0 = np.unravel_index(int(np.argmax(dist)), dist.shape)
    pts = [(float(x0) + 0.5, float(y0) + 0.5)]
    if n_points > 1:
        pick = rng.choice(ys.size, size=min(n_points - 1, ys.size), replace=False)
        pts += [(float(xs[i]) + 0.5, float(ys[i]) + 0.5) for i in pick]
    return {"points": pts, "labels": [1] * len(pts)}
