"""Helpers of the video tests: a square-finding segmenter with exact answers, frames of a moving square."""

from __future__ import annotations

import numpy as np

from scopeseg.inference.prompt import PromptResult


class BrightInBox:
    """A promptable segmenter with known answers: the bright pixels (R > 128) inside the prompt box.

    Why: re-propagation and correction rules are checked on exact masks, independent of any network.
    """

    def __init__(self) -> None:
        self.image = None
        self.encoded = 0

    def set_image(self, image: np.ndarray) -> None:
        self.image = image
        self.encoded += 1

    def predict(self, boxes=None, points=None, point_labels=None, mask_input=None, multimask=False):
        bright = self.image[..., 0] > 128
        masks, scores = [], []
        n = len(boxes) if boxes is not None else len(points)
        for i in range(n):
            m = np.zeros_like(bright)
            if boxes is not None:
                x0, y0, x1, y1 = (int(round(v)) for v in boxes[i])
                m[y0:y1, x0:x1] = bright[y0:y1, x0:x1]
            else:
                x, y = (int(v) for v in points[i][0])
                m = bright.copy() if bright[y, x] else m
            masks.append(m)
            scores.append(1.0 if m.any() else 0.0)
        masks = np.stack(masks)
        return PromptResult(masks, np.array(scores), np.zeros((n, 4, 4), np.float32))


def square_frames(n: int = 10, size: tuple[int, int] = (60, 80), step: int = 3, side: int = 16):
    """Frames with one bright square moving right by ``step`` pixels per frame (and its true masks)."""
    frames, masks = [], []
    for t in range(n):
        f = np.full((*size, 3), 30, np.uint8)
        m = np.zeros(size, bool)
        x = 5 + step * t
        m[20 : 20 + side, x : x + side] = True
        f[m] = 220
        frames.append(f)
        masks.append(m)
    return frames, masks
