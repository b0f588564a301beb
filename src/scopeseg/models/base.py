"""The contract every scopeseg model keeps: a config, ``from_pretrained`` / ``save_pretrained``, capabilities.

Capabilities are class attributes, so code asks ``model.promptable`` instead of probing for methods, and a
checkpoint's ``config.json`` is the model's ``config``: its registered name, its family and its arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from ..errors import ModelError
from . import checkpoints

M = TypeVar("M", bound="ScopesegModel")


class ScopesegModel(nn.Module):
    """Base of every model family: ``config`` + checkpoint round trip + capability flags.

    ``family`` names the training task and predictor that serve the model; ``exportable``: ``scopeseg export``
    writes ONNX for it; ``promptable``: ``encode(pixels)`` / ``decode(embedding, coords, labels, mask)``;
    ``text_conditioned``: takes text queries; ``video``: keeps state across frames.
    """

    family: ClassVar[str] = ""
    exportable: ClassVar[bool] = False
    promptable: ClassVar[bool] = False
    text_conditioned: ClassVar[bool] = False
    video: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        #: what ``config.json`` holds: ``name``, ``family``, the factory's arguments, then run metadata
        self.config: dict[str, Any] = {"family": self.family}

    def bind_config(self, name: str, args: Mapping[str, Any]) -> None:
        """Record the registered name and factory arguments this instance was built from (``create_model``)."""
        self.config = {"name": name, "family": self.family, **args}

    def save_pretrained(
        self,
        path: str | Path,
        manifest: dict[str, Any] | None = None,
        card: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Path:
        """Write the checkpoint folder (safetensors + config.json + manifest + model card) atomically."""
        return checkpoints.save_pretrained(self, path, manifest=manifest, card=card, extra=extra)

    @classmethod
    def from_pretrained(cls: type[M], path: str | Path, map_location: str = "cpu", **overrides: Any) -> M:
        """Rebuild from a checkpoint folder (strict weight loading); a checkpoint of another class is refused."""
        model = checkpoints.load_model(path, map_location=map_location, **overrides)
        if not isinstance(model, cls):
            raise ModelError(f"checkpoint holds a {type(model).__name__}, not a {cls.__name__}", path)
        return model

    def example_inputs(self, batch: int = 1) -> tuple[torch.Tensor, ...]:
        """Random inputs of one ``forward`` call at the model's own input size (tests, export tracing)."""
        raise NotImplementedError(f"{type(self).__name__} does not define example_inputs()")

    def num_parameters(self) -> int:
        """Number of parameters (trainable or not)."""
        return sum(p.numel() for p in self.parameters())
