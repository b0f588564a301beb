"""Image and prompt transforms of the SAM-family recipes, shared by inference, export and fine-tuning.

``medsam``: CVPR24_LiteMedSAM_infer.py (longest side -> S with cv2 INTER_AREA, min-max over the resized array,
zero pad, boxes scaled by S/max(H, W) and truncated to int, logits cropped then resized bilinearly).
``sam``: segment-anything SamPredictor (longest side -> S with PIL bilinear, ImageNet mean/std, zero pad,
coordinates scaled per axis, logits upsampled to S, cropped, resized bilinearly).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import DataError

log = logging.getLogger(__name__)

SAM_PIXEL_MEAN = np.array([123.675, 116.28, 103.53], np.float32)
SAM_PIXEL_STD = np.array([58.395, 57.12, 57.375], np.float32)


def preprocess_shape(h: int, w: int, long_side: int) -> tuple[int, int]:
    """(new_h, new_w) with the longest side ``long_side`` (segment-anything's rounding, +0.5 then int)."""
    scale = long_side * 1.0 / max(h, w)
    return int(h * scale + 0.5), int(w * scale + 0.5)


def as_rgb_uint8(image: np.ndarray, name: str = "image") -> np.ndarray:
    """HxWx3 uint8 RGB from grey / HxWx1 / RGBA / 16-bit / float / bool arrays (one-line error otherwise).

    Grey is repeated to 3 channels, alpha dropped; non-uint8 data is min-max rescaled to 0..255 (the
    challenge convention for CT/MR intensities), except bool (0/255).
    """
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] in (1, 3, 4):
        img = img[:, :, :3] if img.shape[2] == 4 else img
    elif img.ndim != 2:
        raise DataError(f"{name}: expected an HxW, HxWx1, HxWx3 or HxWx4 array, got shape {img.shape}")
    if img.shape[0] < 2 or img.shape[1] < 2:
        raise DataError(f"{name}: image is too small ({img.shape[0]}x{img.shape[1]})")
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    elif img.dtype != np.uint8:
        if not np.issubdtype(img.dtype, np.number) or np.iscomplexobj(img):
            raise DataError(f"{name}: unsupported pixel type {img.dtype}")
        f = img.astype(np.float64)
        if not np.isfinite(f).all():
            raise DataError(f"{name}: image contains NaN or infinite values")
        lo, hi = float(f.min()), float(f.max())
        log.debug("%s: %s image min-max rescaled from [%g, %g] to uint8", name, img.dtype, lo, hi)
        img = np.round((f - lo) / max(hi - lo, 1e-8) * 255.0).astype(np.uint8)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    return np.ascontiguousarray(img)


@dataclass(frozen=True)
class PreparedImage:
    """Model input ``(1, 3, S, S)`` float32 plus the sizes needed to map prompts and masks back."""

    pixels: np.ndarray
    original_size: tuple[int, int]
    input_size: tuple[int, int]


class MedSAMRecipe:
    """LiteMedSAM's inference recipe (see module docstring)."""

    name = "medsam"

    def resize(self, image: np.ndarray, size: int) -> np.ndarray:
        import cv2

        nh, nw = preprocess_shape(image.shape[0], image.shape[1], size)
        return cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)

    def prepare(self, image: np.ndarray, size: int) -> PreparedImage:
        small = self.resize(image, size)
        nh, nw = small.shape[:2]
        lo, hi = small.min(), small.max()
        norm = (small - lo) / np.clip(hi - lo, a_min=1e-8, a_max=None)
        pixels = np.zeros((1, 3, size, size), np.float32)
        pixels[0, :, :nh, :nw] = norm.transpose(2, 0, 1)
        return PreparedImage(pixels, (image.shape[0], image.shape[1]), (nh, nw))

    def scale_boxes(self, boxes: np.ndarray, original_size: tuple[int, int], size: int) -> np.ndarray:
        return np.trunc(boxes.astype(np.float64) * (size / max(original_size)))

    def scale_points(self, points: np.ndarray, original_size: tuple[int, int], size: int) -> np.ndarray:
        return points.astype(np.float64) * (size / max(original_size))

    def postprocess(self, logits: torch.Tensor, prep: PreparedImage, size: int) -> torch.Tensor:
        if logits.shape[-1] != size:
            logits = F.interpolate(logits, (size, size), mode="bilinear", align_corners=False)
        logits = logits[..., : prep.input_size[0], : prep.input_size[1]]
        return F.interpolate(logits, prep.original_size, mode="bilinear", align_corners=False)


class SAMRecipe:
    """segment-anything's SamPredictor recipe (see module docstring)."""

    name = "sam"

    def resize(self, image: np.ndarray, size: int) -> np.ndarray:
        from PIL import Image

        nh, nw = preprocess_shape(image.shape[0], image.shape[1], size)
        return np.asarray(Image.fromarray(image).resize((nw, nh), Image.BILINEAR))

    def prepare(self, image: np.ndarray, size: int) -> PreparedImage:
        small = self.resize(image, size)
        nh, nw = small.shape[:2]
        pixels = np.zeros((1, 3, size, size), np.float32)
        pixels[0, :, :nh, :nw] = ((small - SAM_PIXEL_MEAN) / SAM_PIXEL_STD).transpose(2, 0, 1)
        return PreparedImage(pixels, (image.shape[0], image.shape[1]), (nh, nw))

    def scale_points(self, points: np.ndarray, original_size: tuple[int, int], size: int) -> np.ndarray:
        h, w = original_size
        nh, nw = preprocess_shape(h, w, size)
        out = points.astype(np.float64).copy()
        out[..., 0] *= nw / w
        out[..., 1] *= nh / h
        return out

    def scale_boxes(self, boxes: np.ndarray, original_size: tuple[int, int], size: int) -> np.ndarray:
        return self.scale_points(boxes.reshape(-1, 2, 2), original_size, size).reshape(boxes.shape)

    def postprocess(self, logits: torch.Tensor, prep: PreparedImage, size: int) -> torch.Tensor:
        logits = F.interpolate(logits, (size, size), mode="bilinear", align_corners=False)
        logits = logits[..., : prep.input_size[0], : prep.input_size[1]]
        return F.interpolate(logits, prep.original_size, mode="bilinear", align_corners=False)


@dataclass(frozen=True)
class Zoom:
    """Box zoom: each box is segmented in its own crop, a square of the box's longer side x (1 + 2 margin)
    (at least ``min_side`` pixels) centred on it, so a thin instrument spans the encoder's input instead of
    a few of its pixels (LiteMedSAM sees a whole frame at 256 px). ``flip``: also decode the mirrored crop
    and average the two logit maps (test-time augmentation: two encoder passes per box)."""

    margin: float = 0.5
    min_side: int = 160
    flip: bool = False


def zoom_window(box: np.ndarray, image_hw: tuple[int, int], zoom: Zoom) -> tuple[int, int, int, int]:
    """Integer crop ``(x0, y0, x1, y1)`` of ``zoom`` around the xyxy ``box``: shifted (not cut) to stay in
    the ``image_hw`` image where the square fits; it always contains the box."""
    h, w = int(image_hw[0]), int(image_hw[1])
    x0, y0, x1, y1 = (float(v) for v in box)
    side = max(max(x1 - x0, y1 - y0) * (1.0 + 2.0 * zoom.margin), float(zoom.min_side))
    out = []
    for lo, hi, limit in ((x0, x1, w), (y0, y1, h)):
        s = min(side, float(limit))
        start = min(max((lo + hi) / 2 - s / 2, 0.0), limit - s)
        a, b = int(np.floor(start)), int(np.ceil(start + s))
        out.append((max(0, min(a, int(np.floor(lo)))), min(limit, max(b, int(np.ceil(hi))))))
    (cx0, cx1), (cy0, cy1) = out
    return cx0, cy0, cx1, cy1


RECIPES = {"medsam": MedSAMRecipe(), "sam": SAMRecipe()}


def get_recipe(name: str):
    """The image/prompt recipe registered under ``name`` (``medsam`` or ``sam``)."""
    if name not in RECIPES:
        raise DataError(f"unknown preprocessing recipe {name!r}; known: {', '.join(sorted(RECIPES))}")
    return RECIPES[name]
