"""Semantic ``Predictor``: the dense recipe of ``models.dense_recipe`` over an engine chosen by name.

Pre-processing is the training one (resize to the model's ``input_size`` with INTER_AREA, scale to [0, 1]);
logits are resized back bilinearly before the sigmoid/softmax, so masks are evaluated at full resolution.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..models.dense_recipe import DenseRecipe
from .engines import load_engine
from .predictors import register_predictor


@register_predictor("semantic")
class Predictor(DenseRecipe):
    """Batched semantic prediction; ``engine`` maps an NCHW float batch to NCHW logits (``engines.DenseEngine``)."""

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        engine: str = "torch",
        precision: str = "fp32",
        threads: int | None = None,
        **kw: Any,
    ) -> Predictor:
        """A checkpoint folder (torch, or onnx exported once into ``PATH/onnx``, announced) or an export folder.

        ``engine``/``precision``/``threads`` pick the backend (``engines.load_engine``); ``kw`` go to ``Predictor``.
        """
        dense = load_engine(path, "dense", engine, precision, threads)
        return cls(dense, dense.config, **kw)
