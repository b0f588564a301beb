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
    return np.asarray(mask_utils.iou([_as_cocoapi(r) for r in dt], [_as_cocoapi(r) for r in gt], [0] * len(gt)))


def polygons_to_rle(polygons: list[list[float]], height: int, width: int) -> dict[str, Any]:
    """COCO polygons (list of flat ``[x0,y0,x1,y1,...]``) -> one merged RLE (even-odd holes not implied)."""
    valid = [p for p in polygons if len(p) >= 6]
    if not valid:
        return encode(np.zeros((height, width), dtype=np.uint8))
    rles = mask_utils.frPyObjects([list(map(float, p)) for p in valid], height, width)
    merged = mask_utils.merge(rles)
    merged["counts"] = merged["counts"].decode("ascii")
    return merged


def mask_to_polygons(mask: np.ndarray, min_points: int = 3) -> list[list[float]]:
    """Binary mask -> COCO polygons (outer contours and holes as separate rings, pixel-centre coords).

    Holes are returned as rings too: COCO's rasteriser does not subtract them, so callers that need
    exact holes must keep RLE. Used for export to polygon-only tools.
    """
    import cv2

    m = np.ascontiguousarray(mask.astype(np.uint8))
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    polys = []
    for c in contours:
        c = c.reshape(-1, 2).astype(float)
        if len(c) < min_points:
            continue
        polys.append(c.flatten().tolist())
    return polys
