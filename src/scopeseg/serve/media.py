"""Images and videos opened in the app, held server-side with the labels made on them.

A media item is a list of RGB frames (one for an image) plus, per frame, the objects' masks (RLE) and how each
was made (``prompt``, ``propagated``, ``model``) and whether the user accepted it. State lives here, not in
the browser, so a page reload finds the work where it was.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data import rle as rle_ops
from ..errors import DataError
from ..io import image_size, is_video, read_image
from .files import NotFound, sanitise_name
from .render import object_color


@dataclass
class ObjectLabel:
    """One object's mask on one frame, with the prompts that made it."""

    rle: dict
    score: float | None = None
    source: str = "prompt"  # prompt | propagated | model | dataset
    box: list[float] | None = None
    points: list[list[float]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    low_res: Any = None  # low-res logits of the last decode (server only)

    def public(self) -> dict:
        return {
            "rle": self.rle,
            "score": self.score,
            "source": self.source,
            "box": self.box,
            "points": self.points,
            "labels": self.labels,
            "area": int(rle_ops.area(self.rle)),
        }


@dataclass
class Media:
    """An opened image or video: frames in memory, objects (id -> class name), labels per frame."""

    id: str
    name: str
    kind: str  # image | video
    frames: list[np.ndarray]
    source: str  # where it came from, for people ("0:videos/a.mp4", "upload")
    fps: float = 0.0
    origin: Path | None = None  # the file or data set folder it was read from (saving never writes over it)
    objects: dict[int, str] = field(default_factory=dict)
    labels: dict[int, dict[int, ObjectLabel]] = field(default_factory=dict)
    accepted: set[int] = field(default_factory=set)
    total_frames: int = 0  # frames of the source video; more than ``frames`` when cut at ``max_frames``
    lock: threading.RLock = field(default_factory=threading.RLock)
    opened: float = field(default_factory=time.time)

    @property
    def size(self) -> tuple[int, int]:
        return self.frames[0].shape[:2]

    def frame(self, index: Any) -> np.ndarray:
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(self.frames):
            raise DataError(f"frame {index!r} is out of range (media {self.name!r} has {len(self.frames)})")
        return self.frames[index]

    def summary(self) -> dict:
        h, w = self.size
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "frames": len(self.frames),
            "truncated": self.total_frames > len(self.frames),  # a video longer than max_frames
            "height": h,
            "width": w,
            "fps": self.fps,
            "source": self.source,
            "objects": [
                {"id": k, "name": v, "color": list(object_color(k))} for k, v in sorted(self.objects.items())
            ],
            "labelled": sorted(self.labels),
            "accepted": sorted(self.accepted),
        }

    def frame_labels(self, index: int) -> dict:
        with self.lock:
            return {str(k): v.public() for k, v in sorted(self.labels.get(index, {}).items())}

    def label_map(self, index: int) -> np.ndarray:
        """HxW int32 map of the frame's objects (object id; later ids on top)."""
        h, w = self.size
        out = np.zeros((h, w), np.int32)
        with self.lock:
            items = sorted(self.labels.get(index, {}).items())
        for oid, lab in items:
            out[rle_ops.decode(lab.rle).astype(bool)] = oid
        return out


def check_pixels(h: int, w: int, limit: int, what: str) -> None:
    if h * w > limit:
        raise DataError(f"{what} of {h}x{w} (h x w) exceeds the server's limit of {limit} pixels")


def load_image_file(path: Path, limit: int) -> np.ndarray:
    """An image checked against the server's pixel limit from its header before decoding (bombs refused)."""
    h, w = image_size(path)
    check_pixels(h, w, limit, f"image {path.name}")
    return read_image(path)


def load_video_file(path: Path, limit: int, max_frames: int) -> tuple[list[np.ndarray], float, int]:
    """Up to ``max_frames`` frames of a video (size checked from the header first), its frame rate and its
    frame count."""
    from ..video_io import iter_frames, video_info

    info = video_info(path)
    check_pixels(int(info["height"]), int(info["width"]), limit, f"video {path.name}")
    frames = [f for _, f in iter_frames(path, stop=max_frames)]
    if not frames:
        raise DataError("video has no frames", path.name)
    return frames, float(info.get("fps") or 0.0), int(info.get("frames") or len(frames))


class MediaStore:
    """Open media by id (LRU: the oldest are dropped beyond ``capacity``)."""

    def __init__(self, capacity: int = 16):
        self.capacity = capacity
        self._items: OrderedDict[str, Media] = OrderedDict()
        self._lock = threading.Lock()

    def open_path(
        self, path: Path, source: str, pixel_limit: int, max_frames: int, origin: bool = True
    ) -> Media:
        where = path if origin else None
        if is_video(path):
            frames, fps, total = load_video_file(path, pixel_limit, max_frames)
            media = self.add(path.name, "video", frames, source, fps, where)
            media.total_frames = max(total, len(frames))
            return media
        return self.add(path.name, "image", [load_image_file(path, pixel_limit)], source, origin=where)

    def add(
        self,
        name: str,
        kind: str,
        frames: list[np.ndarray],
        source: str,
        fps: float = 0.0,
        origin: Path | None = None,
    ) -> Media:
        media = Media(uuid.uuid4().hex[:12], sanitise_name(name, "media"), kind, frames, source, fps, origin)
        media.objects[1] = "object"
        with self._lock:
            self._items[media.id] = media
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return media

    def get(self, media_id: str) -> Media:
        with self._lock:
            media = self._items.get(str(media_id))
            if media is not None:
                self._items.move_to_end(media.id)
        if media is None:
            raise NotFound(f"no open media {media_id!r} (it may have been closed; open it again)")
        return media

    def list(self) -> list[dict]:
        with self._lock:
            return [m.summary() for m in reversed(self._items.values())]
