"""Atomic writes and safe readers for JSON, images and videos.

Every output goes to a hidden temp sibling (a file, or a whole output folder) and is renamed into place, so
a crash never leaves a half-written output that looks complete; a command's OUT is refused when it exists
unless ``--overwrite`` (``check_output``). Readers raise ``DataError`` naming the file.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError, DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".mpg", ".mpeg"}


#: a writer's hidden siblings of an output ``NAME``: ``.NAME.partial-PID-RANDOM`` (being written) and
#: ``.NAME.replaced-PID-RANDOM`` (the earlier output, for the instant of the swap); the PID tells a live
#: writer from one that was killed, whose leftovers the next writer of ``NAME`` restores or removes
PARTIAL, REPLACED = "partial", "replaced"
_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<tag>partial|replaced)-(?P<pid>\d+)-")


def _sibling_prefix(path: Path, tag: str) -> str:
    return f".{path.name}.{tag}-{os.getpid()}-"


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (ours counts): leftovers of a live writer are never touched."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def leftovers(path: str | Path) -> dict[str, list[Path]]:
    """Siblings that killed writers of ``path`` left (``partial`` / ``replaced``), newest first.

    Why: they are named ``.NAME.<tag>-PID-...``; a live PID (another run writing now) is left alone.
    """
    path = Path(path)
    found: dict[str, list[Path]] = {PARTIAL: [], REPLACED: []}
    if not path.parent.is_dir():
        return found
    for p in path.parent.iterdir():
        m = _LEFTOVER.match(p.name)
        if m and m["name"] == path.name and not pid_alive(int(m["pid"])):
            found[m["tag"]].append(p)
    for v in found.values():
        v.sort(key=lambda p: p.lstat().st_mtime, reverse=True)
    return found


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def tidy(path: str | Path, keep_partial: bool = False) -> Path | None:
    """Put right what a killed writer of ``path`` left: restore an earlier output caught mid-swap, remove
    partial outputs (or keep the newest when ``keep_partial``, returned for a resume)."""
    path = Path(path)
    found = leftovers(path)
    for old in found[REPLACED]:
        if not path.exists() and not path.is_symlink():
            os.replace(old, path)  # killed between the two renames of a swap: the earlier output comes back
        else:
            _remove(old)
    keep = found[PARTIAL][0] if keep_partial and found[PARTIAL] else None
    for p in found[PARTIAL]:
        if p != keep:
            _remove(p)
    return keep


def output_exists(path: str | Path) -> bool:
    """True for a file (or link) or a non-empty folder at ``path``; an empty folder counts as absent."""
    path = Path(path)
    if path.is_symlink() or path.is_file():
        return True
    return path.is_dir() and any(path.iterdir())


def check_output(path: str | Path, overwrite: bool = False, resume: bool = False) -> Path:
    """Refuse an existing output unless ``overwrite`` (or ``resume``): the rule of every command's OUT.

    Why: a command never replaces something a user has before it succeeded, and only when asked to.
    """
    path = Path(path)
    tidy(path, keep_partial=resume)
    if output_exists(path) and not (overwrite or resume):
        raise DataError("output already exists (pass --overwrite to replace it)", path)
    return path


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
        prefix=_sibling_prefix(path, PARTIAL), suffix=suffix or path.suffix + ".tmp", dir=path.parent
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


def _swap_in(tmp: Path, path: Path) -> None:
    """Move the finished folder ``tmp`` to ``path``; an earlier output there goes only after that."""
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
    if not (path.exists() or path.is_symlink()):
        os.replace(tmp, path)
        return
    old = path.with_name(f"{_sibling_prefix(path, REPLACED)}{os.urandom(4).hex()}")
    os.replace(path, old)
    os.replace(tmp, path)
    _remove(old)


@contextlib.contextmanager
def atomic_dir(path: str | Path, resume: bool = False) -> Iterator[Path]:
    """Yield a hidden temp folder beside ``path`` (``.NAME.partial-PID-...``); it replaces ``path`` only
    if the block succeeds, so ``path`` holds the earlier output or the whole new one, never a mix.

    ``resume``: start from the partial folder a killed run left (else from hard links to the files of an
    existing ``path``), so a resumable writer skips what is done. A failure removes the temp folder.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    adopt = tidy(path, keep_partial=resume)
    tmp = Path(tempfile.mkdtemp(prefix=_sibling_prefix(path, PARTIAL), dir=path.parent))
    try:
        if adopt is not None:
            os.replace(adopt, tmp)  # claim it: the folder now carries this writer's PID
            for p in list(tmp.rglob(".*")):  # files the killed writer had half-written
                m = _LEFTOVER.match(p.name)
                if m and not pid_alive(int(m["pid"])):
                    _remove(p)
        elif resume and path.is_dir():
            shutil.copytree(path, tmp, copy_function=link_or_copy, dirs_exist_ok=True)
        yield tmp
        _swap_in(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def output_dir(path: str | Path, overwrite: bool = False, resume: bool = False) -> Iterator[Path]:
    """A command's output folder: ``check_output`` (refused if it exists, unless ``overwrite`` /
    ``resume``), then written in a hidden temp sibling that replaces ``path`` only on success."""
    check_output(path, overwrite, resume)
    with atomic_dir(path, resume=resume) as tmp:
        yield tmp


@contextlib.contextmanager
def output_file(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """A command's output file: ``check_output``, then an ``atomic_path`` renamed into place on success."""
    check_output(path, overwrite)
    with atomic_path(path) as tmp:
        yield tmp


@contextlib.contextmanager
def scratch_dir(path: str | Path) -> Iterator[Path]:
    """A hidden temp folder beside the output ``path``, always removed at the end.

    Why: it is named like a partial output of ``path``, so one a killed run left is tidied by the next writer.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=_sibling_prefix(path, PARTIAL), dir=path.parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def link_or_copy(src: str | Path, dst: str | Path, link: bool = True) -> Path:
    """Hard-link ``src`` to ``dst`` (parents made), or copy it when links fail (another file system) or
    ``link=False``."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if link:
        try:
            os.link(src, dst)
            return dst
        except OSError:
            pass
    shutil.copy2(src, dst)
    return dst


def write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any, indent: int | None = None) -> Path:
    """Write JSON atomically (compact by default: COCO files get large).

    Compact JSON is written in pieces (long lists in batches through the C encoder), so writing a large COCO
    file does not hold the whole text and its bytes in memory at once; the bytes equal ``json.dumps``'s.
    """
    if indent is not None:
        text = json.dumps(
            obj, indent=indent, separators=None if indent else (",", ":"), default=_json_default
        )
        return write_text(path, text)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for piece in _json_pieces(obj):
            fh.write(piece)
    return Path(path)


_JSON_BATCH = 512  # list items encoded per piece


def _json_pieces(obj: Any) -> Iterator[str]:
    """Compact JSON of ``obj`` as pieces whose concatenation is ``json.dumps(obj, separators=(",", ":"))``."""
    if isinstance(obj, dict) and all(isinstance(k, str) for k in obj):
        yield "{"
        for i, (key, value) in enumerate(obj.items()):
            yield ("," if i else "") + _dumps(key) + ":"
            yield from _json_pieces(value)
        yield "}"
    elif isinstance(obj, (list, tuple)) and len(obj) > _JSON_BATCH:
        yield "["
        for start in range(0, len(obj), _JSON_BATCH):
            yield ("," if start else "") + _dumps(list(obj[start : start + _JSON_BATCH]))[1:-1]
        yield "]"
    else:
        yield _dumps(obj)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), default=_json_default)


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


#: JSON type names for messages (what a file holds at its top level)
_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number",
               bool: "a boolean", type(None): "null"}  # fmt: skip


def read_json(path: str | Path, expect: type | tuple[type, ...] | None = None) -> Any:
    """Read JSON; every way a file can fail becomes a one-line ``DataError`` naming it.

    Missing, a folder, empty, malformed, not UTF-8, nested too deeply, or (with ``expect``) a top level of
    another type. Fast path orjson; the standard library reads what orjson refuses but JSON writers emit
    (``NaN``, ``Infinity``, nesting deeper than 1024) and names line and column of a real syntax error.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError("is a folder, not a JSON file", path)
    if not path.is_file():
        raise DataError("file not found", path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read ({e.strerror or e.__class__.__name__})", path) from None
    return parse_json(data, path, expect)


def parse_json(
    data: bytes, path: str | Path | None = None, expect: type | tuple[type, ...] | None = None
) -> Any:
    """Parse JSON bytes (see ``read_json``); ``path`` names the source in errors."""
    if not data.strip():
        raise DataError("empty file (no JSON)" if not data else "file holds only whitespace (no JSON)", path)
    try:
        import orjson

        obj = orjson.loads(data)
    except ImportError:  # pragma: no cover - orjson is a dependency
        obj = _parse_json_stdlib(data, path)
    except ValueError:  # orjson.JSONDecodeError: NaN / deep nesting are read below, or the error named
        obj = _parse_json_stdlib(data, path)
    if expect is not None and not isinstance(obj, expect):
        wanted = " or ".join(
            _JSON_TYPES.get(t, t.__name__) for t in (expect if isinstance(expect, tuple) else (expect,))
        )
        raise DataError(
            f"JSON top level is {_JSON_TYPES.get(type(obj), type(obj).__name__)}, expected {wanted}", path
        )
    return obj


def _parse_json_stdlib(data: bytes, path: str | Path | None) -> Any:
    try:
        return json.loads(data)
    except json.JSONDecodeError as e:
        raise DataError(f"malformed JSON at line {e.lineno} column {e.colno}: {e.msg}", path) from None
    except UnicodeDecodeError:
        raise DataError("not UTF-8 text (malformed JSON)", path) from None
    except RecursionError:
        raise DataError("JSON nested too deeply", path) from None


#: environment variable: the most pixels (height x width) an image may have to be decoded
MAX_IMAGE_PIXELS_ENV = "SCOPESEG_MAX_IMAGE_PIXELS"
DEFAULT_MAX_IMAGE_PIXELS = 2**28


def max_image_pixels() -> int:
    """The decompression-bomb limit: ``$SCOPESEG_MAX_IMAGE_PIXELS`` or 2^28 pixels (268 M, 16384^2)."""
    raw = os.environ.get(MAX_IMAGE_PIXELS_ENV)
    if raw is None:
        return DEFAULT_MAX_IMAGE_PIXELS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise ConfigError(f"{MAX_IMAGE_PIXELS_ENV}={raw!r} is not a positive whole number of pixels")
    return value


def check_image_pixels(height: int, width: int, path: str | Path | None = None) -> None:
    """Refuse an image (or a JSON record of one) larger than ``max_image_pixels()``."""
    limit = max_image_pixels()
    if height * width > limit:
        raise DataError(
            f"image of {height}x{width} (h x w) has more than {limit} pixels "
            f"(decompression-bomb guard; raise {MAX_IMAGE_PIXELS_ENV} to allow)",
            path,
        )


def _quiet_opencv() -> None:
    """OpenCV prints its own decoder warnings (``[ WARN ... grfmt_png.cpp]``) to stderr; a failed decode here
    becomes one ``DataError`` line instead, so only OpenCV errors stay audible."""
    import cv2.utils.logging as cv_logging

    if cv_logging.getLogLevel() > cv_logging.LOG_LEVEL_ERROR:
        cv_logging.setLogLevel(cv_logging.LOG_LEVEL_ERROR)


def read_image(path: str | Path, mode: str = "rgb") -> np.ndarray:
    """Read an image as uint8 ``HxWx3`` RGB (``mode='rgb'``) or as stored (``mode='unchanged'``).

    Grey, RGBA, CMYK and 16-bit inputs are converted to RGB (16 bit scaled to 8 in ``rgb`` mode). The header's
    size is checked against ``max_image_pixels()`` before any pixel is decoded (decompression bombs).
    """
    import cv2

    path = Path(path)
    if path.is_dir():
        raise DataError("is a folder, not an image file", path)
    if not path.is_file():
        raise DataError("image not found", path)
    data = np.fromfile(str(path), dtype=np.uint8)
    if not data.size:
        raise DataError("image file is empty (0 bytes)", path)
    header = _header_size(path)  # None: PIL does not know the format (cv2 may; its own limit applies)
    _quiet_opencv()
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise DataError("cannot decode image (corrupt, truncated or not an image)", path)
    if header is None:
        check_image_pixels(img.shape[0], img.shape[1], path)
    if mode == "unchanged":
        if img.ndim == 3 and img.shape[2] == 3:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        elif img.ndim == 3 and img.shape[2] == 4:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
        return img
    return to_rgb_uint8(img, bgr=True)


def _header_size(path: Path) -> tuple[int, int] | None:
    """(h, w) from the image header, checked against the pixel limit; ``None`` for formats PIL cannot name.

    Why: ``PIL.Image.open`` reads only the header, so a 60000x60000 PNG of a few bytes is refused before a
    decoder allocates its pixels. PIL's own bomb error (about 179 M pixels) is kept and reported the same way.
    """
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
    except Image.DecompressionBombError:
        limit = min(max_image_pixels(), 2 * int(Image.MAX_IMAGE_PIXELS or 0) or max_image_pixels())
        raise DataError(
            f"image header claims more than {limit} pixels (decompression-bomb guard)", path
        ) from None
    except UnidentifiedImageError:
        return None
    except FileNotFoundError:
        raise DataError("image not found", path) from None
    except (OSError, SyntaxError, ValueError) as e:  # PIL knows the format but the header is broken
        raise DataError(f"cannot read image header ({e.__class__.__name__}: {e})", path) from None
    check_image_pixels(h, w, path)
    return h, w


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
    """(height, width) of an image file from its header (no pixels decoded), within the pixel limit."""
    path = Path(path)
    if path.is_dir():
        raise DataError("is a folder, not an image file", path)
    if path.is_file() and path.stat().st_size == 0:
        raise DataError("image file is empty (0 bytes)", path)
    hw = _header_size(path)
    if hw is None:
        raise DataError("cannot read image header (not an image, or a format PIL does not know)", path)
    return hw


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
    """Resolve ``file_name`` under ``root``; refuse absolute paths, ``..`` escapes and links leading out."""
    if os.path.isabs(file_name) or Path(file_name).is_absolute():
        raise DataError(f"file_name {file_name!r} is absolute (must be relative to the data root)", root)
    full = (Path(root) / file_name).resolve()
    if not full.is_relative_to(Path(root).resolve()):
        if os.path.normpath(file_name).split(os.sep)[0] == "..":
            raise DataError(f"file_name {file_name!r} escapes the data root (..)", root)
        raise DataError(f"file_name {file_name!r} is a link leading outside the data root (to {full})", root)
    return full
