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
from ..models.sam.recipes import PreparedImage, Zoom, as_rgb_uint8, get_recipe, zoom_window
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


#: models whose decoder was fine-tuned on box crops: their box prompts are zoomed unless ``zoom="off"``
DEFAULT_ZOOM: dict[str, Zoom] = {"litemedsam-scope": Zoom(0.5, 160, flip=True)}


def resolve_zoom(zoom: Zoom | str | None, name: Any = None) -> Zoom | None:
    """``"auto"``: the model's default (``DEFAULT_ZOOM``, none for other models); ``"off"`` / None: no zoom;
    ``"MARGIN,MIN_SIDE[,flip]"`` (e.g. ``"0.5,160"``; ``flip``: flip test-time augmentation) or a ``Zoom``."""
    if zoom is None or isinstance(zoom, Zoom):
        return zoom
    text = str(zoom).strip().lower()
    if text == "auto":
        return DEFAULT_ZOOM.get(str(name)) if isinstance(name, str) else None
    if text in ("off", "none", "false", "0"):
        return None
    parts = [p.strip() for p in text.split(",")]
    flip = len(parts) == 3 and parts[2] == "flip"
    try:
        if len(parts) != 2 and not flip:
            raise ValueError(text)
        out = Zoom(float(parts[0]), int(parts[1]), flip)
    except ValueError:
        raise DataError(
            f"zoom {zoom!r}: expected auto, off or MARGIN,MIN_SIDE[,flip] (e.g. 0.5,160)"
        ) from None
    if not (0 <= out.margin <= 10 and out.min_side >= 8):
        raise DataError(f"zoom {zoom!r}: margin must be in [0, 10] and MIN_SIDE >= 8 pixels")
    return out


@register_predictor("promptable")
class PromptPredictor:
    """``set_image`` once, then ``predict`` boxes / points / masks in original-image pixels.

    With ``zoom`` each box prompt (and its points) is decoded on its own crop (``models.sam.recipes.Zoom``):
    one encoder pass per box (two with ``flip``) instead of one per image, for thin or small objects a model
    sees at low resolution; points-only prompts and ``mask_input`` refinement use the whole image.
    """

    def __init__(self, engine: PromptEngine, zoom: Zoom | None = None):
        self.engine = engine
        self.recipe = get_recipe(engine.preprocess)
        self.zoom = zoom
        self._embedding = None
        self._prep: PreparedImage | None = None
        self._rgb: np.ndarray | None = None  # the current image (zoom crops are cut from it)

    @classmethod
    def from_pretrained(
        cls,
        name_or_dir: str | Path,
        engine: str = "torch",
        precision: str = "fp32",
        threads: int | None = None,
        zoom: Zoom | str | None = "auto",
        **options: Any,
    ) -> PromptPredictor:
        """``"litemedsam"``, ``"mobilesam"``, a checkpoint folder, or an exported ONNX folder (engine ``onnx``).

        ``engine``/``precision``/``threads`` pick the backend (``engines.load_engine``); the onnx engine exports
        a non-exported model once into its cache, announced (``calibration_images=`` for int8-static).
        ``zoom``: ``"auto"`` (the model's default: ``0.5,160,flip`` for ``litemedsam-scope``, none for the
        others), ``"off"``, ``"MARGIN,MIN_SIDE[,flip]"`` or a ``Zoom``.
        """
        eng = load_engine(name_or_dir, "promptable", engine, precision, threads, **options)
        return cls(eng, zoom=resolve_zoom(zoom, getattr(eng, "model_name", None) or name_or_dir))

    @property
    def image_size(self) -> tuple[int, int] | None:
        """(H, W) of the image currently set, or None."""
        return None if self._prep is None else self._prep.original_size

    def set_image(self, image: np.ndarray) -> None:
        """Encode an HxWx3 uint8 RGB image (grey, RGBA, 16-bit and float are converted) and cache it.

        With ``zoom`` the whole-image embedding is computed only when needed (points alone, ``mask_input``,
        ``get_embedding``): box prompts encode their own crops.
        """
        rgb = as_rgb_uint8(image)
        prep = self.recipe.prepare(rgb, self.engine.img_size)
        self._embedding = None if self.zoom else self.engine.encode(prep.pixels)
        self._prep, self._rgb = prep, rgb

    def _whole_image_embedding(self) -> Any:
        if self._embedding is None:
            self._embedding = self.engine.encode(self._prep.pixels)
        return self._embedding

    def get_embedding(self) -> tuple[Any, PreparedImage]:
        """The cached (embedding, prepared image) of the current image, for ``set_embedding`` later."""
        if self._prep is None:
            raise DataError("no image set: call set_image(image) first")
        return self._whole_image_embedding(), self._prep

    def set_embedding(self, embedding: Any, prep: PreparedImage, image: np.ndarray | None = None) -> None:
        """Reuse an embedding computed earlier for the same prepared image (``image``: its pixels, which box
        zoom needs; without them box prompts decode on the whole-image embedding)."""
        self._embedding, self._prep = embedding, prep
        self._rgb = None if image is None else as_rgb_uint8(image)

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
        if self.zoom is not None and box_arr is not None and mask_input is None and self._rgb is not None:
            return self._predict_zoomed(box_arr, pts, lab, multimask)
        coords, labels = encode_prompts(self.recipe, prep, size, box_arr, pts, lab)
        return self._decode(coords, labels, mask_input, multimask)

    def _predict_zoomed(
        self, boxes: np.ndarray, pts: np.ndarray | None, lab: np.ndarray | None, multimask: bool
    ) -> PromptResult:
        """Each box (with its points) decoded on its own crop; masks pasted back at the original size and the
        logits mapped into the whole image's low-res frame (so they can be fed back as ``mask_input``)."""
        h, w = self._prep.original_size
        size, low_size = self.engine.img_size, self.engine.low_res_size
        sel = slice(1, None) if multimask else slice(0, 1)
        masks, scores, lows = [], [], []
        for i, box in enumerate(boxes):
            x0, y0, x1, y1 = zoom_window(box, (h, w), self.zoom)
            if pts is not None:  # the crop also holds the prompt's points
                x0, y0 = (
                    min(x0, int(np.floor(pts[i, :, 0].min()))),
                    min(y0, int(np.floor(pts[i, :, 1].min()))),
                )
                x1, y1 = max(x1, int(np.ceil(pts[i, :, 0].max()))), max(y1, int(np.ceil(pts[i, :, 1].max())))
                x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
            crop = np.ascontiguousarray(self._rgb[y0:y1, x0:x1])
            shift = np.array([x0, y0], np.float64)
            local_pts = None if pts is None else pts[i : i + 1] - shift
            local_box = (box.reshape(2, 2) - shift).reshape(1, 4)
            local_lab = None if lab is None else lab[i : i + 1]
            logits, iou = self._decode_crop(crop, local_box, local_pts, local_lab, sel)
            if self.zoom.flip:  # the mirrored crop, its logits mirrored back and averaged
                cw = x1 - x0
                fbox = local_box[:, [2, 1, 0, 3]] * np.array([-1, 1, -1, 1]) + np.array([cw, 0, cw, 0])
                fpts = None if local_pts is None else local_pts * np.array([-1, 1]) + np.array([cw, 0])
                flog, fiou = self._decode_crop(crop[:, ::-1], fbox, fpts, local_lab, sel)
                logits, iou = 0.5 * (logits + flog[..., ::-1]), 0.5 * (iou + fiou)
            canvas = np.full((logits.shape[0], h, w), -20.0, np.float32)
            canvas[:, y0:y1, x0:x1] = logits
            masks.append(canvas > 0.0)
            scores.append(iou)
            lows.append(np.stack([self._to_low_res(c, size, low_size) for c in canvas]))
        masks_a, scores_a, lows_a = np.stack(masks), np.stack(scores), np.stack(lows)
        if not multimask:
            return PromptResult(masks_a[:, 0], scores_a[:, 0], lows_a[:, 0])
        return PromptResult(masks_a, scores_a, lows_a)

    def _decode_crop(
        self, crop: np.ndarray, box: np.ndarray, pts: np.ndarray | None, lab: np.ndarray | None, sel: slice
    ) -> tuple[np.ndarray, np.ndarray]:
        """(logits ``(M, ch, cw)`` at the crop's size, IoU scores ``(M,)``) of one box on one crop."""
        size = self.engine.img_size
        prep = self.recipe.prepare(np.ascontiguousarray(crop), size)
        coords, labels = encode_prompts(self.recipe, prep, size, box, pts, lab)
        low, iou = self.engine.decode(self.engine.encode(prep.pixels), coords, labels, None)
        return self.recipe.postprocess(low[:, sel], prep, size)[0].numpy(), iou[0, sel].numpy()

    def _to_low_res(self, logits: np.ndarray, size: int, low_size: int) -> np.ndarray:
        """A whole-image logit map (H, W) in the decoder's low-res frame: the recipe's resize, zero-pad (as
        -20), then the decoder grid (what ``mask_input`` expects)."""
        import torch
        import torch.nn.functional as F

        small = np.asarray(self.recipe.resize(logits, size), np.float32)
        frame = np.full((size, size), -20.0, np.float32)
        frame[: small.shape[0], : small.shape[1]] = small
        if low_size == size:
            return frame
        t = torch.from_numpy(frame)[None, None]
        return F.interpolate(t, (low_size, low_size), mode="bilinear", align_corners=False)[0, 0].numpy()

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
        low, iou = self.engine.decode(self._whole_image_embedding(), coords, labels, masks_in)
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
