"""Predictor registry: model family -> the predictor class that serves its checkpoints.

Each family registers its predictor where it is defined (``@register_predictor("semantic")``); a checkpoint
folder names its family in ``config.json``, so ``load_predictor`` needs no list of families.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ..errors import ModelError
from ..models.checkpoints import read_config
from ..registry import Registry

P = TypeVar("P", bound=type)

#: family -> predictor class (with ``from_pretrained(path, **options)``)
PREDICTORS: Registry[type] = Registry("predictor family", ModelError, packages=("scopeseg.inference",))


def register_predictor(family: str) -> Callable[[P], P]:
    """Class decorator: the predictor of ``family`` checkpoints."""

    def deco(cls: P) -> P:
        PREDICTORS.register(family, cls)
        return cls

    return deco


def load_predictor(path: str | Path, **options: Any) -> Any:
    """The predictor of a checkpoint folder's family (``config.json``: ``family``), loaded from it."""
    config = read_config(path)
    family = config.get("family")
    if not family:
        raise ModelError("config.json names no model 'family'", Path(path) / "config.json")
    return PREDICTORS.get(str(family)).from_pretrained(path, **options)
