"""Dice of an export's reduced precisions (int8, bf16) against its own fp32, on sample frames: ``quality`` in export.json.

Why: a quantised or bf16 model is only worth deploying when its masks stay those of fp32; the numbers travel
with the export. Frames are synthetic (``calibration.synthetic_frame``, seeds apart from the calibration ones)
unless real ``sample_images`` are given; promptable models are prompted with three fixed boxes per frame.
Dice uses ``metrics.overlap.dice`` with two empty masks counting as 1 (``empty="one"``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..metrics.overlap import dice
from ..runtime import native_bf16
from .calibration import synthetic_frame
from .runners import Graph, open_graph

#: sample frames when none are given (seeds 2000+: not the int8 calibration frames)
SAMPLE_FRAMES = 4
#: boxes per sample frame as fractions of (W, H): large central, upper left, lower right
SAMPLE_BOXES = np.array([[0.2, 0.2, 0.8, 0.8], [0.05, 0.1, 0.45, 0.5], [0.5, 0.45, 0.95, 0.9]])


def sample_frames(size: tuple[int, int], n: int = SAMPLE_FRAMES) -> list[np.ndarray]:
    """``n`` synthetic RGB frames, landscape and portrait (``size`` = H, W of the landscape ones)."""
    return [synthetic_frame(*(size if i % 2 == 0 else size[::-1]), seed=2000 + i) for i in range(n)]


def reduced_precisions(format: str, files: dict[str, str]) -> list[str]:
    """The precisions of an export other than fp32: its int8 files, and bf16 for OpenVINO (a compile hint)."""
    return [p for p in files if p != "fp32"] + (["bf16"] if format == "openvino" else [])


def reduced_precision_dice(
    net: nn.Module,
    kind: str,
    format: str,
    folder: Path,
    meta: dict[str, Any],
    images: Iterable[np.ndarray] | None = None,
) -> dict[str, Any]:
    """``{precision: {dice_mean, dice_min, n, images}}`` vs the same backend's fp32; bf16 is skipped (with the
    reason) on CPUs without native bf16."""
    precisions = reduced_precisions(format, meta["files"])
    if not precisions:
        return {}
    frames = list(images) if images is not None else None
    source = "given" if frames is not None else "synthetic"
    masks = _MASKS[kind]
    reference = masks(net, format, folder, meta, "fp32", frames)
    out: dict[str, Any] = {}
    for precision in precisions:
        if precision == "bf16" and not native_bf16():
            out[precision] = {"skipped": "this CPU has no avx512_bf16 or amx_bf16"}
            continue
        got = masks(net, format, folder, meta, precision, frames)
        scores = np.array([_dice(a, b) for a, b in zip(reference, got)])
        out[precision] = {
            "dice_mean": float(scores.mean()),
            "dice_min": float(scores.min()),
            "n": int(scores.size),
            "images": source,
            "backend": format,
        }
    return out


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    """Mean Dice over the labels present in either map (binary masks: the one foreground)."""
    labels = [v for v in np.union1d(np.unique(a), np.unique(b)) if v] or [1]
    return float(np.mean([dice(b == v, a == v, empty="one") for v in labels]))


def _graph(format: str, folder: Path, meta: dict[str, Any], precision: str, key: str = "fp32") -> Graph:
    file = meta["files"]["fp32" if precision == "bf16" else precision] if key == "fp32" else meta[key]
    return open_graph(format, folder / file, precision, threads=None)


def _dense_masks(net, format, folder, meta, precision, frames) -> list[np.ndarray]:
    from ..models.dense_recipe import DenseRecipe

    graph = _graph(format, folder, meta, precision)
    size = tuple(net.config.get("input_size") or (64, 96))
    recipe = DenseRecipe(lambda batch: graph({"pixels": batch})[0], net.config, batch_size=1)
    return recipe.predict(frames if frames is not None else sample_frames(size))


def _promptable_masks(net, format, folder, meta, precision, frames) -> list[np.ndarray]:
    from ..models.sam.recipes import as_rgb_uint8, get_recipe

    recipe, s, low = get_recipe(meta["preprocess"]), int(meta["img_size"]), int(meta["low_res_size"])
    encoder = _graph(format, folder, meta, precision)
    decoder = _graph(format, folder, meta, "fp32", key="decoder")
    out = []
    for img in frames if frames is not None else sample_frames((384, 480)):
        prep = recipe.prepare(as_rgb_uint8(img), s)
        h, w = prep.original_size
        boxes = SAMPLE_BOXES * np.array([w, h, w, h])
        n = len(boxes)
        feeds = {
            "image_embeddings": encoder({"pixels": prep.pixels})[0],
            "point_coords": recipe.scale_boxes(boxes, prep.original_size, s)
            .reshape(n, 2, 2)
            .astype(np.float32),
            "point_labels": np.tile(np.array([[2.0, 3.0]], np.float32), (n, 1)),
            "mask_input": np.zeros((1, 1, low, low), np.float32),
            "has_mask_input": np.zeros(1, np.float32),
        }
        logits = torch.from_numpy(np.ascontiguousarray(decoder(feeds)[0][:, :1]))
        out.extend((recipe.postprocess(logits, prep, s)[:, 0] > 0).numpy().astype(np.uint8))
    return out


_MASKS = {"dense": _dense_masks, "promptable": _promptable_masks}
