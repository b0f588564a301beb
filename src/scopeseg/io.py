"""Atomic writes and safe readers for JSON, images and videos.

Every output goes to a temp file in the destination folder and is renamed into place, so a crash never
leaves a half-written file that looks complete. Readers raise ``DataError`` naming the file.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".mpg", ".mpeg"}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temp path beside ``path``; rename it to ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=suffix or path.suffix + ".tmp", dir=path.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get normal permissions
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temp directory beside ``path``; it replaces ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any, indent: int | None = None) -> Path:
    """Write JSON atomically (compact by default: COCO files get large)."""
    text = json.dumps(obj, indent=indent, separators=None if indent else (",", ":"), default=_json_default)
    return write_text(path, text)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, bytes):
        return o.decode("ascii")
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def read_json(path: str | Path) -> Any:
    """Read JSON; missing file or malformed JSON becomes a one-line ``DataError``."""
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found" if not path.exists() else "not a file", path)
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except json.JSONDecodeError as e:
        raise DataError(f"malformed JSON at line {e.lineno} column {e.colno}: {e.msg}", path) from None
    except UnicodeDecodeError:
        raise DataError("not UTF-8 text (malformed JSON)", path) from None


def read_image(path: str | Path, mode: str = "rgb") -> np.ndarray:
    """Read an image as uint8 ``HxWx3`` RGB (``mode='rgb'``) or as stored (``mode='unchanged'``).

    Grey and RGBA inputs are converted to RGB; 16-bit images are scaled to 8 bit in ``rgb`` mode.
    """
    import cv2

    path = Path(path)
    if not path.is_file():
        raise DataError("image not found", path)
    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise DataError("cannot decode image (corrupt or unsupported format)", path)
    if mode == "unchanged":
        if img.ndim == 3 and img.shape[2] == 3:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        elif img.ndim == 3 and img.shape[2] == 4:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
        return img
    return to_rgb_uint8(img, bgr=True)


def to_rgb_uint8(img: np.ndarray, bgr: bool = False) -> np.ndarray:
    """Convert grey / RGBA / 16-bit / float images to uint8 RGB ``HxWx3``."""
    import cv2

    if img.dtype == np.uint16:
        img = (img.astype(np.float32) / 257.0).round().astype(np.uint8)
    elif img.dtype in (np.float32, np.float64):
        lo, hi = float(np.nanmin(img)), float(np.nanmax(img))
        if lo >= 0.0 and hi <= 1.0:
            img = (img * 255.0).round().astype(np.uint8)
        else:
            img = ((img - lo) / max(hi - lo, 1e-8) * 255.0).round().astype(np.uint8)
    elif img.dtype == bool:
        img = img.astype(np.uint8) * 255
    elif img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        return np.ascontiguousarray(np.repeat(img[:, :, None], 3, axis=2))
    if img.ndim == 3 and img.shape[2] == 1:
        return np.ascontiguousarray(np.repeat(img, 3, axis=2))
    if img.ndim == 3 and img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB if bgr else cv2.COLOR_RGBA2RGB)
    if img.ndim == 3 and img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if bgr else np.ascontiguousarray(img)
    raise DataError(f"unsupported image shape {img.shape}")


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of an image file, reading only its header where possible."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            w, h = im.size
        return h, w
    except FileNotFoundError:
        raise DataError("image not found", path) from None
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"cannot read image header ({e.__class__.__name__})", path) from None


def write_image(path: str | Path, img: np.ndarray, quality: int = 95) -> Path:
    """Write an RGB (or single-channel) uint8 image atomically; format from the suffix."""
    import cv2

    path = Path(path)
    arr = img
    if arr.ndim == 3 and arr.shape[2] == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if path.suffix.lower() in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(path.suffix.lower() or ".png", arr, params)
    if not ok:
        raise DataError("cannot encode image", path)
    return write_bytes(path, buf.tobytes())


def is_image(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def check_inside(root: str | Path, file_name: str) -> Path:
    """Resolve ``file_name`` under ``root``; refuse absolute paths and ``..`` escapes."""
    if os.path.isabs(file_name) or Path(file_name).is_absolute():
        raise DataError(f"file_name {file_name!r} is absolute (must be relative to the data root)", root)
    full = (Path(root) / file_name).resolve()
    if not full.is_relative_to(Path(root).resolve()):
        raise DataError(f"file_name {file_name!r} escapes the data root", root)
    return full
