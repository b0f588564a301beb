"""Training: one Lightning loop (``loop``) shared by one task module per model family (``scopeseg train``)."""

from collections.abc import Callable
from typing import Any

from .loop import TrainerOptions, train
from .semantic import SemanticTrainConfig, train_semantic

#: task -> runner(cfg) -> result dict; a new family registers its runner here
TRAINERS: dict[str, Callable[[Any], dict[str, Any]]] = {"semantic": train_semantic}

__all__ = ["TRAINERS", "SemanticTrainConfig", "TrainerOptions", "train"]
