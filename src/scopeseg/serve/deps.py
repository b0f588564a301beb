"""What the routes share: the server from the request, strict request bodies, cached data sets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from ..errors import DataError


def srv(request: Request):
    return request.app.state.server


Srv = Annotated[Any, Depends(srv)]


class Body(BaseModel):
    """A JSON request body: unknown keys are errors (422), like the configs."""

    model_config = ConfigDict(extra="forbid")


class FileRef(Body):
    root: int = Field(ge=0)
    path: str = Field(max_length=4096)


def cached(s: Any, key: tuple, make, keep: int = 8) -> Any:
    """``make()`` once per ``key`` in the server's LRU; ``key[0]`` names the kind (data set, report, pairs)."""
    with s.cache_lock:
        if key in s.cache:
            s.cache.move_to_end(key)
            return s.cache[key]
    value = make()
    with s.cache_lock:
        s.cache[key] = value
        same = [k for k in s.cache if k[0] == key[0]]  # at most ``keep`` entries of this kind, oldest out
        for k in same[: max(0, len(same) - keep)]:
            del s.cache[k]
    return value


def stamp(p: Path) -> float:
    return p.stat().st_mtime_ns if p.exists() else 0


def dataset_at(s, root: int, path: str):
    from ..data.coco import CocoDataset

    folder = s.roots.resolve(root, path)
    ann = folder / "annotations.json" if folder.is_dir() else folder
    if not ann.is_file():
        raise DataError(f"{path!r} is no data set (no annotations.json)")
    return cached(s, ("ds", str(ann), stamp(ann)), lambda: CocoDataset.load(folder, check=False))
