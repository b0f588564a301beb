"""Colours and drawing: the palettes, mask overlays, image grids, captions and legends.

The only place colours live (DESIGN): data, inference, evaluation and reports take their display colours
from here. Every function takes and returns uint8 RGB ``HxWx3`` arrays, colours are RGB 0..255 tuples (or
``#rrggbb``), and later masks paint over earlier ones, as in ``CocoDataset.semantic_mask`` (DESIGN: later
annotations win). Data set previews (frames + masks from a data set) are ``data/preview.py``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

import numpy as np

from .io import to_rgb_uint8

log = logging.getLogger(__name__)

ColorLike = Sequence[int] | Sequence[float] | str
RGB = tuple[int, int, int]

#: distinct, colour-blind-friendly-ish palette for classes / instances / categories without a colour
PALETTE: list[RGB] = [
    (0, 255, 0), (255, 64, 64), (64, 128, 255), (255, 200, 0), (200, 0, 255), (0, 230, 230),
    (255, 128, 0), (128, 255, 128), (255, 0, 128), (160, 100, 40), (100, 160, 255), (230, 230, 230),
    (0, 128, 64), (128, 0, 0), (0, 0, 160), (128, 128, 0),
]  # fmt: skip

#: category colours the synthetic generator writes (instruments in ``INSTRUMENT_STYLES`` order, then polyp)
SYNTHETIC_CATEGORY_COLORS: list[RGB] = [
    (0, 200, 255), (255, 200, 0), (160, 80, 255), (255, 90, 40), (60, 220, 90), (255, 60, 200),
    (255, 255, 120),
]  # fmt: skip

#: colours of prompted masks and their boxes, by prompt order (``segment`` overlays)
PROMPT_COLORS: list[RGB] = [
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230),
]  # fmt: skip

#: error map colours of a foreground comparison: true positive, false positive, false negative
ERROR_COLORS: dict[str, RGB] = {"tp": (40, 170, 60), "fp": (220, 50, 50), "fn": (50, 90, 230)}


def palette_color(index: int) -> RGB:
    """``PALETTE`` colour number ``index`` (wrapping around)."""
    return PALETTE[index % len(PALETTE)]


def colorize_labels(labels: np.ndarray) -> np.ndarray:
    """HxW label map -> uint8 RGB: 0 black, label k the ``PALETTE`` colour of class k (values clipped to 255)."""
    lut = np.array([(0, 0, 0)] + [palette_color(i) for i in range(255)], dtype=np.uint8)
    return lut[np.clip(labels.astype(np.int64), 0, 255)]


def error_map(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """uint8 RGB map of two HxW foreground masks: ``ERROR_COLORS`` for TP / FP / FN, black elsewhere."""
    g, q = np.asarray(gt, bool), np.asarray(pred, bool)
    out = np.zeros((*g.shape, 3), np.uint8)
    out[g & q] = ERROR_COLORS["tp"]
    out[q & ~g] = ERROR_COLORS["fp"]
    out[g & ~q] = ERROR_COLORS["fn"]
    return out


def to_color(color: ColorLike) -> tuple[int, int, int]:
    """``(r, g, b)`` 0..255 ints from ints, 0..1 floats or ``#rrggbb``."""
    if isinstance(color, str):
        c = color.lstrip("#")
        if len(c) != 6:
            raise ValueError(f"colour {color!r} is not #rrggbb")
        return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)
    vals = list(color)[:3]
    if all(isinstance(v, float) for v in vals) and max(vals) <= 1.0:
        vals = [v * 255.0 for v in vals]
    return tuple(int(round(min(max(v, 0), 255))) for v in vals)  # type: ignore[return-value]


def _as_label_map(masks: np.ndarray, colors) -> tuple[np.ndarray, dict[int, tuple[int, int, int]]]:
    """N×H×W bool masks + colour list -> (int32 label map 1..N, {label: colour}); later masks win."""
    n = masks.shape[0]
    label = np.zeros(masks.shape[1:], np.int32)
    for i in range(n):
        label[masks[i].astype(bool, copy=False)] = i + 1
    cols = list(colors) if colors is not None else [palette_color(i) for i in range(n)]
    if len(cols) < n:
        raise ValueError(f"{n} masks but {len(cols)} colours")
    return label, {i + 1: to_color(cols[i]) for i in range(n)}


def overlay(
    image: np.ndarray,
    masks: np.ndarray,
    colors: Mapping[int, ColorLike] | Sequence[ColorLike] | None = None,
    alpha: float = 0.5,
    contours: bool = True,
    contour_width: int | None = None,
) -> np.ndarray:
    """Blend masks onto an image: an HxW label map with ``{class_index: colour}`` (0 = background), or
    N×H×W bool masks with one colour each. Contours are drawn at full opacity inside each region.

    Labels without a colour are left unpainted (pass a colour for every class you want to see); with
    ``colors=None`` labels/instances take ``PALETTE`` colours by index.
    """
    import cv2

    img = to_rgb_uint8(np.asarray(image))
    masks = np.asarray(masks)
    if masks.ndim == 3:
        label, cmap = _as_label_map(masks, colors)
    elif masks.ndim == 2:
        label = masks.astype(np.int32, copy=False)
        if colors is None:
            present = [int(v) for v in np.unique(label) if v > 0]
            cmap = {v: palette_color(v - 1) for v in present}
        elif isinstance(colors, Mapping):
            cmap = {int(k): to_color(c) for k, c in colors.items()}
        else:
            cmap = {i: to_color(c) for i, c in enumerate(colors) if i > 0}
    else:
        raise ValueError(f"masks must be HxW or NxHxW, got shape {masks.shape}")
    if label.shape != img.shape[:2]:
        raise ValueError(f"mask size {label.shape} != image size {img.shape[:2]}")
    if not cmap or label.max(initial=0) <= 0:
        return img.copy()
    top = max(int(label.max()), max(cmap))
    lut = np.zeros((max(top + 1, 256), 3), np.uint8)
    painted = np.zeros(max(top + 1, 256), np.uint8)
    for k, c in cmap.items():
        if 0 < k <= top:
            lut[k] = c
            painted[k] = 1
    if label.min() < 0:
        label = np.clip(label, 0, top)
    if top <= 255:  # table look-ups in cv2 (the common case: classes or a few instances)
        label = label.astype(np.uint8)
        color_img = cv2.LUT(cv2.merge([label, label, label]), lut[:256].reshape(256, 1, 3))
        region = cv2.LUT(label, painted[:256])
    else:
        color_img, region = lut[label], painted[label]
        label = label.astype(np.float32)  # exact for < 2**24 labels; cv2 morphology has no int32
    out = img.copy()
    if not region.any():
        return out
    blend = cv2.addWeighted(img, 1.0 - alpha, color_img, alpha, 0.0)
    cv2.copyTo(blend, region, out)
    if contours:
        # a pixel is on a contour when a 4-neighbour has another label; drawn inside painted regions only
        cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
        edge = (cv2.morphologyEx(label, cv2.MORPH_GRADIENT, cross) != 0).astype(np.uint8)
        width = contour_width or max(1, round(min(img.shape[:2]) / 400))
        if width > 1:
            edge = cv2.dilate(edge, np.ones((2 * width - 1, 2 * width - 1), np.uint8))
        cv2.copyTo(color_img, edge & region, out)
    return out


def _fit(image: np.ndarray, h: int, w: int, pad_value: int) -> np.ndarray:
    """Resize keeping the aspect ratio and letterbox into ``h``×``w``."""
    import cv2

    img = to_rgb_uint8(image)
    ih, iw = img.shape[:2]
    if (ih, iw) == (h, w):
        return img
    s = min(h / ih, w / iw)
    nh, nw = max(1, round(ih * s)), max(1, round(iw * s))
    small = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    out = np.full((h, w, 3), pad_value, np.uint8)
    y, x = (h - nh) // 2, (w - nw) // 2
    out[y : y + nh, x : x + nw] = small
    return out


def grid(
    images: Sequence[np.ndarray],
    ncols: int | None = None,
    pad: int = 4,
    pad_value: int = 0,
    cell_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Tile images row by row (cells sized like the first image, or ``cell_size`` h×w; letterboxed)."""
    if not len(images):
        raise ValueError("grid of no images")
    n = len(images)
    ncols = max(1, min(ncols or math.ceil(math.sqrt(n)), n))
    nrows = math.ceil(n / ncols)
    ch, cw = cell_size or images[0].shape[:2]
    out = np.full((nrows * ch + (nrows + 1) * pad, ncols * cw + (ncols + 1) * pad, 3), pad_value, np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, ncols)
        y, x = pad + r * (ch + pad), pad + c * (cw + pad)
        out[y : y + ch, x : x + cw] = _fit(im, ch, cw, pad_value)
    return out


def caption(image: np.ndarray, text: str, scale: float | None = None) -> np.ndarray:
    """Copy of ``image`` with ``text`` on a dark band at the top-left (frame names in grids)."""
    import cv2

    out = to_rgb_uint8(image).copy()
    scale = scale or max(0.35, min(out.shape[:2]) / 600)
    thick = max(1, round(scale * 1.5))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    band = out[: th + base + 6, : tw + 8]
    band[:] = (band * 0.35).astype(np.uint8)
    cv2.putText(out, text, (4, th + 3), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return out


def legend_strip(
    names_colors: Mapping[str, ColorLike] | Sequence[tuple[str, ColorLike]],
    width: int,
    row_height: int = 24,
    background: int = 24,
) -> np.ndarray:
    """A strip ``width`` pixels wide of colour swatches and names, wrapped onto as many rows as needed."""
    import cv2

    items = list(names_colors.items()) if isinstance(names_colors, Mapping) else list(names_colors)
    scale = row_height / 40
    thick = 1
    sw = int(row_height * 0.7)
    rows: list[list[tuple[str, tuple[int, int, int], int]]] = [[]]
    x = 8
    for name, color in items:
        tw = cv2.getTextSize(str(name), cv2.FONT_HERSHEY_SIMPLEX, scale, thick)[0][0]
        need = sw + 6 + tw + 16
        if rows[-1] and x + need > width:
            rows.append([])
            x = 8
        rows[-1].append((str(name), to_color(color), x))
        x += need
    out = np.full((row_height * len(rows) + 4, width, 3), background, np.uint8)
    for r, row in enumerate(rows):
        y = 2 + r * row_height
        for name, color, x in row:
            y0 = y + (row_height - sw) // 2
            cv2.rectangle(out, (x, y0), (x + sw, y0 + sw), color, -1)
            cv2.putText(
                out,
                name,
                (x + sw + 6, y + int(row_height * 0.7)),
                cv2.FONT_HERSHEY_SIMPLEX,
                scale,
                (235, 235, 235),
                thick,
                cv2.LINE_AA,
            )
    return out
