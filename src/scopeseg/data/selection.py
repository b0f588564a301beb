"""Typed settings of the data commands that pick records (``filter``, ``split``) and their resolution to ids.

Why: ``scopeseg filter DATA OUT videos=vid000,vid003 categories=grasper`` names videos by id or name and
images by id; turning those words into the record set's ids (with a one-line error naming the unknown one)
is library work, shared by the command line and the Python API.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ..config import BaseConfig, Fractions, Words
from ..errors import ConfigError
from .coco import CocoDataset


class FilterConfig(BaseConfig):
    """Settings of ``scopeseg filter DATA OUT key=value...`` (each given key narrows the subset)."""

    categories: Words | None = None  # category names to keep (other categories' annotations dropped)
    videos: Words | None = None  # video ids or names to keep
    images: Words | None = None  # image ids to keep
    split: str | None = None  # keep one split
    drop_empty: bool = False  # with categories: drop images left without annotations


class SplitConfig(BaseConfig):
    """Settings of ``scopeseg split DATA OUT key=value...``."""

    fractions: Fractions = Field(default_factory=lambda: {"train": 0.8, "val": 0.1, "test": 0.1})
    seed: int = 0  # shuffle seed (same seed, same split)


def _resolve(words: list[str], table: dict[Any, dict], what: str, by_name: bool) -> list[Any]:
    """Ids of ``table`` named by ``words`` (the id as text, or the record's ``name``)."""
    by_text = {str(k): k for k in table}
    names = {str(r.get("name")): k for k, r in table.items()} if by_name else {}
    unknown = [w for w in words if w not in by_text and w not in names]
    if unknown:
        known = sorted(names) if by_name else sorted(by_text)
        raise ConfigError(f"{what}: unknown {what[:-1]} {unknown[0]!r}; {what}: {', '.join(known[:20])}")
    return [by_text.get(w, names.get(w)) for w in words]


def select(ds: CocoDataset, cfg: FilterConfig) -> CocoDataset:
    """The subset of ``ds`` that ``cfg`` asks for (a new record set; ``ds`` is unchanged)."""
    videos = None if cfg.videos is None else _resolve(cfg.videos, ds.videos, "videos", by_name=True)
    images = None if cfg.images is None else _resolve(cfg.images, ds.images, "images", by_name=False)
    return ds.filter(
        image_ids=images,
        video_ids=videos,
        split=cfg.split,
        category_names=cfg.categories,
        keep_empty=not cfg.drop_empty,
    )


def assign_splits(ds: CocoDataset, cfg: SplitConfig) -> dict[str, list[int]]:
    """Give every image of ``ds`` a split by video (in place); returns split name -> image ids."""
    return ds.assign_splits(cfg.fractions, seed=cfg.seed)
