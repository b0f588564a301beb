"""ONNX export of promptable models (image encoder + prompt decoder) and the engines that run them.

The decoder takes the cached embedding and SAM's ONNX prompt form (``point_coords (N, P, 2)``,
``point_labels (N, P)`` with 2/3 box corners and -1 padding, ``mask_input``, ``has_mask_input``) and returns
all 4 mask logits + IoU scores, so one exported pair serves single- and multi-mask prediction.
Reduced precision: ``int8`` = dynamic int8 of the encoder's weight MatMuls (always exported; no data needed),
``int8-static`` = static QDQ int8 of Conv/MatMul/Gemm calibrated on images (only with calibration images).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import ModelError
from ..io import atomic_dir

log = logging.getLogger(__name__)

ENCODER_FILE = "encoder.onnx"
ENCODER_INT8_FILE = "encoder.int8.onnx"
ENCODER_INT8_STATIC_FILE = "encoder.int8-static.onnx"
PRECISION_FILES = {"fp32": ENCODER_FILE, "int8": ENCODER_INT8_FILE, "int8-static": ENCODER_INT8_STATIC_FILE}
DECODER_FILE = "decoder.onnx"
META_FILE = "prompt_onnx.json"
PRETRAINED = ("litemedsam", "mobilesam")
#: bump when the exported graphs change; cached exports of another version are redone
EXPORT_VERSION = 8


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


def export_onnx(
    model: nn.Module,
    out_dir: str | Path,
    opset: int = 17,
    calibration_images: Iterable[np.ndarray] | None = None,
) -> Path:
    """Write ``encoder.onnx``, ``encoder.int8.onnx`` and ``decoder.onnx`` (+ the static int8 encoder when
    calibration images are given) atomically."""
    import warnings

    model = model.eval()
    s, low = int(model.img_size), int(model.low_res_size)
    grid = low // 4
    meta = {
        "img_size": s,
        "low_res_size": low,
        "preprocess": model.preprocess,
        "name": getattr(model, "scopeseg_config", {}).get("name"),
        "opset": opset,
        "export_version": EXPORT_VERSION,
    }
    with atomic_dir(out_dir) as tmp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        emb = model.encode(torch.zeros(1, 3, s, s))
        torch.onnx.export(
            _Encoder(model),
            (torch.zeros(1, 3, s, s),),
            str(tmp / ENCODER_FILE),
            dynamo=False,
            input_names=["pixels"],
            output_names=["image_embeddings"],
            opset_version=opset,
        )
        args = (
            emb,
            torch.rand(2, 3, 2) * s,
            torch.tensor([[1.0, 2.0, 3.0], [0.0, 2.0, 3.0]]),
            torch.zeros(1, 1, low, low),
            torch.zeros(1),
        )
        torch.onnx.export(
            _Decoder(model),
            args,
            str(tmp / DECODER_FILE),
            dynamo=False,
            opset_version=opset,
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
        assert emb.shape[-1] == grid
        quantize_encoder_dynamic(tmp / ENCODER_FILE, tmp / ENCODER_INT8_FILE)
        if calibration_images is not None:
            quantize_encoder(
                tmp / ENCODER_FILE, tmp / ENCODER_INT8_STATIC_FILE, model.preprocess, s, calibration_images
            )
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2))
    return Path(out_dir)


def quantize_encoder_dynamic(src: Path, dst: Path) -> Path:
    """Dynamic int8 of the weight MatMuls (uint8 weights per tensor, activation scales per call).

    Measured on 15 Kvasir-SEG images with LiteMedSAM, mask Dice vs fp32 (mean / min): uint8 per-tensor
    0.996 / 0.989 (kept); int8 per-channel 0.994 / 0.983 at the same speed; int8 per-tensor 0.990 / 0.937;
    static QDQ of Conv+MatMul 0.92 and of Conv alone 0.92, both slower than fp32 Conv on AVX2 (no VNNI).
    """
    import logging as _logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = _logging.getLogger()
    level = root.level
    root.setLevel(_logging.ERROR)  # ORT's "consider pre-processing" warning goes to the root logger
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


def quantize_encoder(src: Path, dst: Path, preprocess: str, size: int, images: Iterable[np.ndarray]) -> Path:
    """Static int8 QDQ quantisation of the encoder (per-channel weights), calibrated on ``images``."""
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

    import onnx

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


class OrtPromptEngine:
    """ONNX Runtime engine over an exported folder; ``precision="int8"`` uses the quantised encoder."""

    def __init__(self, folder: str | Path, precision: str = "fp32", threads: int | None = None):
        import onnxruntime as ort

        folder = Path(folder)
        meta_path = folder / META_FILE
        if not meta_path.is_file():
            raise ModelError(f"not an exported promptable model (no {META_FILE})", folder)
        meta = json.loads(meta_path.read_text())
        enc_file = PRECISION_FILES.get(precision)
        if enc_file is None:
            raise ModelError(
                f"onnx engine precision must be one of {', '.join(PRECISION_FILES)}, got {precision!r}"
            )
        if not (folder / enc_file).is_file():
            raise ModelError(
                f"missing {enc_file} (int8-static needs an export with calibration images)", folder
            )
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # workers spin inside a run but stop at its end: otherwise the encoder's idle workers keep spinning
        # while the decoder runs on the same cores (first decode after an encode 89 ms instead of 43 ms)
        opts.add_session_config_entry("session.force_spinning_stop", "1")
        prov = ["CPUExecutionProvider"]
        self.encoder = ort.InferenceSession(str(folder / enc_file), opts, providers=prov)
        self.decoder = ort.InferenceSession(str(folder / DECODER_FILE), opts, providers=prov)
        self.img_size = int(meta["img_size"])
        self.low_res_size = int(meta["low_res_size"])
        self.preprocess = meta["preprocess"]
        self.precision = precision

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


def load_torch_model(name_or_dir: str | Path) -> nn.Module:
    """``litemedsam``/``mobilesam``, a scopeseg checkpoint folder or a transformers SAM folder -> eval model."""
    from ..models.registry import create_model, load_model
    from ..models.sam.hf import HFSamPromptable, is_hf_sam_dir

    path = Path(name_or_dir)
    if path.is_dir() and is_hf_sam_dir(path):
        return HFSamPromptable.from_pretrained(path)
    if path.is_dir():
        return load_model(path)
    if str(name_or_dir) in PRETRAINED:
        return create_model(str(name_or_dir))
    raise ModelError(
        f"unknown promptable model {str(name_or_dir)!r}: use {', '.join(PRETRAINED)} or a checkpoint folder"
    )


def onnx_cache_dir(name: str) -> Path:
    """Where exported ONNX pairs of the pretrained models are cached (``SCOPESEG_HOME/onnx/NAME``)."""
    from ..models.weights import scopeseg_home

    return scopeseg_home() / "onnx" / name


def _current_export(folder: Path) -> bool:
    try:
        return json.loads((folder / META_FILE).read_text()).get("export_version") == EXPORT_VERSION
    except (OSError, ValueError):
        return False


def load_engine(
    name_or_dir: str | Path,
    engine: str = "torch",
    precision: str = "fp32",
    threads: int | None = None,
    calibration_images: Iterable[np.ndarray] | None = None,
):
    """Build the engine for ``PromptPredictor``: torch (fp32/bf16) or onnx (fp32/int8/int8-static, exported on
    first use into ``SCOPESEG_HOME/onnx/NAME`` or ``CHECKPOINT/onnx``)."""
    if engine == "torch":
        from .prompt import TorchPromptEngine

        if threads:
            torch.set_num_threads(threads)
        return TorchPromptEngine(load_torch_model(name_or_dir), precision)
    if engine != "onnx":
        raise ModelError(f"unknown engine {engine!r}; use torch or onnx")
    path = Path(name_or_dir)
    if (path / META_FILE).is_file():
        return OrtPromptEngine(path, precision, threads)
    folder = path / "onnx" if path.is_dir() else onnx_cache_dir(str(name_or_dir))
    need_int8 = precision == "int8-static"
    if not _current_export(folder) or (need_int8 and not (folder / ENCODER_INT8_STATIC_FILE).is_file()):
        if need_int8 and calibration_images is None:
            from .prompt_calibration import default_calibration_images

            calibration_images = default_calibration_images()
        from ..models.sam.model import PromptableSAM

        model = load_torch_model(name_or_dir)
        if not isinstance(model, PromptableSAM):
            raise ModelError(
                f"ONNX export covers scopeseg promptable models only; use engine torch for {name_or_dir}"
            )
        log.info("exporting %s to ONNX in %s", name_or_dir, folder)
        export_onnx(
            model,
            folder,
            calibration_images=calibration_images if need_int8 else None,
        )
    return OrtPromptEngine(folder, precision, threads)
