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
    """``level``: "none" (resize only), "light" (flips + colour) or "default" (+ affine, blur, noise)."""
    if level == "none":
        return eval_transform(size)
    ops: list = [] if size is None else [A.Resize(int(size[0]), int(size[1]), interpolation=cv2.INTER_AREA)]
    ops += [
        A.HorizontalFlip(p=0.5),
        A.VerticalFlip(p=0.2),
        A.RandomBrightnessContrast(0.25, 0.25, p=0.7),
        A.HueSaturationValue(8, 20, 15, p=0.5),
    ]
    if level == "default":
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
    return A.Compose(ops)
