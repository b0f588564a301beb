"""Export: write a model's deployment files + ``export.json`` and check them against torch; an explicit step.

Formats (``EXPORTERS``, ``FORMAT/KIND``): ``onnx``; ``openvino`` (the IR, ``ov.convert_model`` of our ONNX
graphs, weights kept fp32); ``torchscript`` (``torch.jit.trace``). Dense models become one graph with dynamic
batch, height and width (pixels float32 NCHW in [0, 1] -> logits). Promptable models become an image encoder
(+ ``int8``: dynamic int8 of the weight MatMuls; + ``int8-static``: calibrated QDQ, only with calibration
images; onnx and openvino) and a prompt decoder in SAM's ONNX prompt form (``point_coords (N, P, 2)``,
``point_labels (N, P)`` with 2/3 box corners and -1 padding, ``mask_input``, ``has_mask_input``) returning all
4 mask logits + IoU scores. Every export runs torch and the exported files (in the backend that serves them)
on sample inputs and records the largest absolute difference in ``export.json``; beyond
``tolerance * max(1, max|torch output|)`` it fails and nothing is written. ``export.json`` also carries the
preprocessing (``preprocessing``: recipe, sizes, mean/std, classes, threshold) so a deployed model needs no
Python config, and the Dice of every reduced precision against fp32 on sample frames (``quality``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
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
from .calibration import default_calibration_images, synthetic_frame
from .export_quality import reduced_precision_dice
from .runners import Graph, as_numpy, open_graph
from .sources import check_kind, load_torch_model, model_kind


def export_kind(net: nn.Module) -> str:
    """``instance`` for the instance family (Mask2Former: 4 outputs at a fixed size), else ``model_kind``."""
    return "instance" if getattr(net, "family", None) == "instance" else model_kind(net)


log = logging.getLogger(__name__)

EXPORT_FILE = "export.json"
#: bump when the exported graphs change; cached automatic exports of another version are redone
EXPORT_VERSION = 10
DENSE_FILE = "model.onnx"
ENCODER_FILE = "encoder.onnx"
ENCODER_INT8_FILE = "encoder.int8.onnx"
ENCODER_INT8_STATIC_FILE = "encoder.int8-static.onnx"
DECODER_FILE = "decoder.onnx"
#: file suffix per format (``encoder.int8.onnx`` -> ``encoder.int8.xml`` / ``encoder.int8.pt``)
SUFFIXES = {"onnx": ".onnx", "openvino": ".xml", "torchscript": ".pt"}
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
    """An export: its folder, model kind, files by precision, the check against torch, reduced-precision Dice."""

    folder: Path
    kind: str
    files: dict[str, str]
    check: dict[str, Any]
    quality: dict[str, Any]


def export(
    model: str | Path | nn.Module,
    out: str | Path,
    format: str = "onnx",
    opset: int = 17,
    calibration_images: Iterable[np.ndarray] | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    sample_images: Iterable[np.ndarray] | None = None,
    overwrite: bool = False,
) -> ExportResult:
    """Write ``model`` (a model, checkpoint folder or released name) to ``out`` as ``format``, atomically.

    An existing ``out`` is refused unless ``overwrite`` (replaced only after the export and its check passed).

    ``calibration_images`` adds a static int8 file where the kind has one; ``sample_images`` (default:
    synthetic frames) are where reduced precisions are compared with fp32 (Dice). Raises ``ModelError`` when
    the exported model differs from torch beyond the tolerance (``out`` is then left as it was).
    """
    from ..io import check_output

    check_output(out, overwrite=overwrite)
    return _write(
        load_torch_model(model),
        out,
        format,
        opset,
        calibration_images,
        tolerance,
        _source_digest(model),
        sample_images,
    )


def _write(
    net: nn.Module,
    out: str | Path,
    format: str,
    opset: int,
    calibration_images: Iterable[np.ndarray] | None,
    tolerance: float,
    source_digest: str | None,
    sample_images: Iterable[np.ndarray] | None = None,
    quality: bool = True,
) -> ExportResult:
    """The export itself; ``quality=False`` (automatic cache exports) skips the reduced-precision Dice."""
    kind = export_kind(net)
    exporter = EXPORTERS.get(_exportable(net, format))
    config = dict(net.config)
    with atomic_dir(out) as tmp, _eval_mode(net), warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's and the tracer's notes
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
            "preprocessing": preprocessing(net),
            **extra,
        }
        if kind == "instance":  # fp32 files only; OpenVINO's bf16 compile hint is not measured for them
            meta["quality"] = (
                {"bf16": {"skipped": "instance exports are checked in fp32 only"}}
                if format == "openvino"
                else {}
            )
        else:
            meta["quality"] = (
                reduced_precision_dice(net, kind, format, tmp, meta, sample_images) if quality else {}
            )
        (tmp / EXPORT_FILE).write_text(json.dumps(meta, indent=2, default=str))
    return ExportResult(Path(out), kind, files, check, meta["quality"])


def _exportable(net: nn.Module, format: str) -> str:
    """The ``FORMAT/KIND`` exporter key of ``net``; a one-line error when the model or format cannot be exported."""
    kind = export_kind(net)
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


def _compare(check: dict[str, Any], where: str, ref: Any, got: Any) -> None:
    """Fold one torch-vs-export comparison into ``check`` (max abs diff, reference magnitude, worst place)."""
    ref, got = as_numpy(ref), as_numpy(got)
    diff = float(np.abs(ref - got).max())
    check[f"{where}_max_abs_diff"] = diff
    check["reference_max_abs"] = max(check.get("reference_max_abs", 0.0), float(np.abs(ref).max()))
    if diff >= check.get("max_abs_diff", -1.0):
        check["max_abs_diff"], check["worst"] = diff, where


def preprocessing(net: nn.Module) -> dict[str, Any]:
    """What a deployment does around the graph, for ``export.json`` (no Python config needed to run it)."""
    config = net.config
    if export_kind(net) == "instance":
        size = config.get("input_size") or [160, 256]
        return {
            "recipe": "instance",
            "input": "RGB uint8 HxWx3 -> float32 NCHW, x / 255 (the graph normalises inside)",
            "mean": [0.0, 0.0, 0.0],
            "std": [255.0, 255.0, 255.0],
            "input_size": list(size),
            "resize": "cv2 INTER_AREA to input_size (HxW); the graph runs at that size only (dynamic batch)",
            "output": "logits (B, Q, K+1; last = no object), masks (B, Q, ceil(H/4), ceil(W/4)) logits, quality "
            "(B, Q) logits, boxes (B, Q, 4) cx, cy, w, h in [0, 1]; instances: top-k (query, class) by "
            "softmax score (x sigmoid(quality) with a quality head), masks upsampled x4 then to the image, "
            "sigmoid > 0.5",
            "classes": list(config.get("classes") or []),
            "topk": int(config.get("topk", 20)),
            "quality_head": bool(config.get("quality_head")),
            "box_head": bool(config.get("box_head")),
        }
    if model_kind(net) == "dense":
        classes = list(config.get("classes") or ["foreground"])
        size = config.get("input_size")
        return {
            "recipe": "dense",
            "input": "RGB uint8 HxWx3 -> float32 NCHW, x / 255 (mean 0, std 1)",
            "mean": [0.0, 0.0, 0.0],
            "std": [255.0, 255.0, 255.0],
            "input_size": list(size) if size else None,
            "resize": "cv2 INTER_AREA to input_size (HxW); any size runs (padded inside the graph)",
            "output": "logits resized bilinearly to the image, then "
            + ("sigmoid > threshold" if len(classes) == 1 else "softmax argmax (0 = background)"),
            "classes": classes,
            "threshold": float(config.get("threshold", 0.5)),
        }
    from ..models.sam.recipes import SAM_PIXEL_MEAN, SAM_PIXEL_STD

    s = int(net.img_size)
    recipes = {
        "medsam": {
            "resize": f"longest side to {s} with cv2 INTER_AREA",
            "mean": None,
            "std": None,
            "normalise": "min-max of the resized image to [0, 1]",
            "box_scale": f"boxes * {s} / max(H, W), truncated to integers",
        },
        "sam": {
            "resize": f"longest side to {s} with PIL bilinear",
            "mean": SAM_PIXEL_MEAN.tolist(),
            "std": SAM_PIXEL_STD.tolist(),
            "normalise": "(x - mean) / std on RGB 0-255",
            "box_scale": "x * new_w / W, y * new_h / H",
        },
    }
    return {
        "recipe": net.preprocess,
        "input_size": [s, s],
        "low_res_size": int(net.low_res_size),
        **recipes[net.preprocess],
        "pad": f"zeros bottom/right to {s}x{s}",
        "prompts": "points (label 1/0) then box corners (labels 2, 3); no box: one (0, 0) point labelled -1",
        "output": "low_res_logits upsampled to the input size, cropped to the resized image, resized to HxW; "
        "mask = logits > 0; channel 0 = single mask, 1-3 = multimask",
        "mask_threshold": 0.0,
    }


def _save_graph(format: str, module: nn.Module, args: tuple, path: Path, opset: int, **onnx_kw: Any) -> Path:
    """Write ``module`` traced on ``args`` as ``format`` at ``path`` (suffix set by the format); returns the path."""
    path = path.with_suffix(SUFFIXES[format])
    if format == "torchscript":
        try:
            torch.jit.trace(module.eval(), args, check_trace=False).save(str(path))
        except Exception as err:  # the tracer's errors are many and long: name the first line
            what = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ModelError(
                f"{type(module).__name__.strip('_')} does not trace to TorchScript: {what}"
            ) from None
        return path
    onnx_path = path.with_suffix(".onnx")
    torch.onnx.export(module.eval(), args, str(onnx_path), dynamo=False, opset_version=opset, **onnx_kw)
    if format == "openvino":
        to_openvino(onnx_path, path)
        onnx_path.unlink()
    return path


def to_openvino(src: Path, dst: Path) -> Path:
    """An ONNX file as OpenVINO IR (``dst`` .xml + .bin), weights kept fp32 (``save_model`` would halve them).

    ``Core.read_model`` is the ONNX frontend ``ov.convert_model`` uses, without its Python layer (3x faster here).
    """
    import openvino as ov

    from ..runtime import ov_core

    ov.save_model(ov_core().read_model(str(src)), str(dst), compress_to_fp16=False)
    return dst


def _dense_trace() -> torch.Tensor:
    return _dense_batch([synthetic_frame(*DENSE_TRACE_SIZE, seed=0)])


def _dense_batch(frames: list[np.ndarray]) -> torch.Tensor:
    """RGB uint8 frames -> float32 NCHW in [0, 1] (the dense engines' input)."""
    return torch.from_numpy(np.stack(frames).transpose(0, 3, 1, 2).astype(np.float32) / 255.0)


def _check_dense(model: nn.Module, graph: Graph) -> dict[str, Any]:
    """Torch vs ``graph`` at the trace size and at batch 2 of the model's input size (another size)."""
    check_size = tuple(int(s) for s in model.config.get("input_size") or DENSE_CHECK_SIZE)
    check: dict[str, Any] = {"inputs": []}
    for name, batch in (
        ("trace", _dense_trace()),
        ("batch2", _dense_batch([synthetic_frame(*check_size, seed=s) for s in (1, 2)])),
    ):
        check["inputs"].append(list(batch.shape))
        _compare(check, name, model(batch), graph({"pixels": batch.numpy()})[0])
    return check


def _dense_exporter(format: str):
    def exporter(
        model: nn.Module, folder: Path, opset: int, calibration_images: Iterable[np.ndarray] | None
    ) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        if calibration_images is not None:
            raise ConfigError(f"dense {format} exports are fp32 only (no int8 calibration)")
        path = _save_graph(
            format,
            model,
            (_dense_trace(),),
            folder / DENSE_FILE,
            opset,
            input_names=["pixels"],
            output_names=["logits"],
            dynamic_axes={a: {0: "batch", 2: "height", 3: "width"} for a in ("pixels", "logits")},
        )
        check = _check_dense(model, open_graph(format, path, threads=1))
        n = len(model.config.get("classes") or [1])
        signature = {"pixels": ["batch", 3, "height", "width"], "logits": ["batch", n, "height", "width"]}
        return {"fp32": path.name}, check, {"signature": signature}

    exporter.__doc__ = (
        f"Dense ``{format}`` export: one graph, dynamic batch/height/width, checked at two sizes."
    )
    return exporter


for _format in SUFFIXES:
    register_exporter(_format, "dense")(_dense_exporter(_format))


def _instance_exporter(format: str):
    def exporter(
        model: nn.Module, folder: Path, opset: int, calibration_images: Iterable[np.ndarray] | None
    ) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        from ..models.instance.mask2former import OUTPUT_NAMES

        if calibration_images is not None:
            raise ConfigError(f"instance {format} exports are fp32 only (no int8 calibration)")
        h, w = (int(s) for s in model.config.get("input_size") or (160, 256))
        path = _save_graph(
            format,
            model,
            (_dense_batch([synthetic_frame(h, w, seed=0)]),),
            folder / DENSE_FILE,
            opset,
            input_names=["pixels"],
            output_names=list(OUTPUT_NAMES),
            dynamic_axes={n: {0: "batch"} for n in ("pixels", *OUTPUT_NAMES)},
        )
        graph = open_graph(format, path, threads=1)
        check: dict[str, Any] = {"inputs": []}
        for name, seeds in (("batch1", (1,)), ("batch2", (2, 3))):
            batch = _dense_batch([synthetic_frame(h, w, seed=s) for s in seeds])
            check["inputs"].append(list(batch.shape))
            ref, got = model(batch), graph({"pixels": batch.numpy()})
            for out_name, r, g in zip(OUTPUT_NAMES, ref, got):
                _compare(check, f"{name}/{out_name}", r, g)
        q, k = model.num_queries, len(model.classes)
        mh, mw = (h + 3) // 4, (w + 3) // 4
        signature = {
            "pixels": ["batch", 3, h, w],
            "logits": ["batch", q, k + 1],
            "masks": ["batch", q, mh, mw],
            "quality": ["batch", q],
            "boxes": ["batch", q, 4],
        }
        return {"fp32": path.name}, check, {"signature": signature}

    exporter.__doc__ = f"Instance ``{format}`` export: one graph at the model's input size, dynamic batch, all four outputs checked."
    return exporter


for _format in SUFFIXES:
    register_exporter(_format, "instance")(_instance_exporter(_format))


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


def _promptable_sample(model: nn.Module) -> tuple[np.ndarray, torch.Tensor]:
    """Prepared pixels of a synthetic frame and torch's image embedding of them."""
    from ..models.sam.recipes import get_recipe

    pixels = (
        get_recipe(model.preprocess).prepare(synthetic_frame(300, 400, seed=0), int(model.img_size)).pixels
    )
    return pixels, model.encode(torch.from_numpy(pixels))


def _write_promptable(
    format: str, model: nn.Module, folder: Path, opset: int, calibration_images: Iterable[np.ndarray] | None
) -> tuple[dict[str, str], dict[str, Any]]:
    """Encoder (+ int8 variants for onnx and openvino) and decoder files of ``format`` in ``folder``."""
    if format == "openvino":  # the ONNX files, converted
        with tempfile.TemporaryDirectory() as scratch:
            files, extra = _write_promptable("onnx", model, Path(scratch), opset, calibration_images)
            ir = {
                k: to_openvino(Path(scratch) / f, (folder / f).with_suffix(".xml")).name
                for k, f in files.items()
            }
            decoder = to_openvino(
                Path(scratch) / extra["decoder"], folder / Path(DECODER_FILE).with_suffix(".xml")
            )
        return ir, {"decoder": decoder.name}
    s, low = int(model.img_size), int(model.low_res_size)
    pixels, emb = _promptable_sample(model)
    encoder = _save_graph(
        format,
        _Encoder(model),
        (torch.from_numpy(pixels),),
        folder / ENCODER_FILE,
        opset,
        input_names=["pixels"],
        output_names=["image_embeddings"],
    )
    decoder_args = (
        emb,
        torch.rand(2, 3, 2) * s,
        torch.tensor([[1.0, 2.0, 3.0], [0.0, 2.0, 3.0]]),
        torch.zeros(1, 1, low, low),
        torch.zeros(1),
    )
    decoder = _save_graph(
        format,
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
    files = {"fp32": encoder.name}
    if format == "torchscript":
        if calibration_images is not None:
            raise ConfigError("torchscript exports are fp32 only (no int8 calibration)")
        return files, {"decoder": decoder.name}
    files["int8"] = quantize_encoder_dynamic(encoder, folder / ENCODER_INT8_FILE).name
    if calibration_images is not None:
        files["int8-static"] = quantize_encoder_static(
            encoder, folder / ENCODER_INT8_STATIC_FILE, model.preprocess, s, calibration_images
        ).name
    return files, {"decoder": decoder.name}


def _promptable_exporter(format: str):
    def exporter(
        model: nn.Module, folder: Path, opset: int, calibration_images: Iterable[np.ndarray] | None
    ) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        files, extra = _write_promptable(format, model, folder, opset, calibration_images)
        check = _check_promptable(model, format, folder, files, extra["decoder"])
        s, low = int(model.img_size), int(model.low_res_size)
        extra.update(
            img_size=s,
            low_res_size=low,
            preprocess=model.preprocess,
            signature={
                "pixels": [1, 3, s, s],
                "point_coords": ["n", "p", 2],
                "point_labels": ["n", "p"],
                "mask_input": ["n or 1", 1, low, low],
                "has_mask_input": [1],
                "low_res_logits": ["n", 4, low, low],
                "iou_predictions": ["n", 4],
            },
        )
        return files, check, extra

    exporter.__doc__ = (
        f"Promptable ``{format}`` export: encoder (+ int8) and decoder; the fp32 pair checked on box, point, "
        "mask and other-shape prompts (int8 encoders' differences recorded, not checked)."
    )
    return exporter


for _format in SUFFIXES:
    register_exporter(_format, "promptable")(_promptable_exporter(_format))


def _check_promptable(model, format: str, folder: Path, files: dict[str, str], decoder_file: str) -> dict:
    s, low = int(model.img_size), int(model.low_res_size)
    pixels, emb = _promptable_sample(model)
    check: dict[str, Any] = {"inputs": [list(pixels.shape)]}
    _compare(
        check, "encoder", emb, open_graph(format, folder / files["fp32"], threads=1)({"pixels": pixels})[0]
    )
    decoder = open_graph(format, folder / decoder_file, threads=1)
    wrapped = _Decoder(model).eval()
    coords = (
        np.array([[[0.1, 0.2], [0.7, 0.8], [0.4, 0.5]], [[0.5, 0.5], [0.0, 0.0], [0.0, 0.0]]], np.float32) * s
    )
    labels = np.array([[2.0, 3.0, 1.0], [1.0, -1.0, -1.0]], np.float32)  # box + point; point + padding
    mask = np.zeros((1, 1, low, low), np.float32)
    cases = [("decoder", coords, labels, 0.0), ("decoder_mask_prompt", coords, labels, 1.0)]
    cases.append(("decoder_one_box", coords[:1, :2], labels[:1, :2], 0.0))  # other N and P: dynamic axes
    for where, c, lab, has in cases:
        feeds = {
            "image_embeddings": emb.numpy(),
            "point_coords": np.ascontiguousarray(c),
            "point_labels": np.ascontiguousarray(lab),
            "mask_input": mask if len(mask) in (1, len(c)) else mask[:1],
            "has_mask_input": np.full(1, has, np.float32),
        }
        ref = wrapped(*(torch.from_numpy(v) for v in feeds.values()))
        got = decoder(feeds)
        _compare(check, f"{where}_logits", ref[0], got[0])
        _compare(check, f"{where}_iou", ref[1], got[1])
        mask = np.repeat(ref[0][:1, :1].numpy(), 2, axis=0)  # the next round feeds real low-res logits back
    for precision in ("int8", "int8-static"):
        if precision in files:
            got = open_graph(format, folder / files[precision], threads=1)({"pixels": pixels})[0]
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


def read_export(
    folder: str | Path, kind: str, formats: tuple[str, ...] | None = None, engine: str | None = None
) -> dict[str, Any]:
    """``export.json`` of an exported ``kind`` folder of one of ``formats``; else a one-line ``ModelError``."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / EXPORT_FILE).read_text())
    except (OSError, ValueError):
        raise ModelError(f"not an exported {kind} model (no readable {EXPORT_FILE})", folder) from None
    if not isinstance(meta, dict) or meta.get("kind") != kind:
        found = meta.get("kind") if isinstance(meta, dict) else None
        raise ModelError(f"not an exported {kind} model ({EXPORT_FILE} says {found!r})", folder)
    fmt = meta.get("format", "onnx")
    if formats is not None and fmt not in formats:
        readers = {"onnx": "onnx or openvino", "openvino": "openvino", "torchscript": "torch"}
        raise ModelError(
            f"export format {fmt}: engine {engine} reads {' and '.join(formats)} exports"
            f"{' and checkpoints' if engine == 'torch' else ''} (use engine={readers.get(fmt, 'torch')})",
            folder,
        )
    return meta


def is_export(source: Any) -> bool:
    """True when ``source`` is a folder with an ``export.json``."""
    return isinstance(source, (str, Path)) and (Path(source) / EXPORT_FILE).is_file()


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
    if is_export(source):
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
        result = _write(model, folder, "onnx", 17, images, DEFAULT_TOLERANCE, digest, quality=False)
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
