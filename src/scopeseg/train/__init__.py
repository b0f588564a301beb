"""Training: one Lightning loop per task family, driven by typed configs (``scopeseg train``)."""

from collections.abc import Callable
from typing import Any

from .config import SemanticTrainConfig, TrainerOptions
from .runner import train, train_semantic

#: task -> runner(cfg) -> result dict; a new family registers its runner here
TRAINERS: dict[str, Callable[[Any], dict[str, Any]]] = {"semantic": train_semantic}

__all__ = ["TRAINERS", "SemanticTrainConfig", "TrainerOptions", "train"]
