"""scopeseg: train, evaluate and deploy segmentation models for scope imaging (images and video).

The public API is re-exported here lazily, so ``import scopeseg`` stays fast:
``load_dataset``, ``CocoDataset``, ``create_model``, ``load_model``, ``list_models``, ``Predictor``,
``PromptPredictor``, ``build_config``, ``train``, ``ScopesegError``.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_dataset": "scopeseg.data.coco",
    "CocoDataset": "scopeseg.data.coco",
    "validate": "scopeseg.data.validate",
    "create_model": "scopeseg.models.registry",
    "load_model": "scopeseg.models.checkpoints",
    "list_models": "scopeseg.models.registry",
    "save_pretrained": "scopeseg.models.checkpoints",
    "Predictor": "scopeseg.inference.semantic",
    "PromptPredictor": "scopeseg.inference.prompt",
    "build_config": "scopeseg.config",
    "train": "scopeseg.train",
    "ScopesegError": "scopeseg.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'scopeseg' has no attribute {name!r}")
