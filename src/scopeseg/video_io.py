"""Video files in and out through PyAV: decode frames as RGB arrays, encode H.264 mp4 atomically.

Corrupt or unreadable videos raise ``DataError`` naming the file; writers go to a temp file that is
renamed only when the video is closed successfully.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError


def is_stream(source: str | Path) -> bool:
    """True for a source PyAV opens that is no regular file: a URL (``rtsp://``, ``file:``), a device, a pipe.

    Why: ``scopeseg predict`` reads live input through the same decoder as files, without counting frames.
    """
    text = str(source)
    try:
        mode = os.stat(text).st_mode
    except OSError:  # no such file: a URL (``scheme:``) or nothing
        return re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]+:", text) is not None
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)


def _open(path: str | Path):
    import av

    stream_input = is_stream(path)
    path = str(path) if stream_input else Path(path)
    if not stream_input and not path.is_file():
        raise DataError("video not found", path)
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as e:
        raise DataError(f"cannot open video ({e.__class__.__name__})", path) from None
    if not container.streams.video:
        container.close()
        raise DataError("no video stream", path)
    return container


def video_info(path: str | Path) -> dict[str, Any]:
    """``{"frames", "fps", "height", "width", "codec"}``; ``frames`` counts decoded frames when the header lacks it."""
    container = _open(path)
    try:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 0) or 0.0
        n = int(stream.frames or 0)
        info = {
            "fps": fps,
            "height": stream.codec_context.height,
            "width": stream.codec_context.width,
            "codec": stream.codec_context.name,
            "frames": n,
        }
    finally:
        container.close()
    if not info["frames"]:
        info["frames"] = sum(1 for _ in iter_frames(path))
    return info


def iter_frames(
    path: str | Path,
    stride: int = 1,
    start: int = 0,
    stop: int | None = None,
    size: tuple[int, int] | None = None,
    on_open: Callable[[dict[str, Any]], None] | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(frame_index, RGB uint8 HxWx3)`` for every ``stride``-th decoded frame (0-based index).

    ``size`` (H, W) scales frames while converting them; ``on_open`` receives ``{"fps", "height", "width",
    "frames", "codec"}`` from the header (``frames`` 0 when unknown) before the first frame. A decoding
    error or a file that ends before its header's frame count raises ``DataError`` naming the frame.
    """
    import av

    if stride < 1:
        raise DataError(f"stride must be >= 1, got {stride}")
    container = _open(path)
    decoded = 0
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        expected = int(stream.frames or 0)
        if on_open is not None:
            on_open(
                {
                    "fps": float(stream.average_rate or stream.guessed_rate or 0) or 0.0,
                    "height": stream.codec_context.height,
                    "width": stream.codec_context.width,
                    "codec": stream.codec_context.name,
                    "frames": expected,
                }
            )
        kw = {"height": size[0], "width": size[1]} if size is not None else {}
        for i, frame in enumerate(container.decode(stream)):
            if stop is not None and i >= stop:
                break
            decoded = i + 1
            if i >= start and (i - start) % stride == 0:
                yield i, frame.to_ndarray(format="rgb24", **kw)
        else:
            if expected and decoded < expected and not is_stream(path):
                raise DataError(f"truncated video: decoding ended at frame {decoded} of {expected}", path)
    except av.error.FFmpegError as e:
        raise DataError(
            f"corrupt or truncated video: decoding failed at frame {decoded} ({e.__class__.__name__})", path
        ) from None
    finally:
        container.close()


def read_frames(path: str | Path, stride: int = 1) -> np.ndarray:
    """All (strided) frames as ``T×H×W×3`` uint8."""
    frames = [f for _, f in iter_frames(path, stride)]
    if not frames:
        raise DataError("video has no frames", path)
    return np.stack(frames)


class VideoWriter:
    """Write RGB frames to an H.264 mp4 (yuv420p, even sizes padded), renamed into place on ``close``.

    Use as a context manager; on an exception the temp file is removed and nothing appears at ``path``.
    """

    def __init__(self, path: str | Path, fps: float = 25.0, crf: int = 20, codec: str = "libx264"):
        self.path = Path(path)
        self.fps = fps
        self.crf = crf
        self.codec = codec
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=self.path.suffix or ".mp4", dir=self.path.parent
        )
        os.close(fd)
        self.tmp = Path(tmp)
        self._container = None
        self._stream = None
        self.frames = 0

    def _start(self, h: int, w: int) -> None:
        import av

        # faststart: the index leads the file, so players start at once and a cut copy keeps its first frames
        self._container = av.open(str(self.tmp), mode="w", format="mp4", options={"movflags": "+faststart"})
        rate = Fraction(self.fps).limit_denominator(1001)
        self._stream = self._container.add_stream(self.codec, rate=rate)
        self._stream.width = w + (w % 2)
        self._stream.height = h + (h % 2)
        self._stream.pix_fmt = "yuv420p"
        if self.codec == "libx264":
            self._stream.options = {"crf": str(self.crf), "preset": "veryfast"}

    def write(self, frame: np.ndarray) -> None:
        import av

        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise DataError(f"video frame must be HxWx3 uint8, got {frame.shape} {frame.dtype}", self.path)
        h, w = frame.shape[:2]
        if self._container is None:
            self._start(h, w)
            self.size = (h, w)
        elif (h, w) != self.size:
            raise DataError(
                f"frame {self.frames} has size {h}x{w}, video is {self.size[0]}x{self.size[1]}", self.path
            )
        if h % 2 or w % 2:
            frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        for packet in self._stream.encode(vf):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> Path:
        if self._container is None:
            self.abort()
            raise DataError("no frames written", self.path)
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        self._container = None
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # noqa: BLE001 - best effort cleanup of a failed write
                pass
            self._container = None
        if self.tmp.exists():
            self.tmp.unlink()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_video(path: str | Path, frames, fps: float = 25.0) -> Path:
    """Encode an iterable of RGB frames to ``path`` (mp4, H.264)."""
    with VideoWriter(path, fps=fps) as w:
        for f in frames:
            w.write(f)
    return Path(path)
