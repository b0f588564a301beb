"""Box / point / mask prompted segmentation with a cached image embedding (SamPredictor-style API).

``set_image`` runs the image encoder once; ``predict`` decodes any number of prompt sets in one batched
decoder call, so refinement (add a click, feed back ``low_res_logits``) costs only the decoder.
Engines (torch, ONNX Runtime; ``engines``) share the image/prompt recipe of the model (``models.sam.recipes``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..models.sam.recipes import PreparedImage, as_rgb_uint8, get_recipe
from .engines import PromptEngine, load_engine
from .predictors import register_predictor

log = logging.getLogger(__name__)


@dataclass
class PromptResult:
    """Masks at the original size (bool), predicted IoU scores and low-res logits (feed back as mask_input).

    Shapes: single-mask ``masks (N, H, W)``, ``scores (N,)``, ``low_res_logits (N, L, L)``; with
    ``multimask=True`` a mask axis of 3 follows N.
    """

    masks: np.ndarray
    scores: np.ndarray
    low_res_logits: np.ndarray


def _as_array(value: Any, name: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{name}: not numeric") from None
    if not np.isfinite(arr).all():
        raise DataError(f"{name}: contains NaN or infinite values")
    return arr


def check_boxes(boxes: Any, size: tuple[int, int]) -> np.ndarray:
    """``(N, 4)`` xyxy float boxes inside an ``HxW`` image (one-line error naming the bad box)."""
    arr = _as_array(boxes, "boxes")
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise DataError(f"boxes: expected (N, 4) xyxy, got shape {arr.shape}")
    h, w = size
    for i, (x0, y0, x1, y1) in enumerate(arr):
        if x1 <= x0 or y1 <= y0:
            raise DataError(
                f"box {i} [{x0:g}, {y0:g}, {x1:g}, {y1:g}] is degenerate (need x0 < x1 and y0 < y1)"
            )
        if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
            raise DataError(f"box {i} [{x0:g}, {y0:g}, {x1:g}, {y1:g}] lies outside the {w}x{h} (WxH) image")
    return arr


def check_points(
    points: Any, labels: Any, size: tuple[int, int], n: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """``(N, P, 2)`` xy points and ``(N, P)`` labels in {0, 1}; ``(P, 2)`` means one prompt set."""
    pts = _as_array(points, "points")
    if labels is None:
        raise DataError("points given without point_labels (1 positive, 0 negative)")
    lab = _as_array(labels, "point_labels")
    if pts.ndim == 2:
        pts, lab = pts[None], lab.reshape(1, -1)
    if pts.ndim != 3 or pts.shape[2] != 2 or pts.shape[1] == 0:
        raise DataError(f"points: expected (N, P, 2) or (P, 2) xy, got shape {np.asarray(points).shape}")
    if lab.shape != pts.shape[:2]:
        raise DataError(f"point_labels: shape {lab.shape} does not match points {pts.shape[:2]}")
    if not np.isin(lab, (0, 1)).all():
        raise DataError("point_labels: values must be 1 (positive) or 0 (negative)")
    if n is not None and pts.shape[0] != n:
        if pts.shape[0] != 1:
            raise DataError(f"points: {pts.shape[0]} prompt sets for {n} boxes")
        pts, lab = np.repeat(pts, n, axis=0), np.repeat(lab, n, axis=0)
    h, w = size
    bad = (pts[..., 0] < 0) | (pts[..., 0] > w) | (pts[..., 1] < 0) | (pts[..., 1] > h)
    if bad.any():
        i, j = map(int, np.argwhere(bad)[0])
        raise DataError(
            f"point {j} of prompt {i} ({pts[i, j, 0]:g}, {pts[i, j, 1]:g}) lies outside the {w}x{h} (WxH) image"
        )
    return pts, lab


def encode_prompts(
    recipe,
    prep: PreparedImage,
    size: int,
    boxes: np.ndarray | None,
    points: np.ndarray | None,
    labels: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Prompts in original pixels -> SAM sparse form in input pixels: points first, then box corners 2/3.

    Without a box a padding point (label -1) is appended, as segment-anything's prompt encoder does.
    """
    parts_c, parts_l = [], []
    n = boxes.shape[0] if boxes is not None else points.shape[0]
    if points is not None:
        parts_c.append(recipe.scale_points(points, prep.original_size, size))
        parts_l.append(labels)
    if boxes is not None:
        corners = recipe.scale_boxes(boxes, prep.original_size, size).reshape(n, 2, 2)
        parts_c.append(corners)
        parts_l.append(np.tile(np.array([[2.0, 3.0]]), (n, 1)))
    else:
        parts_c.append(np.zeros((n, 1, 2)))
        parts_l.append(-np.ones((n, 1)))
    coords = np.concatenate(parts_c, axis=1).astype(np.float32)
    return coords, np.concatenate(parts_l, axis=1).astype(np.float32)


@register_predictor("promptable")
class PromptPredictor:
    """``set_image`` once, then ``predict`` boxes / points / masks in original-image pixels."""

    def __init__(self, engine: PromptEngine):
        self.engine = engine
        self.recipe = get_recipe(engine.preprocess)
        self._embedding = None
        self._prep: PreparedImage | None = None

    @classmethod
    def from_pretrained(
        cls,
        name_or_dir: str | Path,
        engine: str = "torch",
        precision: str = "fp32",
        threads: int | None = None,
        **options: Any,
    ) -> PromptPredictor:
        """``"litemedsam"``, ``"mobilesam"``, a checkpoint folder, or an exported ONNX folder (engine ``onnx``).

        ``engine``/``precision``/``threads`` pick the backend (``engines.load_engine``); the onnx engine exports
        a non-exported model once into its cache, announced (``calibration_images=`` for int8-static).
        """
        return cls(load_engine(name_or_dir, "promptable", engine, precision, threads, **options))

    @property
    def image_size(self) -> tuple[int, int] | None:
        """(H, W) of the image currently set, or None."""
        return None if self._prep is None else self._prep.original_size

    def set_image(self, image: np.ndarray) -> None:
        """Encode an HxWx3 uint8 RGB image (grey, RGBA, 16-bit and float are converted) and cache it."""
        rgb = as_rgb_uint8(image)
        prep = self.recipe.prepare(rgb, self.engine.img_size)
        self._embedding = self.engine.encode(prep.pixels)
        self._prep = prep

    def get_embedding(self) -> tuple[Any, PreparedImage]:
        """The cached (embedding, prepared image) of the current image, for ``set_embedding`` later."""
        if self._prep is None:
            raise DataError("no image set: call set_image(image) first")
        return self._embedding, self._prep

    def set_embedding(self, embedding: Any, prep: PreparedImage) -> None:
        """Reuse an embedding computed earlier for the same prepared image."""
        self._embedding, self._prep = embedding, prep

    def predict(
        self,
        boxes: Any = None,
        points: Any = None,
        point_labels: Any = None,
        mask_input: Any = None,
        multimask: bool = False,
    ) -> PromptResult:
        """Decode N prompt sets in one call (boxes ``(N, 4)`` xyxy, points ``(N, P, 2)`` xy, labels ``(N, P)``)."""
        if self._prep is None:
            raise DataError("no image set: call set_image(image) before predict()")
        prep, size = self._prep, self.engine.img_size
        if boxes is None and points is None:
            raise DataError("predict needs boxes and/or points")
        box_arr = None if boxes is None else check_boxes(boxes, prep.original_size)
        n = None if box_arr is None else box_arr.shape[0]
        pts = lab = None
        if points is not None:
            pts, lab = check_points(points, point_labels, prep.original_size, n)
        n = box_arr.shape[0] if box_arr is not None else pts.shape[0]
        coords, labels = encode_prompts(self.recipe, prep, size, box_arr, pts, lab)
        return self._decode(coords, labels, mask_input, multimask)

    def predict_input_space(
        self, boxes: Any, mask_input: Any = None, multimask: bool = False
    ) -> PromptResult:
        """Like ``predict`` with boxes ``(N, 4)`` already in model-input pixels (the 3D challenge propagation)."""
        if self._prep is None:
            raise DataError("no image set: call set_image(image) before predict()")
        size = self.engine.img_size
        arr = check_boxes(boxes, (size, size))
        n = arr.shape[0]
        coords = arr.reshape(n, 2, 2).astype(np.float32)
        labels = np.tile(np.array([[2.0, 3.0]], np.float32), (n, 1))
        return self._decode(coords, labels, mask_input, multimask)

    def _decode(
        self, coords: np.ndarray, labels: np.ndarray, mask_input: Any, multimask: bool
    ) -> PromptResult:
        n = coords.shape[0]
        masks_in = None if mask_input is None else self._check_mask_input(mask_input, n)
        low, iou = self.engine.decode(self._embedding, coords, labels, masks_in)
        sel = slice(1, None) if multimask else slice(0, 1)
        low, iou = low[:, sel], iou[:, sel]
        full = self.recipe.postprocess(low, self._prep, self.engine.img_size) > 0.0
        if not multimask:
            return PromptResult(full[:, 0].numpy(), iou[:, 0].numpy(), low[:, 0].numpy())
        return PromptResult(full.numpy(), iou.numpy(), low.numpy())

    def _check_mask_input(self, mask_input: Any, n: int) -> np.ndarray:
        m = _as_array(mask_input, "mask_input").astype(np.float32)
        size = self.engine.low_res_size
        while m.ndim < 4:
            m = m[None] if m.ndim < 3 else m[:, None]
        if m.shape[1:] != (1, size, size) or m.shape[0] not in (1, n):
            raise DataError(
                f"mask_input: expected ({n}, {size}, {size}) low-res logits, got shape {np.shape(mask_input)}"
            )
        return np.ascontiguousarray(np.repeat(m, n, axis=0) if m.shape[0] != n else m)
