"""Label maps and color masks <-> per-class RLE: the pixel work shared by the semantic-mask formats.

``label_map_rles`` encodes every class of a label map from one scan of its column-major runs;
``color_to_label_map`` maps color-coded masks through a perfect-hash lookup table (one pass, any number of
colors); ``semantic_label_map`` rasterises a data set image back (later annotations win, DESIGN contract).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import DataError
from ..coco import CocoDataset


def label_map_rles(label_map: np.ndarray) -> dict[int, dict]:
    """Every value of a label map -> its compressed RLE, in increasing value order, from one run scan.

    The map is read in column-major order (COCO's RLE order); each value's counts are built from the
    runs' starts and ends, so the cost is one pass plus a little work per value. Encodings are identical
    to ``pycocotools.mask.encode`` of ``label_map == value``.
    """
    from pycocotools import mask as mask_utils

    h, w = label_map.shape
    flat = label_map.ravel(order="F")
    n = flat.size
    if n == 0:
        return {}
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts = np.concatenate(([0], change))
    ends = np.concatenate((change, [n]))
    vals = flat[starts]
    present = np.flatnonzero(np.bincount(vals)) if vals.dtype in (np.uint8, np.uint16) else np.unique(vals)
    out: dict[int, dict] = {}
    for v in present:
        sel = vals == v
        k = int(sel.sum())
        bounds = np.empty(2 * k + 2, np.int64)
        bounds[0], bounds[-1] = 0, n
        bounds[1:-1:2] = starts[sel]
        bounds[2:-1:2] = ends[sel]
        counts = np.diff(bounds)
        if counts[-1] == 0:
            counts = counts[:-1]
        rle = mask_utils.frPyObjects({"counts": counts.tolist(), "size": [h, w]}, h, w)
        out[int(v)] = {"size": [h, w], "counts": rle["counts"].decode("ascii")}
    return out


def value_counts(label_map: np.ndarray) -> np.ndarray:
    """Pixel count per value (index = value) of a non-negative integer map."""
    if label_map.dtype == np.uint8:
        import cv2

        return (
            cv2.calcHist([np.ascontiguousarray(label_map)], [0], None, [256], [0, 256])
            .ravel()
            .astype(np.int64)
        )
    if label_map.size and label_map.min() < 0:
        raise DataError(f"label map has negative values (min {label_map.min()})")
    return np.bincount(label_map.ravel().astype(np.int64, copy=False), minlength=2)


def _rgba_codes(rgb: np.ndarray) -> np.ndarray:
    """``H×W×3`` uint8 RGB -> ``H×W`` uint32 (bytes R, G, B, 255 little-endian): one cvtColor, no arithmetic."""
    import cv2

    rgba = cv2.cvtColor(np.ascontiguousarray(rgb[..., :3]), cv2.COLOR_RGB2RGBA)
    return rgba.view(np.uint32)[..., 0]


def _code(color: Sequence[int]) -> int:
    return int.from_bytes(bytes([int(color[0]), int(color[1]), int(color[2]), 255]), "little")


def _perfect_modulus(codes: np.ndarray) -> int:
    """Smallest modulus >= 2K under which the K color codes do not collide (a tiny perfect hash)."""
    for m in range(max(2 * len(codes), 3), 1 << 20):
        if len(np.unique(codes % m)) == len(codes):
            return m
    raise AssertionError("no collision-free modulus")  # pragma: no cover - K colors always fit


def color_to_label_map(
    rgb: np.ndarray,
    colors: dict[tuple[int, int, int], int],
    path: str | Path | None,
    ignore_colors: Iterable[tuple[int, int, int]] = (),
) -> np.ndarray:
    """Color-coded mask -> ``H×W`` uint16 label map (values from ``colors``; ignored colors -> 65535).

    A perfect-hash lookup (code mod m) plus one equality check replaces a comparison per color. Unknown
    colors raise ``DataError`` with the first unknown color and its pixel count.
    """
    if rgb.ndim != 3 or rgb.shape[2] < 3 or rgb.dtype != np.uint8:
        raise DataError(f"expected an 8-bit RGB color-coded mask, got shape {rgb.shape} {rgb.dtype}", path)
    table = list(colors.items()) + [(tuple(c), 65535) for c in ignore_colors]
    codes = np.array([_code(c) for c, _v in table] + [0], np.uint32)  # 0: alpha 0, never a pixel's code
    values = np.array([v for _c, v in table] + [65534], np.uint16)
    m = _perfect_modulus(codes[:-1]) if len(table) else 3
    lut = np.full(m, len(table), np.uint16)
    lut[codes[:-1] % m] = np.arange(len(table), dtype=np.uint16)
    img = _rgba_codes(rgb)
    idx = lut[img % np.uint32(m)]
    bad = codes[idx] != img
    if bad.any():
        code = int(img[bad][0])
        color = (code & 255, (code >> 8) & 255, (code >> 16) & 255)
        n = int((img == code).sum())
        raise DataError(
            f"unknown color {color} ({n} pixels, {int(bad.sum())} unknown in all); known colors: {sorted(colors)[:16]}",
            path,
        )
    return values[idx]


def semantic_label_map(
    ds: CocoDataset, image_id: int, value_of: dict[int, int], fill: int = 0, dtype: Any = np.uint8
) -> np.ndarray:
    """Rasterise an image's annotations to a label map (later annotations win, DESIGN contract)."""
    im = ds.images[image_id]
    out = np.full((int(im["height"]), int(im["width"])), fill, dtype=dtype)
    for a in ds.image_anns(image_id):
        v = value_of.get(a["category_id"])
        if v is None:
            continue
        out[ds.mask(a)] = v
    return out
