"""Video and stream prediction: decode (a reader thread) -> predict (batched, optional smoothing) -> encode.

Why: decoding runs beside inference, so both cores stay busy, and a bounded queue keeps memory flat however
long the video or stream; the outputs are those of every input kind (``PredictionWriter``: the predicted
COCO-video data set, ``results.json``) plus the overlay mp4, all published at once (``io.output_dir``).
"""

from __future__ import annotations

import queue
import re
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, ScopesegError
from ..progress import track
from ..video_io import VideoWriter, is_stream, iter_frames
from .predictions import MaskViews, PredictionWriter, batched, model_categories
from .semantic import Predictor

_END = object()


class FrameReader:
    """``(frame_index, RGB)`` frames decoded by a background thread into a queue of at most ``maxsize``.

    Why: decoding overlaps inference while memory stays bounded over a long video or an endless stream.
    Use as a context manager; ``start()`` returns the header (``video_io.iter_frames``' ``on_open``). A
    user-caused decoding error (``ScopesegError``) ends the iteration and is kept in ``error`` (the frames
    before it were all handed out); any other exception is raised by the iteration.
    """

    def __init__(
        self,
        source: str | Path,
        maxsize: int = 8,
        stride: int = 1,
        size: tuple[int, int] | None = None,
        max_frames: int | None = None,
    ):
        self.source, self.maxsize = source, maxsize
        self.info: dict[str, Any] = {}
        self.error: ScopesegError | None = None
        self.peak = 0  # most frames ever waiting in the queue
        self.frames = 0  # frames handed out
        self._kw = {"stride": stride, "size": size, "stop": max_frames}
        self._q: queue.Queue = queue.Queue(maxsize)
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scopeseg-frame-reader", daemon=True)

    def _on_open(self, info: dict[str, Any]) -> None:
        self.info = info
        self._ready.set()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
            except queue.Full:
                continue
            self.peak = max(self.peak, self._q.qsize())
            return True
        return False

    def _run(self) -> None:
        gen = iter_frames(self.source, on_open=self._on_open, **self._kw)
        try:
            for item in gen:
                if not self._put(item):
                    break
            self._put(_END)
        except BaseException as e:  # noqa: BLE001 - handed to the consuming thread, raised there
            self._put(e)
        finally:
            gen.close()
            self._ready.set()

    def start(self) -> dict[str, Any]:
        """Start decoding; wait for the header and return it (``{}`` when opening failed)."""
        self._thread.start()
        self._ready.wait()
        return self.info

    def __iter__(self):
        while True:
            item = self._q.get()
            if item is _END:
                return
            if isinstance(item, ScopesegError):
                self.error = item
                return
            if isinstance(item, BaseException):
                raise item
            self.frames += 1
            yield item

    def close(self) -> None:
        """Stop the reader thread (it may be blocked on a full queue) and wait for it."""
        self._stop.set()
        while True:
            try:
                self._q.get_nowait()
            except queue.Empty:
                break
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Smoother:
    """Exponential moving average of class probabilities over frames: ``s += (1 - factor) * (p - s)``.

    Why: damps single-frame flicker of video masks; ``factor=0`` returns each frame's own probabilities and a
    static scene keeps exactly its probabilities (``p - s`` is zero).
    """

    def __init__(self, factor: float = 0.0):
        if not 0.0 <= factor < 1.0:
            raise DataError(f"smooth must be in [0, 1), got {factor}")
        self.factor = factor
        self.state: np.ndarray | None = None

    def __call__(self, probs: np.ndarray) -> np.ndarray:
        if self.factor == 0.0:
            return probs
        if self.state is None or self.state.shape != probs.shape:
            self.state = probs.astype(np.float32, copy=True)
        else:
            self.state += (1.0 - self.factor) * (probs - self.state)
        return self.state


def source_name(source: str | Path) -> str:
    """A file-name-safe name for a video file, URL or device (``clip.mp4`` -> ``clip``, ``/dev/video0`` -> ``video0``)."""
    text = str(source)
    tail = re.split(r"[/\\?#]", text.split("://", 1)[-1].rstrip("/"))
    stem = Path(next((t for t in reversed(tail) if t), "stream")).stem
    return re.sub(r"[^\w.-]", "_", stem) or "stream"


def predict_video(
    predictor: Predictor,
    source: str | Path,
    out: str | Path,
    masks: bool = False,
    overlays: bool = True,
    images: bool = True,
    overwrite: bool = False,
    stride: int = 1,
    resize: tuple[int, int] | None = None,
    alpha: float = 0.5,
    contours: bool = True,
    smooth: float = 0.0,
    partial: bool = False,
    max_frames: int | None = None,
    prefetch: int | None = None,
) -> dict[str, Any]:
    """Decode ``source`` (a file, URL or device) -> predict every ``stride``-th frame -> write ``out``.

    Why: one path for files and live input with bounded memory (``prefetch`` frames queued, default two
    batches). A decoding error ends with it (``out`` unpublished) unless ``partial``: then the frames before
    it are published and the summary says so (``partial``, ``note``).
    """
    from ..viz import overlay

    out = Path(out)
    name = source_name(source)
    live = is_stream(source)
    smoother = Smoother(smooth)
    reader = FrameReader(source, prefetch or 2 * predictor.batch_size, stride, resize, max_frames)
    res: dict[str, Any] = {}
    n, model_s = 0, 0.0
    t0 = time.perf_counter()
    with ExitStack() as stack:
        stack.enter_context(reader)
        info = reader.start()
        w = stack.enter_context(
            PredictionWriter(out, model_categories(predictor.classes, None), images, overwrite)
        )
        frames = MaskViews(predictor, w, masks, False)
        fps = info.get("fps") or 25.0
        vid = w.add_video(name, fps=info.get("fps", 0.0), source=str(source))
        video = None
        if overlays:
            video = stack.enter_context(VideoWriter(w.view(f"{name}_overlay.mp4"), fps=fps / stride))
        total = info.get("frames") or None
        if total and max_frames:
            total = min(total, max_frames)
        total = -(-total // stride) if total else None
        label = "predicting stream" if live else "predicting video"
        for batch in batched(track(reader, label, total, rate="frames"), predictor.batch_size):
            t = time.perf_counter()
            probs_list = predictor.probabilities([img for _, img in batch])
            model_s += time.perf_counter() - t
            for (i, img), probs in zip(batch, probs_list):
                probs = smoother(probs)
                iid = w.add_image(
                    f"{name}/{i:06d}.jpg", img.shape[0], img.shape[1], pixels=img, video_id=vid, frame_index=i
                )
                labels = frames.add(iid, probs, f"{name}_{i:06d}", img, views=masks)
                if video is not None:
                    video.write(overlay(img, labels, frames.colors, alpha=alpha, contours=contours))
                n += 1
        if reader.error is not None:
            if not (partial and n):
                raise reader.error
            res["partial"] = True
            res["note"] = f"{reader.error}; published the {n} frames predicted before it (partial=true)"
        elif n == 0:
            raise DataError("video has no frames", source)
        if overlays:
            res["overlay_video"] = str(out / f"{name}_overlay.mp4")
    seconds = time.perf_counter() - t0
    return {
        "frames": n,
        **w.paths(),
        **res,
        "seconds": round(seconds, 3),
        "predict_seconds": round(model_s, 3),
        "fps": round(n / seconds, 2) if seconds else 0.0,
        "peak_queued_frames": reader.peak,
    }
