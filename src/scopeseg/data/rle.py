"""RLE helpers over ``pycocotools.mask``: encode/decode/area/bbox and polygon conversion.

RLE is the canonical mask encoding: ``{"size": [h, w], "counts": str}`` (compressed, column-major as COCO).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pycocotools import mask as mask_utils


def encode(mask: np.ndarray) -> dict[str, Any]:
    """Binary ``HxW`` mask -> compressed RLE with ``counts`` as str (JSON-ready)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8, copy=False)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def encode_many(masks: np.ndarray) -> list[dict[str, Any]]:
    """``NxHxW`` binary masks -> list of RLEs (one pycocotools call)."""
    if len(masks) == 0:
        return []
    arr = np.asfortranarray(np.moveaxis(masks.astype(np.uint8, copy=False), 0, -1))
    out = mask_utils.encode(arr)
    for r in out:
        r["counts"] = r["counts"].decode("ascii")
    return out


def _as_cocoapi(rle: dict[str, Any]) -> dict[str, Any]:
    counts = rle["counts"]
    if isinstance(counts, list):  # uncompressed RLE
        h, w = rle["size"]
        return mask_utils.frPyObjects(rle, h, w)
    if isinstance(counts, str):
        return {"size": list(rle["size"]), "counts": counts.encode("ascii")}
    return rle


def decode(rle: dict[str, Any]) -> np.ndarray:
    """RLE (compressed or uncompressed) -> bool ``HxW``."""
    return mask_utils.decode(_as_cocoapi(rle)).astype(bool)


def area(rle: dict[str, Any]) -> int:
    """Foreground pixel count of an RLE (no decoding)."""
    return int(mask_utils.area(_as_cocoapi(rle)))


def bbox(rle: dict[str, Any]) -> list[float]:
    """COCO ``[x, y, w, h]`` of an RLE's foreground (zeros when empty)."""
    return [float(v) for v in mask_utils.toBbox(_as_cocoapi(rle))]


def compress(rle: dict[str, Any]) -> dict[str, Any]:
    """Any RLE form -> compressed with str counts."""
    r = _as_cocoapi(rle)
    return {"size": [int(r["size"][0]), int(r["size"][1])], "counts": r["counts"].decode("ascii")}


def iou_matrix(dt: list[dict[str, Any]], gt: list[dict[str, Any]]) -> np.ndarray:
    """Pairwise IoU between RLE lists (pycocotools ``iou``, no crowd)."""
    if not dt or not gt:
        return np.zeros((len(dt), len(gt)))
    return np.asarray(
        mask_utils.iou([_as_cocoapi(r) for r in dt], [_as_cocoapi(r) for r in gt], [0] * len(gt))
    )


def polygons_to_rle(polygons: list[list[float]] | list[float], height: int, width: int) -> dict[str, Any]:
    """COCO polygons (list of flat ``[x0,y0,x1,y1,...]`` rings, or one flat ring) -> one merged RLE.

    Rings with fewer than 3 points are ignored; rings are unioned (COCO has no polygon holes). Pixel
    ``(x, y)`` covers ``[x, x+1) x [y, y+1)`` (pycocotools' rasteriser).
    """
    if polygons and not isinstance(polygons[0], (list, tuple)):
        polygons = [polygons]  # type: ignore[list-item]
    valid = [p for p in polygons if len(p) >= 6]  # type: ignore[arg-type]
    if not valid:
        return encode(np.zeros((height, width), dtype=np.uint8))
    # a 4-number ring would be read as a bbox by frPyObjects; rings here have >= 6 numbers
    rles = mask_utils.frPyObjects([[float(v) for v in p] for p in valid], height, width)  # type: ignore[union-attr]
    merged = mask_utils.merge(rles)
    merged["counts"] = merged["counts"].decode("ascii")
    return merged


def mask_to_polygons(mask: np.ndarray, min_points: int = 3) -> list[list[float]]:
    """Binary mask -> COCO polygons tracing pixel edges (one ring per outer contour).

    Rings follow pixel borders (corner coordinates), so rasterising them with ``polygons_to_rle`` gives
    back the same mask for hole-free shapes; holes are not represented (COCO polygons cannot subtract),
    so callers that need exact holes must keep RLE. Used for export to polygon-only tools.
    """
    import cv2

    m = np.ascontiguousarray(mask.astype(np.uint8))
    # contours of the 2x-upsampled mask pass through pixel centres of the upsampled grid; (u + 1) // 2
    # maps left/top borders (even u) and right/bottom borders (odd u) onto pixel corner coordinates.
    up = np.repeat(np.repeat(m, 2, axis=0), 2, axis=1)
    contours, _ = cv2.findContours(up, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = []
    for c in contours:
        pts = (c.reshape(-1, 2) + 1) // 2
        keep = np.ones(len(pts), dtype=bool)  # drop repeated consecutive corners
        keep[1:] = np.any(pts[1:] != pts[:-1], axis=1)
        pts = pts[keep]
        if len(pts) < min_points:
            continue
        polys.append(pts.astype(float).ravel().tolist())
    return polys


def counts_total(rle: dict[str, Any]) -> int:
    """Sum of the run lengths of an RLE (must equal ``h * w`` for a well-formed mask).

    Decodes COCO's compressed counts string (6-bit chunks with continuation bit, deltas from the run two
    back, as ``rleFrString`` in pycocotools' maskApi.c) without building the mask.
    """
    counts = rle["counts"]
    if isinstance(counts, list):
        return int(sum(counts))
    s = counts.encode("ascii") if isinstance(counts, str) else counts
    runs: list[int] = []
    p, n = 0, len(s)
    while p < n:
        x, k, more = 0, 0, True
        while more:
            if p >= n:
                raise ValueError("truncated RLE counts string")
            c = s[p] - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(runs) > 2:
            x += runs[-2]
        runs.append(x)
    if any(r < 0 for r in runs):
        raise ValueError("negative run length in RLE counts")
    return int(sum(runs))
