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


#: pycocotools' batched ``area`` sizes its output with a uint8 count (fails above 255 RLEs on numpy 2)
_AREA_CHUNK = 255


def areas(rles: list[dict[str, Any]]) -> np.ndarray:
    """Foreground pixel counts of many RLEs (int64), batched through pycocotools without decoding."""
    objs = [_as_cocoapi(r) for r in rles]
    if not objs:
        return np.zeros(0, dtype=np.int64)
    parts = [mask_utils.area(objs[i : i + _AREA_CHUNK]) for i in range(0, len(objs), _AREA_CHUNK)]
    return np.concatenate(parts).astype(np.int64)


def bboxes(rles: list[dict[str, Any]]) -> np.ndarray:
    """COCO ``[x, y, w, h]`` boxes of many RLEs as an ``Nx4`` float64 array (zeros for empty masks)."""
    objs = [_as_cocoapi(r) for r in rles]
    if not objs:
        return np.zeros((0, 4), dtype=np.float64)
    return np.asarray(mask_utils.toBbox(objs), dtype=np.float64).reshape(-1, 4)


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
    """Sum of the run lengths of an RLE (must equal ``h * w`` for a well-formed mask); ``ValueError`` if
    its counts string is malformed."""
    total = int(counts_totals([rle])[0])
    if total < 0:
        raise ValueError("malformed RLE counts (bad character, truncated value or negative run)")
    return total


def counts_look_valid(counts: list[str]) -> np.ndarray:
    """Cheap form check of compressed counts strings (bool per string), without decoding any run.

    Why: loading runs it on every RLE, so it must cost far less than ``counts_totals``: a string is
    plausible when it is not empty, every character is in COCO's alphabet (``'0'``..``'o'``) and the last
    one ends a value (no continuation bit). Sums are left to ``counts_totals`` (``validate``).
    """
    n = len(counts)
    ok = np.ones(n, dtype=bool)
    if not n:
        return ok
    lens = np.fromiter(map(len, counts), dtype=np.int64, count=n)
    joined = "".join(counts)
    if not joined.isascii():  # rare: find the strings with non-ASCII characters one by one
        ascii_ok = np.fromiter((c.isascii() for c in counts), dtype=bool, count=n)
        ok &= ascii_ok
        counts = [c if a else "" for c, a in zip(counts, ascii_ok)]
        lens = np.where(ascii_ok, lens, 0)
        joined = "".join(counts)
    ok &= lens > 0
    if not joined:
        return ok
    c = np.frombuffer(joined.encode("ascii"), dtype=np.uint8) - np.uint8(48)  # wraps: invalid chars > 63
    ends = np.cumsum(lens)
    bad_at = np.flatnonzero(c > 63)
    if bad_at.size:
        ok[np.searchsorted(ends, bad_at, side="right")] = False
    nonempty = np.flatnonzero(lens > 0)
    last = c[ends[nonempty] - 1]
    ok[nonempty[(last & 0x20) != 0]] = False  # the last value is cut off
    return ok


def counts_totals(rles: list[dict[str, Any]]) -> np.ndarray:
    """Sum of run lengths per RLE (int64; -1 where the counts are malformed), vectorised over all RLEs.

    Decodes COCO's compressed counts (``rleFrString`` in pycocotools' maskApi.c: 6-bit chunks offset by
    48, bit 5 = continuation, sign bit 4 on the last chunk, runs after the 3rd stored as deltas from the
    run two back) without building any mask, so malformed RLEs are caught before pycocotools decodes them.
    """
    out = np.full(len(rles), -1, dtype=np.int64)
    strs: list[bytes] = []
    where: list[int] = []
    for i, r in enumerate(rles):
        c = r.get("counts")
        if isinstance(c, list):
            if all(isinstance(v, int) and v >= 0 for v in c):
                out[i] = sum(c)
        elif isinstance(c, (str, bytes)):
            try:
                strs.append(c.encode("ascii") if isinstance(c, str) else c)
                where.append(i)
            except UnicodeEncodeError:
                pass
    if not strs:
        return out
    lens = np.fromiter((len(b) for b in strs), dtype=np.int64, count=len(strs))
    c = np.frombuffer(b"".join(strs), dtype=np.uint8) - np.uint8(48)  # wraps: invalid chars become > 63
    bad = np.zeros(len(strs), dtype=bool)
    totals = np.zeros(len(strs), dtype=np.int64)
    if c.size:
        str_start = np.cumsum(lens) - lens
        nonempty = lens > 0
        owner = np.zeros(c.size, dtype=np.int32)  # string index of every character
        filled = np.flatnonzero(nonempty)
        owner[str_start[filled[1:]]] = np.diff(filled)  # starts are distinct for non-empty strings
        owner = np.cumsum(owner, dtype=np.int32) + np.int32(filled[0])
        bad[owner[c > 63]] = True
        ends = (c & 0x20) == 0
        str_last = (str_start + lens - 1)[nonempty]
        bad[np.flatnonzero(nonempty)[~ends[str_last]]] = True  # last value of a string left unfinished
        ends[str_last] = True  # values never span two strings
        vend = np.flatnonzero(ends)
        vstart = np.empty_like(vend)
        vstart[0], vstart[1:] = 0, vend[:-1] + 1
        nch = vend - vstart + 1
        vowner = owner[vend]
        last = c[vend].astype(np.int64)
        d = last & 0x1F
        multi = np.flatnonzero(nch > 1)
        if multi.size:  # rare: values of more than 5 bits
            bad[vowner[multi[nch[multi] > 12]]] = True  # > 60 bits: not a count pycocotools could write
            ms, mn = vstart[multi], np.minimum(nch[multi], 12)
            acc = np.zeros(multi.size, dtype=np.int64)
            for j in range(int(mn.max())):
                sel = j < mn
                acc[sel] |= (c[ms[sel] + j].astype(np.int64) & 0x1F) << (5 * j)
            d[multi] = acc
        neg = (last & 0x10) != 0
        d[neg] -= np.left_shift(np.int64(1), 5 * np.minimum(nch[neg], 12))
        # index m of each value in its string; x[m] = d[m] + x[m-2] for m > 2 -> running sums over odd m
        # and over even m >= 2, per string: global cumsums minus their value before the string starts
        first = np.searchsorted(vend, str_start)
        m = np.arange(vend.size) - first[vowner]
        odd = (m & 1) == 1
        x = d.copy()
        for chain in (odd, ~odd & (m >= 2)):
            e = np.where(chain, d, 0)
            cs = np.cumsum(e)
            before = (cs - e)[first]  # cumsum just before each string's first value
            x[chain] = (cs - before[vowner])[chain]
        bad[vowner[x < 0]] = True
        totals = np.bincount(vowner, weights=x, minlength=len(strs)).round().astype(np.int64)
    totals[bad] = -1
    out[np.asarray(where)] = totals
    return out
