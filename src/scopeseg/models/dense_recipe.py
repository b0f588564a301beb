"""How a dense (semantic) model sees images: resize to its ``input_size`` and scale to [0, 1] on the way in,
logits resized back to the image and turned into probabilities and label maps on the way out.

Why here: training (best-checkpoint report), inference (``Predictor`` over any engine) and export checks use
the one recipe, and training never imports ``scopeseg.inference``. Resizing in is INTER_AREA (the training
transform's); logits go back bilinearly before the sigmoid/softmax, so masks are scored at full resolution.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError

#: NCHW float32 batch in [0, 1] -> NCHW logits (a torch module or an ONNX Runtime session behind it)
Forward = Callable[[np.ndarray], np.ndarray]


def torch_forward(model: torch.nn.Module) -> Forward:
    """A forward function over a torch module in eval mode (no gradients)."""
    model = model.eval()

    @torch.inference_mode()
    def forward(batch: np.ndarray) -> np.ndarray:
        return model(torch.from_numpy(batch)).float().cpu().numpy()

    return forward


class DenseRecipe:
    """Batched dense prediction through ``forward``: probabilities and label maps at each image's own size."""

    def __init__(
        self,
        forward: Forward,
        config: dict,
        batch_size: int = 4,
        threshold: float | None = None,
        input_size: Sequence[int] | None = None,
    ):
        self.engine = forward
        self.config = dict(config)
        self.batch_size = batch_size
        self.classes = list(config.get("classes") or ["foreground"])
        self.binary = len(self.classes) == 1
        self.threshold = float(threshold if threshold is not None else config.get("threshold", 0.5))
        size = input_size if input_size is not None else config.get("input_size")
        self.input_size = tuple(int(s) for s in size) if size else None

    @property
    def num_classes(self) -> int:
        """Number of label values including background."""
        return len(self.classes) + 1

    def prepare(self, img: np.ndarray) -> np.ndarray:
        """HxWx3 uint8 RGB -> 3xhxw float32 in [0, 1] at the model's input size."""
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
            prepared = [self.prepare(im) for im in chunk]
            groups = [prepared] if len({p.shape for p in prepared}) == 1 else [[p] for p in prepared]
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
