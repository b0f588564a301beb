"""The web app's view of the disk: only files under the configured roots, named ``(root index, relative path)``.

Why: every path a browser sends is untrusted. A relative path is refused when it is absolute, holds ``..``,
a NUL, a backslash or a percent escape (an encoded traversal that some layer might decode again), and the
resolved file must still lie under its root (a symlink leading out is refused).
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, DataError
from ..io import IMAGE_SUFFIXES, VIDEO_SUFFIXES

_BAD_PART = re.compile(r"[\x00-\x1f\\%]")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class Forbidden(DataError):
    """A path outside the roots (answered 403)."""


class NotFound(DataError):
    """A path under a root that does not exist (answered 404)."""


class TooLarge(DataError):
    """A request body above the upload limit (answered 413)."""


def sanitise_name(name: str, default: str = "upload", max_len: int = 100) -> str:
    """A file or folder name safe on every file system: ASCII letters, digits, ``._-``; no leading dot."""
    name = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode("ascii")
    name = name.replace("\\", "/").split("/")[-1]
    name = _SAFE_NAME.sub("_", name).strip("._-")[:max_len].strip("._-")
    return name or default


@dataclass
class Entry:
    """One listed file or folder."""

    name: str
    path: str  # relative to the root, POSIX
    kind: str  # folder | image | video | dataset | evaluation | run | file
    size: int | None = None


class Roots:
    """The configured data roots (resolved once); every read goes through ``resolve``."""

    def __init__(self, roots: list[str | Path]):
        self.paths: list[Path] = []
        for r in roots:
            p = Path(r).expanduser()
            if not p.is_dir():
                raise ConfigError(f"data root {r} is not a folder")
            self.paths.append(p.resolve())

    def names(self) -> list[dict]:
        return [{"index": i, "name": p.name or str(p), "path": str(p)} for i, p in enumerate(self.paths)]

    def root(self, index: int) -> Path:
        if not isinstance(index, int) or not 0 <= index < len(self.paths):
            raise NotFound(f"no data root number {index!r} ({len(self.paths)} configured)")
        return self.paths[index]

    def resolve(self, index: int, rel: str, must_exist: bool = True) -> Path:
        """The file ``rel`` under root ``index``; ``Forbidden`` for anything that could leave the root."""
        root = self.root(index)
        rel = str(rel or "")
        if _BAD_PART.search(rel):
            raise Forbidden(f"path {rel!r} holds a control character, backslash or percent escape")
        if rel.startswith("/") or os.path.isabs(rel) or re.match(r"^[A-Za-z]:", rel):
            raise Forbidden(f"path {rel!r} is absolute (paths are relative to a data root)")
        parts = [p for p in rel.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise Forbidden(f"path {rel!r} holds '..'")
        full = root.joinpath(*parts)
        resolved = full.resolve()
        if not resolved.is_relative_to(root):
            raise Forbidden(f"path {rel!r} is a link leading outside its data root")
        if must_exist and not resolved.exists():
            raise NotFound(f"{rel!r} not found under data root {index}")
        return resolved

    def locate(self, path: str | Path) -> tuple[int, str] | None:
        """``(root index, relative path)`` of an absolute path under a root, else None."""
        p = Path(path).resolve()
        for i, r in enumerate(self.paths):
            if p.is_relative_to(r):
                return i, p.relative_to(r).as_posix()
        return None

    def listing(self, index: int, rel: str = "") -> list[Entry]:
        """Folders, images, videos of one folder (data sets, evaluations and runs named as such)."""
        folder = self.resolve(index, rel)
        if not folder.is_dir():
            raise DataError(f"{rel!r} is not a folder")
        root = self.root(index)
        out = []
        for p in sorted(folder.iterdir(), key=lambda p: (not p.is_dir(), p.name.lower())):
            if p.name.startswith("."):
                continue
            try:
                resolved = p.resolve()
            except OSError:
                continue
            if not resolved.is_relative_to(root):
                continue  # links out of the root are not shown (and refused when asked for)
            relp = p.relative_to(root).as_posix()
            if p.is_dir():
                out.append(Entry(p.name, relp, folder_kind(p)))
            elif p.suffix.lower() in IMAGE_SUFFIXES:
                out.append(Entry(p.name, relp, "image", p.stat().st_size))
            elif p.suffix.lower() in VIDEO_SUFFIXES:
                out.append(Entry(p.name, relp, "video", p.stat().st_size))
        return out

    def find(self, kinds: tuple[str, ...], depth: int) -> Iterator[tuple[int, Path, str]]:
        """Folders of the given kinds under every root, at most ``depth`` levels down."""
        for i, root in enumerate(self.paths):
            stack = [(root, 0)]
            while stack:
                folder, d = stack.pop()
                try:
                    children = sorted(
                        p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")
                    )
                except OSError:
                    continue
                for p in reversed(children):
                    try:
                        if not p.resolve().is_relative_to(root):
                            continue
                    except OSError:
                        continue
                    kind = folder_kind(p)
                    if kind in kinds:
                        yield i, p, kind
                    if d + 1 < depth and kind == "folder":
                        stack.append((p, d + 1))


def folder_kind(p: Path) -> str:
    """``dataset`` (annotations.json), ``evaluation`` (metrics.json + per_item.csv), ``run`` (run.json),
    ``checkpoint`` (config.json + model.safetensors), else ``folder``."""
    if (p / "run.json").is_file():
        return "run"
    if (p / "metrics.json").is_file() and (p / "per_item.csv").is_file():
        return "evaluation"
    if (p / "annotations.json").is_file():
        return "dataset"
    if (p / "config.json").is_file() and (p / "model.safetensors").is_file():
        return "checkpoint"
    return "folder"
