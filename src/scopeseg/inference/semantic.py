"""Semantic ``Predictor``: RGB images in, probabilities / label maps out at the images' own size.

Pre-processing is the training one (resize to the model's ``input_size`` with INTER_AREA, scale to [0, 1]);
logits are resized back bilinearly before the sigmoid/softmax, so masks are evaluated at full resolution.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError
from .engines import load_engine
from .predictors import register_predictor


@register_predictor("semantic")
class Predictor:
    """Batched semantic prediction; ``engine`` maps an NCHW float batch to NCHW logits (``engines.DenseEngine``)."""

    def __init__(
        self,
        engine: Callable[[np.ndarray], np.ndarray],
        config: dict,
        batch_size: int = 4,
        threshold: float | None = None,
        input_size: Sequence[int] | None = None,
    ):
        self.engine = engine
        self.config = dict(config)
        self.batch_size = batch_size
        self.classes = list(config.get("classes") or ["foreground"])
        self.binary = len(self.classes) == 1
        self.threshold = float(threshold if threshold is not None else config.get("threshold", 0.5))
        size = input_size if input_size is not None else config.get("input_size")
        self.input_size = tuple(int(s) for s in size) if size else None

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        engine: str = "torch",
        precision: str = "fp32",
        threads: int | None = None,
        **kw: Any,
    ) -> Predictor:
        """A checkpoint folder (torch, or onnx exported once into ``PATH/onnx``, announced) or an export folder.

        ``engine``/``precision``/``threads`` pick the backend (``engines.load_engine``); ``kw`` go to ``Predictor``.
        """
        dense = load_engine(path, "dense", engine, precision, threads)
        return cls(dense, dense.config, **kw)

    @property
    def num_classes(self) -> int:
        """Number of label values including background."""
        return len(self.classes) + 1

    def _prepare(self, img: np.ndarray) -> np.ndarray:
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise DataError(f"expected an HxWx3 uint8 RGB image, got shape {img.shape} dtype {img.dtype}")
        if self.input_size is not None and img.shape[:2] != self.input_size:
            img = cv2.resize(img, (self.input_size[1], self.input_size[0]), interpolation=cv2.INTER_AREA)
        return img.transpose(2, 0, 1).astype(np.float32) / 255.0

    def probabilities(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Per image ``(C, H, W)`` float32 class probabilities at the image's size (C = 1 for binary)."""
        out: list[np.ndarray] = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            prepared = [self._prepare(im) for im in chunk]
            shapes = {p.shape for p in prepared}
            groups = [prepared] if len(shapes) == 1 else [[p] for p in prepared]
            logits_list = [lg for g in groups for lg in self.engine(np.stack(g))]
            for im, lg in zip(chunk, logits_list):
                t = torch.from_numpy(np.ascontiguousarray(lg))[None]
                if t.shape[-2:] != im.shape[:2]:
                    t = F.interpolate(t, size=im.shape[:2], mode="bilinear", align_corners=False)
                p = torch.sigmoid(t) if self.binary else torch.softmax(t, dim=1)
                out.append(p[0].numpy())
        return out

    def labels(self, probs: np.ndarray) -> np.ndarray:
        """Probabilities ``(C, H, W)`` -> uint8 label map (binary: threshold; multi-class: argmax)."""
        if self.binary:
            return (probs[0] > self.threshold).astype(np.uint8)
        return probs.argmax(0).astype(np.uint8)

    def predict(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """uint8 label maps (0 = background, i = ``classes[i-1]``) at each image's size."""
        return [self.labels(p) for p in self.probabilities(images)]

    def predict_stream(self, frames: Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(frame, label map) for a stream of frames, batched, in bounded memory."""
        buf: list[np.ndarray] = []
        for f in frames:
            buf.append(f)
            if len(buf) == self.batch_size:
                yield from zip(buf, self.predict(buf))
                buf = []
        if buf:
            yield from zip(buf, self.predict(buf))
