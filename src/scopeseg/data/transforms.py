"""Albumentations pipelines for training and evaluation (image + label map together).

``train_transform`` applies geometric and photometric augmentation suited to scope video (flips, small
affine, brightness/hue shifts, blur, noise); ``eval_transform`` only resizes. Both end at the training size.
"""

from __future__ import annotations

from collections.abc import Sequence

import albumentations as A
import cv2


def eval_transform(size: Sequence[int] | None) -> A.Compose:
    ops = [] if size is None else [A.Resize(int(size[0]), int(size[1]), interpolation=cv2.INTER_AREA)]
    return A.Compose(ops)


def train_transform(size: Sequence[int] | None, level: str = "default") -> A.Compose:
    """``level``: "none" (resize only), "light" (flips + colour), "default" (+ affine, blur, noise) or "real"
    (+ real-camera style: strong desaturation and colour casts, gamma, sharpening, JPEG artefacts, sensor
    noise; for synthetic-to-real transfer)."""
    if level == "none":
        return eval_transform(size)
    ops: list = [] if size is None else [A.Resize(int(size[0]), int(size[1]), interpolation=cv2.INTER_AREA)]
    ops += [
        A.HorizontalFlip(p=0.5),
        A.VerticalFlip(p=0.2),
        A.RandomBrightnessContrast(0.25, 0.25, p=0.7),
        A.HueSaturationValue(8, 20, 15, p=0.5),
    ]
    if level in ("default", "real"):
        ops += [
            A.Affine(
                scale=(0.85, 1.2),
                rotate=(-20, 20),
                translate_percent=(-0.06, 0.06),
                border_mode=cv2.BORDER_CONSTANT,
                p=0.6,
            ),
            A.OneOf([A.MotionBlur(blur_limit=(3, 7)), A.GaussianBlur(blur_limit=(3, 5))], p=0.3),
            A.GaussNoise(std_range=(0.01, 0.04), p=0.2),
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
