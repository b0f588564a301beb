"""Export: write a model's ONNX files + ``export.json`` and check them against torch; an explicit step.

Dense models become one ``model.onnx`` with dynamic batch, height and width (pixels float32 NCHW in [0, 1]
-> logits). Promptable models become an image ``encoder.onnx`` (+ ``encoder.int8.onnx``: dynamic int8 of the
weight MatMuls; + ``encoder.int8-static.onnx``: calibrated QDQ, only with calibration images) and a prompt
``decoder.onnx`` in SAM's ONNX prompt form (``point_coords (N, P, 2)``, ``point_labels (N, P)`` with 2/3 box
corners and -1 padding, ``mask_input``, ``has_mask_input``) returning all 4 mask logits + IoU scores. Every
export runs torch and ONNX Runtime on sample inputs and records the largest absolute difference in
``export.json``; beyond ``tolerance * max(1, max|torch output|)`` it fails and nothing is written.
"""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, ModelError
from ..io import atomic_dir
from ..registry import Registry
from ..runtime import ort_session
from .calibration import default_calibration_images, synthetic_frame
from .sources import check_kind, load_torch_model, model_kind

log = logging.getLogger(__name__)

EXPORT_FILE = "export.json"
#: bump when the exported graphs change; cached automatic exports of another version are redone
EXPORT_VERSION = 9
DENSE_FILE = "model.onnx"
ENCODER_FILE = "encoder.onnx"
ENCODER_INT8_FILE = "encoder.int8.onnx"
ENCODER_INT8_STATIC_FILE = "encoder.int8-static.onnx"
DECODER_FILE = "decoder.onnx"
#: the check fails beyond this fraction of max(1, the largest torch output magnitude)
DEFAULT_TOLERANCE = 1e-3
#: dense models are traced at a size no stride divides, so the pad-to-multiple branch stays in the graph (a
#: traced size that needs no padding freezes the pads at zero and other sizes then fail)
DENSE_TRACE_SIZE = (71, 103)
DENSE_CHECK_SIZE = (64, 96)

#: ``FORMAT/KIND`` -> ``exporter(model, folder, opset, calibration_images) -> (files, check, extra meta)``
EXPORTERS: Registry[Callable[..., tuple[dict[str, str], dict[str, Any], dict[str, Any]]]] = Registry(
    "export format", ConfigError
)


def register_exporter(format: str, kind: str):
    """Decorator: register the exporter that writes ``kind`` models (``dense``/``promptable``) as ``format``."""

    def deco(fn):
        EXPORTERS.register(f"{format}/{kind}", fn)
        return fn

    return deco


@dataclass
class ExportResult:
    """An export: its folder, model kind, files by precision and the numerical check against torch."""

    folder: Path
    kind: str
    files: dict[str, str]
    check: dict[str, Any]


def export(
    model: str | Path | nn.Module,
    out: str | Path,
    format: str = "onnx",
    opset: int = 17,
    calibration_images: Iterable[np.ndarray] | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> ExportResult:
    """Write ``model`` (a model, checkpoint folder or released name) to ``out`` as ``format``, atomically.

    ``calibration_images`` adds a static int8 file where the kind has one. Raises ``ModelError`` when the
    exported model differs from torch beyond the tolerance (``out`` is then left as it was).
    """
    return _write(
        load_torch_model(model), out, format, opset, calibration_images, tolerance, _source_digest(model)
    )


def _write(
    net: nn.Module,
    out: str | Path,
    format: str,
    opset: int,
    calibration_images: Iterable[np.ndarray] | None,
    tolerance: float,
    source_digest: str | None,
) -> ExportResult:
    kind = model_kind(net)
    exporter = EXPORTERS.get(_exportable(net, format))
    config = dict(net.config)
    with atomic_dir(out) as tmp, _eval_mode(net), warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notes
        files, check, extra = exporter(net, tmp, opset, calibration_images)
        limit = tolerance * max(1.0, check["reference_max_abs"])
        check.update(tolerance=tolerance, limit=limit, passed=bool(check["max_abs_diff"] <= limit))
        if not check["passed"]:
            raise ModelError(
                f"{format} export of {config.get('name', type(net).__name__)} differs from torch by "
                f"{check['max_abs_diff']:.3g} (limit {limit:.3g}) at {check['worst']}"
            )
        meta = {
            "format": format,
            "kind": kind,
            "name": config.get("name"),
            "config": config,
            "files": files,
            "check": check,
            "opset": opset,
            "export_version": EXPORT_VERSION,
            "source_digest": source_digest,
            **extra,
        }
        (tmp / EXPORT_FILE).write_text(json.dumps(meta, indent=2, default=str))
    return ExportResult(Path(out), kind, files, check)


def _exportable(net: nn.Module, format: str) -> str:
    """The ``FORMAT/KIND`` exporter key of ``net``; a one-line error when the model or format cannot be exported."""
    kind = model_kind(net)
    if not net.exportable:
        raise ModelError(
            f"{net.config.get('name') or type(net).__name__} cannot be exported; use engine torch"
        )
    key = f"{format}/{kind}"
    if key not in EXPORTERS:
        formats = sorted({k.split("/")[0] for k in EXPORTERS.names(f"*/{kind}")})
        raise ConfigError(
            f"cannot export {kind} models as {format!r}; formats: {', '.join(formats) or 'none'}"
        )
    return key


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode for the export; the caller's train/eval mode is restored after (export never changes a model)."""
    was = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was)


def _source_digest(source: Any) -> str | None:
    """SHA-256 of a checkpoint folder's weights (an automatic export is redone when they change)."""
    from ..models.checkpoints import WEIGHTS_FILE, file_digest

    if isinstance(source, (str, Path)) and (Path(source) / WEIGHTS_FILE).is_file():
        return file_digest(Path(source) / WEIGHTS_FILE)
    return None


def _compare(check: dict[str, Any], where: str, ref: Any, got: np.ndarray) -> None:
    """Fold one torch-vs-ORT comparison into ``check`` (max abs diff, reference magnitude, worst place)."""
    ref = ref.detach().float().numpy() if isinstance(ref, torch.Tensor) else np.asarray(ref)
    diff = float(np.abs(ref - got).max())
    check[f"{where}_max_abs_diff"] = diff
    check["reference_max_abs"] = max(check.get("reference_max_abs", 0.0), float(np.abs(ref).max()))
    if diff >= check.get("max_abs_diff", -1.0):
        check["max_abs_diff"], check["worst"] = diff, where


def _onnx_export(module: nn.Module, args: tuple, path: Path, opset: int, **kw: Any) -> None:
    torch.onnx.export(module.eval(), args, str(path), dynamo=False, opset_version=opset, **kw)


@register_exporter("onnx", "dense")
def export_dense_onnx(
    model: nn.Module, folder: Path, opset: int, calibration_images: Iterable[np.ndarray] | None
) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
    """``model.onnx`` with dynamic batch/height/width; checked at the trace size and at batch 2 of another size."""
    if calibration_images is not None:
        raise ConfigError("dense ONNX exports are fp32 only (no int8 calibration)")
    check_size = tuple(int(s) for s in model.config.get("input_size") or DENSE_CHECK_SIZE)
    trace = _dense_batch([synthetic_frame(*DENSE_TRACE_SIZE, seed=0)])
    _onnx_export(
        model,
        (trace,),
        folder / DENSE_FILE,
        opset,
        input_names=["pixels"],
        output_names=["logits"],
        dynamic_axes={a: {0: "batch", 2: "height", 3: "width"} for a in ("pixels", "logits")},
    )
    session = ort_session(folder / DENSE_FILE, threads=1)
    check: dict[str, Any] = {"inputs": []}
    for name, batch in (
        ("trace", trace),
        ("batch2", _dense_batch([synthetic_frame(*check_size, seed=s) for s in (1, 2)])),
    ):
        check["inputs"].append(list(batch.shape))
        _compare(check, name, model(batch), session.run(None, {"pixels": batch.numpy()})[0])
    return {"fp32": DENSE_FILE}, check, {}


def _dense_batch(frames: list[np.ndarray]) -> torch.Tensor:
    """RGB uint8 frames -> float32 NCHW in [0, 1] (the dense engines' input)."""
    return torch.from_numpy(np.stack(frames).transpose(0, 3, 1, 2).astype(np.float32) / 255.0)


class _Encoder(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode(pixels)


class _Decoder(nn.Module):
    """Prompt encoder + mask decoder with a tensor switch for the mask prompt (ONNX has no ``None``)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image_embeddings, point_coords, point_labels, mask_input, has_mask_input):
        pe = self.model.prompt_encoder
        sparse = pe.embed_sparse(point_coords, point_labels)
        no_mask = pe.no_mask_embed.weight.reshape(1, -1, 1, 1)
        dense = has_mask_input * pe.mask_downscaling(mask_input) + (1 - has_mask_input) * no_mask
        return self.model.mask_decoder(image_embeddings, pe.get_dense_pe(), sparse, dense)


@register_exporter("onnx", "promptable")
def export_promptable_onnx(
    model: nn.Module, folder: Path, opset: int, calibration_images: Iterable[np.ndarray] | None
) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
    """Encoder (+ int8 variants) and decoder; the fp32 pair is checked on a synthetic frame with box, point and
    mask prompts (the int8 encoders' differences are recorded, not checked: quantisation noise is expected)."""
    from ..models.sam.recipes import get_recipe

    s, low = int(model.img_size), int(model.low_res_size)
    pixels = get_recipe(model.preprocess).prepare(synthetic_frame(300, 400, seed=0), s).pixels
    _onnx_export(
        _Encoder(model),
        (torch.from_numpy(pixels),),
        folder / ENCODER_FILE,
        opset,
        input_names=["pixels"],
        output_names=["image_embeddings"],
    )
    emb = model.encode(torch.from_numpy(pixels))
    decoder_args = (
        emb,
        torch.rand(2, 3, 2) * s,
        torch.tensor([[1.0, 2.0, 3.0], [0.0, 2.0, 3.0]]),
        torch.zeros(1, 1, low, low),
        torch.zeros(1),
    )
    _onnx_export(
        _Decoder(model),
        decoder_args,
        folder / DECODER_FILE,
        opset,
        input_names=["image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input"],
        output_names=["low_res_logits", "iou_predictions"],
        dynamic_axes={
            "point_coords": {0: "n", 1: "p"},
            "point_labels": {0: "n", 1: "p"},
            "mask_input": {0: "m"},
            "low_res_logits": {0: "n"},
            "iou_predictions": {0: "n"},
        },
    )
    files = {"fp32": ENCODER_FILE, "int8": ENCODER_INT8_FILE}
    quantize_encoder_dynamic(folder / ENCODER_FILE, folder / ENCODER_INT8_FILE)
    if calibration_images is not None:
        quantize_encoder_static(
            folder / ENCODER_FILE, folder / ENCODER_INT8_STATIC_FILE, model.preprocess, s, calibration_images
        )
        files["int8-static"] = ENCODER_INT8_STATIC_FILE
    check = _check_promptable(model, folder, files, pixels, emb)
    return (
        files,
        check,
        {"decoder": DECODER_FILE, "img_size": s, "low_res_size": low, "preprocess": model.preprocess},
    )


def _check_promptable(
    model, folder: Path, files: dict[str, str], pixels: np.ndarray, emb: torch.Tensor
) -> dict:
    s, low = int(model.img_size), int(model.low_res_size)
    check: dict[str, Any] = {"inputs": [list(pixels.shape)]}
    _compare(
        check, "encoder", emb, ort_session(folder / ENCODER_FILE, threads=1).run(None, {"pixels": pixels})[0]
    )
    decoder = ort_session(folder / DECODER_FILE, threads=1)
    wrapped = _Decoder(model).eval()
    coords = (
        np.array([[[0.1, 0.2], [0.7, 0.8], [0.4, 0.5]], [[0.5, 0.5], [0.0, 0.0], [0.0, 0.0]]], np.float32) * s
    )
    labels = np.array([[2.0, 3.0, 1.0], [1.0, -1.0, -1.0]], np.float32)  # box + point; point + padding
    mask = np.zeros((1, 1, low, low), np.float32)
    for where, has in (("decoder", 0.0), ("decoder_mask_prompt", 1.0)):
        feeds = {
            "image_embeddings": emb.numpy(),
            "point_coords": coords,
            "point_labels": labels,
            "mask_input": mask,
            "has_mask_input": np.full(1, has, np.float32),
        }
        ref = wrapped(*(torch.from_numpy(v) for v in feeds.values()))
        got = decoder.run(None, feeds)
        _compare(check, f"{where}_logits", ref[0], got[0])
        _compare(check, f"{where}_iou", ref[1], got[1])
        mask = np.repeat(ref[0][:1, :1].numpy(), 2, axis=0)  # the next round feeds real low-res logits back
    for precision in ("int8", "int8-static"):
        if precision in files:
            got = ort_session(folder / files[precision], threads=1).run(None, {"pixels": pixels})[0]
            check[f"{precision}_encoder_max_abs_diff"] = float(np.abs(emb.numpy() - got).max())
    return check


def quantize_encoder_dynamic(src: Path, dst: Path) -> Path:
    """Dynamic int8 of the weight MatMuls (uint8 weights per tensor, activation scales per call).

    Measured on 15 Kvasir-SEG images with LiteMedSAM, mask Dice vs fp32 (mean / min): uint8 per-tensor
    0.996 / 0.989 (kept); int8 per-channel 0.994 / 0.983 at the same speed; int8 per-tensor 0.990 / 0.937;
    static QDQ of Conv+MatMul 0.92 and of Conv alone 0.92, both slower than fp32 Conv on AVX2 (no VNNI).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # ORT's "consider pre-processing" warning goes to the root logger
    try:
        quantize_dynamic(
            str(src),
            str(dst),
            op_types_to_quantize=["MatMul"],
            per_channel=False,
            weight_type=QuantType.QUInt8,
        )
    finally:
        root.setLevel(level)
    return dst


def quantize_encoder_static(
    src: Path, dst: Path, preprocess: str, size: int, images: Iterable[np.ndarray]
) -> Path:
    """Static int8 QDQ quantisation of the encoder (per-channel weights), calibrated on ``images``."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from ..models.sam.recipes import as_rgb_uint8, get_recipe

    recipe = get_recipe(preprocess)
    batches = [{"pixels": recipe.prepare(as_rgb_uint8(im), size).pixels} for im in images]
    if not batches:
        raise ModelError("int8 export needs at least one calibration image")

    class _Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(batches)

        def get_next(self):
            return next(self.it, None)

    pre = dst.with_suffix(".pre.onnx")
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    graph = onnx.load(str(pre)).graph
    weights = {init.name for init in graph.initializer}
    # only weight-bearing Conv/MatMul/Gemm run in int8; attention scores (activation x activation MatMuls),
    # softmax, norms and residual adds stay fp32: most of the FLOPs, little of the error
    activation_matmuls = [
        n.name for n in graph.node if n.op_type == "MatMul" and not (set(n.input) & weights)
    ]
    quantize_static(
        str(pre),
        str(dst),
        _Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["Conv", "MatMul", "Gemm"],
        nodes_to_exclude=activation_matmuls,
        extra_options={"CalibMovingAverage": True},
    )
    pre.unlink(missing_ok=True)
    return dst


def read_export(folder: str | Path, kind: str) -> dict[str, Any]:
    """``export.json`` of an exported ``kind`` folder; a one-line ``ModelError`` when it is not one."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / EXPORT_FILE).read_text())
    except (OSError, ValueError):
        raise ModelError(f"not an exported {kind} model (no readable {EXPORT_FILE})", folder) from None
    if meta.get("kind") != kind:
        raise ModelError(f"not an exported {kind} model ({EXPORT_FILE} says {meta.get('kind')!r})", folder)
    return meta


def export_file(folder: str | Path, meta: dict[str, Any], precision: str) -> Path:
    """The file of ``precision`` in an export; a one-line ``ModelError`` naming how to get it when missing."""
    name = meta.get("files", {}).get(precision)
    if name is None or not (Path(folder) / name).is_file():
        have = ", ".join(meta.get("files", {})) or "none"
        raise ModelError(
            f"this export has no {precision} model (has: {have}); int8-static needs an export with "
            "calibration images (scopeseg export --int8-static)",
            folder,
        )
    return Path(folder) / name


def cache_folder(source: str | Path) -> Path:
    """Where an automatic export of ``source`` goes: ``CHECKPOINT/onnx`` or ``SCOPESEG_HOME/onnx/NAME``."""
    from ..models.weights import scopeseg_home

    path = Path(source)
    return path / "onnx" if path.is_dir() else scopeseg_home() / "onnx" / str(source)


def exported_folder(
    source: str | Path,
    kind: str,
    precision: str = "fp32",
    calibration_images: Iterable[np.ndarray] | None = None,
) -> Path:
    """``source`` when it is an export; else its cache folder, exported there first when missing or stale.

    The automatic export is announced (``log.warning`` naming the folder), never silent; int8-static is
    calibrated on ``calibration_images`` or synthetic frames. ``scopeseg export`` is the explicit step.
    """
    if isinstance(source, (str, Path)) and (Path(source) / EXPORT_FILE).is_file():
        read_export(source, kind)
        return Path(source)
    folder, digest = cache_folder(source), _source_digest(source)
    if not _usable(folder, kind, precision, digest):
        model = check_kind(load_torch_model(source), kind, source)
        _exportable(model, "onnx")
        calibrate = precision == "int8-static"
        if calibrate and calibration_images is None:
            calibration_images = default_calibration_images()
        log.warning(
            "exporting %s to ONNX%s into %s (once; `scopeseg export` does this explicitly)",
            source,
            " with static int8 calibration" if calibrate else "",
            folder,
        )
        images = calibration_images if calibrate else None
        result = _write(model, folder, "onnx", 17, images, DEFAULT_TOLERANCE, digest)
        log.warning("export check: max abs diff %.3g vs torch", result.check["max_abs_diff"])
    return folder


def _usable(folder: Path, kind: str, precision: str, digest: str | None) -> bool:
    """An earlier automatic export of the same weights, this exporter version and the wanted precision."""
    try:
        meta = read_export(folder, kind)
    except ModelError:
        return False
    return (
        meta.get("export_version") == EXPORT_VERSION
        and meta.get("source_digest") == digest
        and precision in meta.get("files", {})
    )
