"""Albumentations pipelines for training and evaluation (image + label map together).

``train_transform`` applies geometric and photometric augmentation suited to scope video (flips, small
affine, brightness/hue shifts, blur, noise); ``eval_transform`` only resizes. Both end at the training size.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import albumentations as A
import cv2
import numpy as np

from ..io import IMAGE_SUFFIXES


def eval_transform(size: Sequence[int] | None) -> A.Compose:
    ops = [] if size is None else [A.Resize(int(size[0]), int(size[1]), interpolation=cv2.INTER_AREA)]
    return A.Compose(ops)


class RandomConvolution(A.ImageOnlyTransform):
    """RandConv (Xu et al., ICLR 2021): the image filtered by a random ``k x k`` colour convolution (Kaiming-
    normal weights, ``k`` from ``kernel_sizes``), rescaled to the image's per-channel mean and spread, and
    blended in with weight ``mix``. Colour and texture change, shapes stay: a shape-biased model carries from
    synthetic to real frames better."""

    def __init__(
        self, kernel_sizes: Sequence[int] = (1, 3, 5, 7), mix: tuple[float, float] = (0.0, 1.0), p=0.5
    ):
        super().__init__(p=p)
        self.kernel_sizes = tuple(int(k) for k in kernel_sizes)
        self.mix = (float(mix[0]), float(mix[1]))

    def get_params(self) -> dict:
        k = self.py_random.choice(self.kernel_sizes)
        weight = self.random_generator.normal(0.0, 1.0 / np.sqrt(3 * k * k), size=(3, 3, k, k))
        return {"weight": weight.astype(np.float32), "alpha": self.py_random.uniform(*self.mix)}

    def apply(self, img: np.ndarray, weight: np.ndarray, alpha: float, **params) -> np.ndarray:
        x = img.astype(np.float32)
        out = np.stack(
            [
                sum(
                    cv2.filter2D(x[..., i], -1, weight[o, i], borderType=cv2.BORDER_REFLECT) for i in range(3)
                )
                for o in range(3)
            ],
            axis=-1,
        )
        mean, std = x.mean((0, 1)), x.std((0, 1)) + 1e-3
        out = (out - out.mean((0, 1))) / (out.std((0, 1)) + 1e-6) * std + mean
        return np.clip(alpha * out + (1.0 - alpha) * x, 0, 255).astype(img.dtype)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("kernel_sizes", "mix")


class _HeldReferences:
    """Reference frames held by the transform: albumentations 2 expects them in every call's data (a
    ``metadata_key``); our datasets call ``transform(image=, mask=)``, so the transform draws them itself."""

    def __init__(self, refs: Sequence[np.ndarray], **kw):
        super().__init__(**kw)
        self.refs = list(refs)

    @property
    def targets_as_params(self) -> list[str]:
        return []

    def _get_reference_image(self, data: dict) -> np.ndarray:
        return self.py_random.choice(self.refs)


class _FDA(_HeldReferences, A.FDA):
    pass


class _HistogramMatching(_HeldReferences, A.HistogramMatching):
    pass


class _PixelDistribution(_HeldReferences, A.PixelDistributionAdaptation):
    pass


#: reference-based style transfer (albumentations) from unlabeled real frames, by ``style`` name: FDA (Yang &
#: Soatto 2020: the low-frequency Fourier amplitude of a reference frame), histogram matching, or pixel-
#: distribution adaptation (PCA colour statistics)
STYLE_TRANSFORMS = {
    "fda": lambda refs, p: _FDA(refs, beta_limit=(0.0, 0.1), p=p),
    "histogram": lambda refs, p: _HistogramMatching(refs, blend_ratio=(0.5, 1.0), p=p),
    "pixel": lambda refs, p: _PixelDistribution(refs, blend_ratio=(0.25, 1.0), p=p),
}


def load_style_images(
    paths: Sequence[str | Path], size: Sequence[int] | None, limit: int = 500
) -> list[np.ndarray]:
    """RGB frames from image files and folders (searched recursively, sorted; the first ``limit`` kept), resized
    to ``size`` (H, W): the style references of ``STYLE_TRANSFORMS``. Only the pixels are read; labels next to
    them are never used."""
    from ..errors import DataError
    from ..io import read_image

    files: list[Path] = []
    for entry in paths:
        p = Path(entry)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise DataError("style_images: no images in this folder", p)
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise DataError("style_images: not found", p)
    out = []
    for f in files[:limit]:
        img = read_image(f)
        if size is not None:
            img = cv2.resize(img, (int(size[1]), int(size[0])), interpolation=cv2.INTER_AREA)
        out.append(img)
    return out


def train_transform(
    size: Sequence[int] | None,
    level: str = "default",
    scale: tuple[float, float] = (0.85, 1.2),
    style: str | None = None,
    style_images: Sequence[np.ndarray] = (),
    style_p: float = 0.5,
) -> A.Compose:
    """``level``: "none" (resize only), "light" (flips + colour), "default" (+ affine, blur, noise), "real"
    (+ real-camera style: strong desaturation and colour casts, gamma, sharpening, JPEG artefacts, sensor
    noise; for synthetic-to-real transfer), "randconv" (default + random convolutions, ``RandomConvolution``)
    or "domain" (randconv + any hue, grey and swapped colour channels: colour stops telling tool from
    tissue). ``scale``: the zoom range of the random affine (levels from "default" on). ``style`` +
    ``style_images``: with probability ``style_p`` the image first takes on the style of a random reference frame
    (``STYLE_TRANSFORMS``; any level but "none")."""
    if level == "none":
        return eval_transform(size)
    ops: list = [] if size is None else [A.Resize(int(size[0]), int(size[1]), interpolation=cv2.INTER_AREA)]
    if style and style_images:
        ops.append(STYLE_TRANSFORMS[style](list(style_images), style_p))
    ops += [
        A.HorizontalFlip(p=0.5),
        A.VerticalFlip(p=0.2),
        A.RandomBrightnessContrast(0.25, 0.25, p=0.7),
        A.HueSaturationValue(8, 20, 15, p=0.5),
    ]
    if level != "light":
        ops += [
            A.Affine(
                scale=tuple(scale),
                rotate=(-20, 20),
                translate_percent=(-0.06, 0.06),
                border_mode=cv2.BORDER_CONSTANT,
                p=0.6,
            ),
            A.OneOf([A.MotionBlur(blur_limit=(3, 7)), A.GaussianBlur(blur_limit=(3, 5))], p=0.3),
            A.GaussNoise(std_range=(0.01, 0.04), p=0.2),
        ]
    if level in ("randconv", "domain"):
        ops.append(RandomConvolution(p=0.5))
    if level == "domain":
        ops += [
            A.HueSaturationValue(hue_shift_limit=90, sat_shift_limit=30, val_shift_limit=0, p=0.5),
            A.ToGray(p=0.15),
            A.ChannelShuffle(p=0.15),
        ]
    if level == "real":
        ops += [
            A.ColorJitter(brightness=0.2, contrast=0.25, saturation=(0.25, 1.2), hue=0.04, p=0.7),
            A.RandomGamma(gamma_limit=(70, 140), p=0.4),
            A.Sharpen(alpha=(0.1, 0.4), lightness=(0.8, 1.1), p=0.35),
            A.ISONoise(color_shift=(0.01, 0.04), intensity=(0.05, 0.3), p=0.25),
            A.ImageCompression(quality_range=(35, 90), p=0.4),
        ]
    return A.Compose(ops)
