"""Inference engines: torch, ONNX Runtime and OpenVINO behind one interface per model kind, by name and precision.

Dense models (semantic) ``forward(batch)``: float32 NCHW pixels in [0, 1] -> float32 NCHW logits. Promptable
models ``encode(pixels)`` once per image, then ``decode(embedding, coords, labels, mask_input)`` per prompt
batch in SAM's ONNX prompt form -> all 4 mask logits + IoU scores (torch tensors). Engines register in
``ENGINES`` under ``NAME/KIND``; each states its precisions and the export formats it reads (torch: checkpoints
and TorchScript exports; onnx: ONNX; openvino: ONNX and OpenVINO IR), and ``runtime`` applies threads and the
allocator. ``engine="auto"`` picks the fastest engine measured for this CPU class (``SPEEDS``) at the asked
precision (never a lower one) and records the choice in ``engine.chosen_by`` and the log.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ..errors import ModelError
from ..registry import Registry
from ..runtime import CPU_CLASSES, configure_torch, cpu_class, native_bf16
from .export import export_file, exported_folder, is_export, read_export
from .runners import Graph, open_graph
from .sources import KINDS, check_kind, load_torch_model

log = logging.getLogger(__name__)

#: ``NAME/KIND`` (``torch/dense``, ``onnx/promptable``, ...) -> engine class
ENGINES: Registry[type[Engine]] = Registry("engine", ModelError, packages=("scopeseg.inference",))

#: measured speed relative to torch fp32 (higher is faster) per (kind, CPU class, precision); ``engine=auto``
#: ranks the engines that run the asked precision here by it (unmeasured ones after, in ``FALLBACK_ORDER``). A
#: CPU class without its own row uses the next class down in ``runtime.CPU_CLASSES``. "amx": the issue-13 trial
#: (LiteMedSAM encode+decode, one process per engine, interleaved, like for like). "avx2": AMD EPYC, AVX2 only,
#: 2 threads, one process per engine, 3 interleaved rounds, best of 7 runs (load average 3.5-6 from other jobs,
#: which slows torch most): LiteMedSAM encode+decode of a 480x640 frame torch 2.17 s, ORT 1.70, OpenVINO 1.37,
#: ORT int8 1.35, OpenVINO int8 1.93; unet-effb2 forward 1x3x480x736 torch 0.74 s, ORT 0.54, OpenVINO 0.41.
SPEEDS: dict[tuple[str, str, str], dict[str, float]] = {
    ("promptable", "amx", "fp32"): {"openvino": 1.59, "onnx": 1.10, "torch": 1.0},
    ("promptable", "amx", "bf16"): {"openvino": 3.6},
    ("promptable", "amx", "int8"): {"onnx": 1.25},
    ("promptable", "avx2", "fp32"): {"openvino": 1.58, "onnx": 1.28, "torch": 1.0},
    ("promptable", "avx2", "int8"): {"onnx": 1.61, "openvino": 1.12},
    ("dense", "avx2", "fp32"): {"openvino": 1.80, "onnx": 1.37, "torch": 1.0},
}
#: the engine of a kind when no row ranks it (before any measured engine of that precision)
FALLBACK_ORDER = ("openvino", "onnx", "torch")


class Engine:
    """What every engine states: its name, the model kind it runs, its precisions and the exports it reads."""

    name: ClassVar[str]
    kind: ClassVar[str]
    precisions: ClassVar[tuple[str, ...]]
    #: export formats (``export.json`` ``format``) this engine loads
    formats: ClassVar[tuple[str, ...]] = ()
    precision: str
    #: how the engine was chosen: "" when named by the caller, else ``auto: ...`` with the reason
    chosen_by: str = ""

    @classmethod
    def check_precision(cls, precision: str) -> str:
        """``precision`` when this engine runs it here; otherwise a one-line ``ModelError`` saying why not."""
        if precision not in cls.precisions:
            raise ModelError(
                f"{cls.name} engine precision must be one of {', '.join(cls.precisions)}, got {precision!r}"
            )
        return precision

    @classmethod
    def reads(cls, source: Any) -> bool:
        """True when this engine can load ``source`` (exports of its formats; any model it can export)."""
        return not is_export(source) or read_export(source, cls.kind).get("format", "onnx") in cls.formats

    @classmethod
    def load(cls, source: Any, precision: str = "fp32", threads: int | None = None, **options: Any) -> Engine:
        """Build the engine from what a user names (model, checkpoint folder, released name or export)."""
        raise NotImplementedError


def register_engine(cls: type[Engine]) -> type[Engine]:
    """Class decorator: register an engine under ``NAME/KIND``."""
    ENGINES.register(f"{cls.name}/{cls.kind}", cls)
    return cls


def engine_names(kind: str) -> list[str]:
    """Names of the engines that run ``kind`` models (``onnx``, ``openvino``, ``torch``)."""
    return [key.split("/")[0] for key in ENGINES.names(f"*/{kind}")]


def engine_class(engine: str, kind: str) -> type[Engine]:
    """The engine class of ``engine`` for ``kind`` models; a one-line ``ModelError`` for an unknown pair."""
    if kind not in KINDS:
        raise ModelError(f"unknown model kind {kind!r}; kinds: {', '.join(KINDS)}")
    key = f"{engine}/{kind}"
    if key not in ENGINES:
        raise ModelError(
            f"unknown engine {engine!r} for {kind} models; use {', '.join(engine_names(kind))} or auto"
        )
    return ENGINES.get(key)


def rank_engines(kind: str, precision: str, cpu: str | None = None) -> list[tuple[str, float | None]]:
    """Engines of ``kind`` that run ``precision``, fastest first, with the speed ``SPEEDS`` gives for ``cpu``."""
    classes = list(CPU_CLASSES)
    cpu = cpu or cpu_class()
    speeds: dict[str, float] = {}
    for c in classes[classes.index(cpu) :]:
        speeds = SPEEDS.get((kind, c, precision), {})
        if speeds:
            break
    names = [n for n in engine_names(kind) if precision in engine_class(n, kind).precisions]
    fallback = {n: i for i, n in enumerate(FALLBACK_ORDER)}
    names.sort(key=lambda n: (-speeds.get(n, 0.0), fallback.get(n, len(fallback))))
    return [(n, speeds.get(n)) for n in names]


def pick_engine(source: Any, kind: str, precision: str = "fp32") -> tuple[str, str]:
    """``(engine, reason)``: the fastest engine measured for this CPU that runs ``precision`` and reads ``source``."""
    cpu = cpu_class()
    skipped = []
    for name, speed in rank_engines(kind, precision, cpu):
        cls = engine_class(name, kind)
        try:
            cls.check_precision(precision)
        except ModelError as err:
            skipped.append(f"{name}: {err}")
            continue
        if not cls.reads(source):
            skipped.append(f"{name}: cannot read this export")
            continue
        how = f"{speed:g}x torch fp32 measured" if speed else "not measured here"
        return name, f"auto: {name} {precision} (CPU class {cpu}: {how})"
    raise ModelError(f"no engine runs {kind} models at {precision} here ({'; '.join(skipped) or 'none'})")


def load_engine(
    source: Any,
    kind: str,
    engine: str = "torch",
    precision: str = "fp32",
    threads: int | None = None,
    **options: Any,
) -> Engine:
    """The ``engine`` (or ``auto``) for ``source`` (a model, checkpoint folder, released name or export) at ``precision``.

    The precision is checked before anything loads. ONNX-reading engines given a non-exported source export it
    once into its cache (announced with a warning naming the folder); ``scopeseg export`` is the explicit step.
    ``auto`` never lowers the precision: it picks the engine, logged and kept in ``engine.chosen_by``.
    """
    chosen_by = ""
    if engine == "auto":
        engine, chosen_by = pick_engine(source, kind, precision)
        log.info("%s", chosen_by)
    cls = engine_class(engine, kind)
    cls.check_precision(precision)
    loaded = cls.load(source, precision=precision, threads=threads, **options)
    loaded.chosen_by = chosen_by
    return loaded


def _script_fp32(source: Any, precision: str) -> None:
    """TorchScript exports run fp32 (autocast does not reach into traced graphs): a one-line error otherwise."""
    if precision != "fp32":
        raise ModelError(f"a torchscript export runs fp32 only, not {precision}; use the checkpoint", source)


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


class GraphEngine(Engine):
    """An export run by a graph backend (``runners``): the file of the precision, compiled once."""

    backend: ClassVar[str]
    #: precision -> the export file's precision where they differ (bf16 is a compile setting of the fp32 file)
    file_precision: ClassVar[dict[str, str]] = {}

    def _open(self, folder: str | Path, precision: str, threads: int | None) -> tuple[dict[str, Any], Graph]:
        """Check the precision and the export, then open the main graph (dense model / image encoder)."""
        self.precision = self.check_precision(precision)
        self.folder = Path(folder)
        self.threads = threads
        self.meta = read_export(folder, self.kind, self.formats, self.name)
        file = export_file(folder, self.meta, self.file_precision.get(precision, precision))
        return self.meta, open_graph(self.backend, file, precision, threads)

    @classmethod
    def load(cls, source: Any, precision: str = "fp32", threads: int | None = None, **options: Any) -> Engine:
        folder = exported_folder(source, cls.kind, cls.file_precision.get(precision, precision), **options)
        return cls(folder, precision, threads)


class OpenVinoMixin:
    """OpenVINO: ONNX or IR files; fp32 set explicitly, bf16 only on CPUs with avx512_bf16 / AMX."""

    name = "openvino"
    backend = "openvino"
    formats = ("onnx", "openvino")
    file_precision: ClassVar[dict[str, str]] = {"bf16": "fp32"}

    @classmethod
    def check_precision(cls, precision: str) -> str:
        super().check_precision(precision)  # type: ignore[misc]
        if precision == "bf16" and not native_bf16():
            raise ModelError(
                "openvino bf16 needs a CPU with avx512_bf16 or amx_bf16 (this one has neither); use precision=fp32"
            )
        return precision


# --- dense engines ---------------------------------------------------------------------------------------


@register_engine
class TorchDenseEngine(DenseEngine):
    """A torch dense model (or a TorchScript export); ``bf16`` autocasts the forward (worth it only on CPUs with
    native bf16)."""

    name = "torch"
    precisions = ("fp32", "bf16")
    formats = ("torchscript",)

    def __init__(
        self,
        model: nn.Module,
        precision: str = "fp32",
        threads: int | None = None,
        device: str = "cpu",
        config: dict[str, Any] | None = None,
    ):
        self.precision = self.check_precision(precision)
        configure_torch(threads)
        if config is None:
            check_kind(model, self.kind, _label(model))
        self.model = model.to(device).eval()
        self.device = device
        self.config = dict(model.config if config is None else config)

    @classmethod
    def load(cls, source: Any, precision: str = "fp32", threads: int | None = None, **options: Any) -> Engine:
        if is_export(source):
            meta = read_export(source, cls.kind, cls.formats, cls.name)
            _script_fp32(source, precision)
            module = torch.jit.load(str(export_file(source, meta, "fp32")), map_location="cpu")
            return cls(module, precision, threads, config=meta.get("config") or {}, **options)
        return cls(check_kind(load_torch_model(source), cls.kind, source), precision, threads, **options)

    @torch.inference_mode()
    def forward(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(batch).to(self.device)
        with torch.autocast(torch.device(self.device).type, torch.bfloat16, enabled=self.precision == "bf16"):
            return self.model(x).float().cpu().numpy()


class GraphDenseEngine(GraphEngine, DenseEngine):
    """An exported dense model (one graph + ``export.json``) in a graph backend."""

    def __init__(self, folder: str | Path, precision: str = "fp32", threads: int | None = None):
        meta, self.graph = self._open(folder, precision, threads)
        self.config = dict(meta.get("config") or {})

    def forward(self, batch: np.ndarray) -> np.ndarray:
        return self.graph({"pixels": np.ascontiguousarray(batch, np.float32)})[0]


@register_engine
class OrtDenseEngine(GraphDenseEngine):
    """An exported dense model in ONNX Runtime."""

    name = "onnx"
    backend = "onnx"
    precisions = ("fp32",)
    formats = ("onnx",)


@register_engine
class OpenVinoDenseEngine(OpenVinoMixin, GraphDenseEngine):
    """An exported dense model (ONNX or IR) compiled by OpenVINO."""

    precisions = ("fp32", "bf16")


# --- promptable engines ----------------------------------------------------------------------------------


@register_engine
class TorchPromptEngine(PromptEngine):
    """A ``PromptableSAM``-like module in torch (or a TorchScript export); ``bf16`` autocasts the encoder.

    The engine keeps its own copy with conv+BatchNorm folded (``fuse=True``), so the caller's model is
    untouched and can still be trained or saved.
    """

    name = "torch"
    precisions = ("fp32", "bf16")
    formats = ("torchscript",)

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
        if is_export(source):
            _script_fp32(source, precision)
            return TorchScriptPromptEngine(source, precision, threads)
        return cls(check_kind(load_torch_model(source), cls.kind, source), precision, threads)

    @torch.inference_mode()
    def encode(self, pixels: np.ndarray) -> torch.Tensor:
        with torch.autocast("cpu", torch.bfloat16, enabled=self.precision == "bf16"):
            return self.model.encode(torch.from_numpy(pixels)).float()

    @torch.inference_mode()
    def decode(self, embedding, coords, labels, mask_input):
        m = None if mask_input is None else torch.from_numpy(mask_input)
        return self.model.decode(embedding, torch.from_numpy(coords), torch.from_numpy(labels), m)


class GraphPromptEngine(GraphEngine, PromptEngine):
    """An exported promptable model (encoder + decoder graphs) in a graph backend."""

    def __init__(self, folder: str | Path, precision: str = "fp32", threads: int | None = None):
        meta, self.encoder = self._open(folder, precision, threads)
        self.decoder = open_graph(self.backend, self.folder / meta["decoder"], "fp32", threads)
        self.img_size = int(meta["img_size"])
        self.low_res_size = int(meta["low_res_size"])
        self.preprocess = meta["preprocess"]
        self.model_name = meta.get("name")  # the released model it was exported from (its inference defaults)

    def encode(self, pixels: np.ndarray) -> np.ndarray:
        return self.encoder({"pixels": np.ascontiguousarray(pixels, np.float32)})[0]

    def decode(self, embedding, coords, labels, mask_input):
        has = np.full(1, 0.0 if mask_input is None else 1.0, np.float32)
        if mask_input is None:
            mask_input = np.zeros((1, 1, self.low_res_size, self.low_res_size), np.float32)
        low, iou = self.decoder(
            {
                "image_embeddings": np.asarray(embedding, np.float32),
                "point_coords": np.ascontiguousarray(coords, np.float32),
                "point_labels": np.ascontiguousarray(labels, np.float32),
                "mask_input": np.ascontiguousarray(mask_input, np.float32),
                "has_mask_input": has,
            }
        )
        return torch.from_numpy(low), torch.from_numpy(iou)


@register_engine
class OrtPromptEngine(GraphPromptEngine):
    """An exported promptable model in ONNX Runtime; ``int8``/``int8-static`` pick the quantised encoder."""

    name = "onnx"
    backend = "onnx"
    precisions = ("fp32", "int8", "int8-static")
    formats = ("onnx",)


@register_engine
class OpenVinoPromptEngine(OpenVinoMixin, GraphPromptEngine):
    """An exported promptable model (ONNX or IR) compiled by OpenVINO; bf16 computes the encoder in bf16 (the
    decoder stays fp32: it is small and its IoU head is sensitive), int8 runs the quantised encoder files."""

    precisions = ("fp32", "bf16", "int8", "int8-static")


class TorchScriptPromptEngine(GraphPromptEngine):
    """A TorchScript export (``encoder.pt`` + ``decoder.pt``) behind the torch engine's name; fp32."""

    name = "torch"
    backend = "torchscript"
    precisions = ("fp32",)
    formats = ("torchscript",)
