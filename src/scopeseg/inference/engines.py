"""Inference engines: torch and ONNX Runtime behind one interface per model kind, chosen by name and precision.

Dense models (semantic) ``forward(batch)``: float32 NCHW pixels in [0, 1] -> float32 NCHW logits. Promptable
models ``encode(pixels)`` once per image, then ``decode(embedding, coords, labels, mask_input)`` per prompt
batch in SAM's ONNX prompt form -> all 4 mask logits + IoU scores (torch tensors). Engines register in
``ENGINES`` under ``NAME/KIND``; each states its precisions, and ``runtime`` applies threads and the allocator.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ..errors import ModelError
from ..registry import Registry
from ..runtime import configure_torch, ort_session
from .export import export_file, exported_folder, read_export
from .sources import KINDS, check_kind, load_torch_model

#: ``NAME/KIND`` (``torch/dense``, ``onnx/promptable``, ...) -> engine class
ENGINES: Registry[type[Engine]] = Registry("engine", ModelError, packages=("scopeseg.inference",))


class Engine:
    """What every engine states: its name, the model kind it runs and the precisions it accepts."""

    name: ClassVar[str]
    kind: ClassVar[str]
    precisions: ClassVar[tuple[str, ...]]
    precision: str

    @classmethod
    def check_precision(cls, precision: str) -> str:
        """``precision`` when this engine runs it; otherwise a one-line ``ModelError`` listing what it runs."""
        if precision not in cls.precisions:
            raise ModelError(
                f"{cls.name} engine precision must be one of {', '.join(cls.precisions)}, got {precision!r}"
            )
        return precision

    @classmethod
    def load(cls, source: Any, precision: str = "fp32", threads: int | None = None, **options: Any) -> Engine:
        """Build the engine from what a user names (model, checkpoint folder, released name or export)."""
        raise NotImplementedError


def register_engine(cls: type[Engine]) -> type[Engine]:
    """Class decorator: register an engine under ``NAME/KIND``."""
    ENGINES.register(f"{cls.name}/{cls.kind}", cls)
    return cls


def engine_names(kind: str) -> list[str]:
    """Names of the engines that run ``kind`` models (``torch``, ``onnx``, ...)."""
    return [key.split("/")[0] for key in ENGINES.names(f"*/{kind}")]


def engine_class(engine: str, kind: str) -> type[Engine]:
    """The engine class of ``engine`` for ``kind`` models; a one-line ``ModelError`` for an unknown pair."""
    if kind not in KINDS:
        raise ModelError(f"unknown model kind {kind!r}; kinds: {', '.join(KINDS)}")
    key = f"{engine}/{kind}"
    if key not in ENGINES:
        raise ModelError(
            f"unknown engine {engine!r} for {kind} models; use {' or '.join(engine_names(kind))}"
        )
    return ENGINES.get(key)


def load_engine(
    source: Any,
    kind: str,
    engine: str = "torch",
    precision: str = "fp32",
    threads: int | None = None,
    **options: Any,
) -> Engine:
    """The ``engine`` for ``source`` (a model, checkpoint folder, released name or export) at ``precision``.

    The precision is checked before anything loads. ONNX engines given a non-exported source export it once
    into its cache (announced with a warning naming the folder); ``scopeseg export`` is the explicit step.
    """
    cls = engine_class(engine, kind)
    cls.check_precision(precision)
    return cls.load(source, precision=precision, threads=threads, **options)


def _label(source: Any) -> str:
    return type(source).__name__ if isinstance(source, nn.Module) else str(source)


class DenseEngine(Engine):
    """Dense interface: ``forward(batch)`` (also callable); ``config`` is the model's config (classes, sizes)."""

    kind = "dense"
    config: dict[str, Any]

    def forward(self, batch: np.ndarray) -> np.ndarray:
        """Float32 NCHW pixels in [0, 1] -> float32 NCHW logits of the same height and width."""
        raise NotImplementedError

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.forward(batch)


@register_engine
class TorchDenseEngine(DenseEngine):
    """A torch dense model; ``bf16`` autocasts the forward (worth it only on CPUs with native bf16)."""

    name = "torch"
    precisions = ("fp32", "bf16")

    def __init__(
        self, model: nn.Module, precision: str = "fp32", threads: int | None = None, device: str = "cpu"
    ):
        self.precision = self.check_precision(precision)
        configure_torch(threads)
        self.model = check_kind(model, self.kind, _label(model)).to(device).eval()
        self.device = device
        self.config = dict(model.config)

    @classmethod
    def load(cls, source: Any, precision: str = "fp32", threads: int | None = None, **options: Any) -> Engine:
        return cls(load_torch_model(source), precision, threads, **options)

    @torch.inference_mode()
    def forward(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(batch).to(self.device)
        with torch.autocast(torch.device(self.device).type, torch.bfloat16, enabled=self.precision == "bf16"):
            return self.model(x).float().cpu().numpy()


@register_engine
class OrtDenseEngine(DenseEngine):
    """An exported dense model (``model.onnx`` + ``export.json``) in ONNX Runtime."""

    name = "onnx"
    precisions = ("fp32",)

    def __init__(self, folder: str | Path, precision: str = "fp32", threads: int | None = None):
        self.precision = self.check_precision(precision)
        meta = read_export(folder, self.kind)
        self.session = ort_session(export_file(folder, meta, precision), threads)
        self.config = dict(meta.get("config") or {})
        self.folder = Path(folder)

    @classmethod
    def load(cls, source: Any, precision: str = "fp32", threads: int | None = None, **options: Any) -> Engine:
        return cls(exported_folder(source, cls.kind, precision, **options), precision, threads)

    def forward(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"pixels": np.ascontiguousarray(batch, np.float32)})[0]


class PromptEngine(Engine):
    """Promptable interface: ``encode`` a prepared image, ``decode`` prompts on the cached embedding."""

    kind = "promptable"
    img_size: int
    low_res_size: int
    preprocess: str

    def encode(self, pixels: np.ndarray) -> Any:
        """Prepared ``(1, 3, S, S)`` float32 pixels -> image embedding (engine-specific array type)."""
        raise NotImplementedError

    def decode(
        self, embedding: Any, coords: np.ndarray, labels: np.ndarray, mask_input: np.ndarray | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts ``(N, P, 2)``/``(N, P)`` in input pixels -> logits ``(N, 4, L, L)`` and IoU ``(N, 4)``."""
        raise NotImplementedError


@register_engine
class TorchPromptEngine(PromptEngine):
    """A ``PromptableSAM``-like module in torch; ``bf16`` autocasts the encoder.

    The engine keeps its own copy with conv+BatchNorm folded (``fuse=True``), so the caller's model is
    untouched and can still be trained or saved.
    """

    name = "torch"
    precisions = ("fp32", "bf16")

    def __init__(
        self, model: nn.Module, precision: str = "fp32", threads: int | None = None, fuse: bool = True
    ):
        self.precision = self.check_precision(precision)
        configure_torch(threads)
        check_kind(model, self.kind, _label(model))
        if fuse:
            from ..models.sam.tiny_vit import fuse_conv_bn

            model = fuse_conv_bn(copy.deepcopy(model).eval())
        self.model = model.eval()
        self.img_size = int(model.img_size)
        self.low_res_size = int(model.low_res_size)
        self.preprocess = model.preprocess

    @classmethod
    def load(cls, source: Any, precision: str = "fp32", threads: int | None = None, **options: Any) -> Engine:
        return cls(load_torch_model(source), precision, threads)

    @torch.inference_mode()
    def encode(self, pixels: np.ndarray) -> torch.Tensor:
        with torch.autocast("cpu", torch.bfloat16, enabled=self.precision == "bf16"):
            return self.model.encode(torch.from_numpy(pixels)).float()

    @torch.inference_mode()
    def decode(self, embedding, coords, labels, mask_input):
        m = None if mask_input is None else torch.from_numpy(mask_input)
        return self.model.decode(embedding, torch.from_numpy(coords), torch.from_numpy(labels), m)


@register_engine
class OrtPromptEngine(PromptEngine):
    """An exported promptable model in ONNX Runtime; ``int8``/``int8-static`` pick the quantised encoder."""

    name = "onnx"
    precisions = ("fp32", "int8", "int8-static")

    def __init__(self, folder: str | Path, precision: str = "fp32", threads: int | None = None):
        self.precision = self.check_precision(precision)
        folder = Path(folder)
        meta = read_export(folder, self.kind)
        self.encoder = ort_session(export_file(folder, meta, precision), threads)
        self.decoder = ort_session(folder / meta["decoder"], threads)
        self.img_size = int(meta["img_size"])
        self.low_res_size = int(meta["low_res_size"])
        self.preprocess = meta["preprocess"]
        self.folder = folder

    @classmethod
    def load(cls, source: Any, precision: str = "fp32", threads: int | None = None, **options: Any) -> Engine:
        return cls(exported_folder(source, cls.kind, precision, **options), precision, threads)

    def encode(self, pixels: np.ndarray) -> np.ndarray:
        return self.encoder.run(None, {"pixels": pixels})[0]

    def decode(self, embedding, coords, labels, mask_input):
        if mask_input is None:
            mask_input = np.zeros((1, 1, self.low_res_size, self.low_res_size), np.float32)
            has = np.zeros(1, np.float32)
        else:
            has = np.ones(1, np.float32)
        low, iou = self.decoder.run(
            None,
            {
                "image_embeddings": np.asarray(embedding, np.float32),
                "point_coords": coords,
                "point_labels": labels,
                "mask_input": mask_input,
                "has_mask_input": has,
            },
        )
        return torch.from_numpy(low), torch.from_numpy(iou)
