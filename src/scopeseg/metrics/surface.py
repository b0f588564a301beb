"""Surface metrics (NSD, HD / robust HD, ASD / ASSD) in the two conventions the field uses, 2D and 3D.

Why: "NSD" and "HD95" mean different numbers in different scorers. ``deepmind`` = google-deepmind
``surface-distance`` (surfels on voxel corners from the 2^d neighbour code, each weighted by its contour length
/ area; = MONAI ``use_subvoxels=True`` for NSD). ``monai`` = MONAI's default (edge voxels = mask minus its
erosion, weight 1; euclidean / chessboard / taxicab). Both are computed on the crop of the union bounding box
with nearest-surface queries on a KD-tree (or a distance transform when surfaces are dense).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from ..errors import ConfigError, DataError
from ._surfel_normals import NORMALS_X8

Convention = Literal["deepmind", "monai"]
DistanceMetric = Literal["euclidean", "chessboard", "taxicab"]
EDT_SWITCH = 16  # use a distance transform when queries exceed 1/16 of the crop (dense surfaces)
CONVENTIONS: tuple[str, ...] = ("deepmind", "monai")
DISTANCE_METRICS: dict[str, float] = {"euclidean": 2.0, "chessboard": math.inf, "taxicab": 1.0}


# ----------------------------------------------------------------------------------------------- inputs
def as_mask(a: np.ndarray) -> np.ndarray:
    """Return ``a`` as a numpy bool array (non-zero = foreground)."""
    a = np.asarray(a)
    return a if a.dtype == bool else a != 0


def check_pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate a (pred, gt) pair of same-shape 2D/3D masks; returns bool arrays."""
    pred, gt = as_mask(pred), as_mask(gt)
    if pred.shape != gt.shape:
        raise DataError(f"prediction shape {pred.shape} differs from ground-truth shape {gt.shape}")
    if pred.ndim not in (2, 3):
        raise DataError(f"surface metrics need 2D or 3D masks, got shape {pred.shape}")
    return pred, gt


def normalize_spacing(spacing: float | Sequence[float] | None, ndim: int) -> tuple[float, ...]:
    """Per-axis spacing tuple (arrays' axis order); None = unit spacing, a number = isotropic."""
    if spacing is None:
        return (1.0,) * ndim
    if np.isscalar(spacing):
        spacing = (float(spacing),) * ndim  # type: ignore[arg-type]
    sp = tuple(float(s) for s in np.asarray(spacing, dtype=np.float64).ravel())
    if len(sp) != ndim:
        raise ConfigError(f"spacing {sp} has {len(sp)} values for {ndim}D masks")
    if not all(math.isfinite(s) and s > 0 for s in sp):
        raise ConfigError(f"spacing {sp} must be positive and finite")
    return sp


# ------------------------------------------------------------------------------------------- surfels
@lru_cache(maxsize=64)
def surfel_measure_table(spacing: tuple[float, ...]) -> np.ndarray:
    """Contour length (2D, 16 codes) or surface area (3D, 256 codes) of each neighbour code at ``spacing``.

    Why: the DeepMind convention weights surfels by these tables (lookup_tables.py; same values as MONAI's
    ``get_code_to_measure_table``). Code bits: 2D kernel [[8, 4], [2, 1]], 3D [[[128, 64], [32, 16]], [[8, 4], [2, 1]]].
    """
    if len(spacing) == 2:
        first, second = spacing
        diag = 0.5 * math.sqrt(first**2 + second**2)
        table = np.zeros(16)
        for codes, value in (
            ((0b0001, 0b0010, 0b0100, 0b1000, 0b0111, 0b1011, 0b1101, 0b1110), diag),
            ((0b0011, 0b1100), second),
            ((0b0101, 0b1010), first),
            ((0b0110, 0b1001), 2 * diag),
        ):
            table[list(codes)] = value
        return table
    s0, s1, s2 = spacing
    scale = np.array([s1 * s2, s0 * s2, s0 * s1])
    table = np.zeros(256)
    for code, normals in enumerate(NORMALS_X8):
        if normals:
            n = np.asarray(normals, dtype=np.float64) / 8.0 * scale
            table[code] = np.linalg.norm(n, axis=1).sum()
    return table


def _bbox(union: np.ndarray) -> tuple[slice, ...] | None:
    """Bounding box of the foreground (None if empty), from contiguous row projections (fast reductions)."""
    rows = np.flatnonzero(union.reshape(union.shape[0], -1).any(axis=1))
    if rows.size == 0:
        return None
    first = slice(int(rows[0]), int(rows[-1]) + 1)
    if union.ndim == 1:
        return (first,)
    rest = _bbox(union[first].any(axis=0))
    return None if rest is None else (first, *rest)


def _padded(crop: np.ndarray) -> np.ndarray:
    p = np.zeros(tuple(n + 2 for n in crop.shape), np.uint8)
    p[tuple(slice(1, -1) for _ in crop.shape)] = crop
    return p


def _neighbour_codes(crop: np.ndarray) -> np.ndarray:
    """Neighbour code of every voxel corner of ``crop`` (zero-padded by one on each side): shape n+1.

    Built axis by axis from the last: pairs of neighbours combine into 2-, 4-, 8-bit codes, so d axes cost 2d
    array operations; the bit order is the DeepMind kernel's ([[8, 4], [2, 1]] in 2D).
    """
    cur = _padded(crop)
    bits = 1
    for ax in reversed(range(crop.ndim)):
        lo = tuple(slice(None, -1) if a == ax else slice(None) for a in range(crop.ndim))
        hi = tuple(slice(1, None) if a == ax else slice(None) for a in range(crop.ndim))
        nxt = np.left_shift(cur[lo], bits)
        nxt |= cur[hi]
        cur = nxt
        bits *= 2
    return cur


def _edge_voxels(crop: np.ndarray) -> np.ndarray:
    """Mask voxels that are not interior under a cross structuring element (outside counts as background).

    Why: MONAI's default edges are ``binary_erosion(seg) ^ seg`` with scipy's default structure, border 0.
    """
    p = _padded(crop).view(bool)
    interior = crop.copy()
    for ax in range(crop.ndim):
        for shift in (0, 2):
            sl = [slice(1, s + 1) for s in crop.shape]
            sl[ax] = slice(shift, shift + crop.shape[ax])
            interior &= p[tuple(sl)]
    return crop & ~interior


def _nearest(
    query: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...], p: float, shape: tuple[int, ...]
) -> np.ndarray:
    """Distance from each query point (integer coords) to the closest reference point.

    Distances are recomputed from integer offsets times spacing, as scipy's EDT does, so values at a tolerance
    boundary compare exactly like the references'.
    """
    if query.shape[0] == 0:
        return np.zeros(0)
    if ref.shape[0] == 0:
        return np.full(query.shape[0], np.inf)
    sp = np.asarray(spacing)
    if p == 2.0 and query.shape[0] * EDT_SWITCH > int(np.prod(shape)):
        # dense surfaces: one exact distance transform of the crop is cheaper than a tree
        feature = np.zeros(shape, dtype=bool)
        feature[tuple(ref.T)] = True
        _, ft = ndimage.distance_transform_edt(~feature, sampling=spacing, return_indices=True)
        nearest = np.stack([ft[ax][tuple(query.T)] for ax in range(len(shape))], axis=1)
    else:
        scale = sp if p == 2.0 else np.ones_like(sp)
        tree = cKDTree(ref * scale, leafsize=32, balanced_tree=False, compact_nodes=False)
        _, idx = tree.query(query * scale, k=1, p=p)
        nearest = ref[idx]
    diff = (nearest - query).T.astype(np.float64)  # (ndim, n): per-axis rows, summed in axis order as scipy
    if p == 2.0:
        total = (diff[0] * sp[0]) ** 2
        for ax in range(1, diff.shape[0]):
            total += (diff[ax] * sp[ax]) ** 2
        return np.sqrt(total)
    diff = np.abs(diff)
    out = diff[0].copy()
    for ax in range(1, diff.shape[0]):
        out = np.maximum(out, diff[ax]) if p == math.inf else out + diff[ax]
    return out


@lru_cache(maxsize=64)
def _shell_offsets(ndim: int, spacing: tuple[float, ...], p: float) -> tuple[np.ndarray, np.ndarray]:
    """Integer offsets within 3 x min(spacing) of the origin, sorted by distance (computed as ``_nearest``)."""
    radius = 3.0 * min(spacing)
    ext = [int(math.floor(radius / s + 1e-9)) for s in spacing]
    grids = np.meshgrid(*[np.arange(-e, e + 1) for e in ext], indexing="ij")
    offs = np.stack([g.ravel() for g in grids], axis=1)
    a = np.abs(offs).T.astype(np.float64)
    if p == 2.0:
        d = (a[0] * spacing[0]) ** 2
        for ax in range(1, ndim):
            d = d + (a[ax] * spacing[ax]) ** 2
        d = np.sqrt(d)
        limit = radius
    else:
        d = a.max(axis=0) if p == math.inf else a.sum(axis=0)
        limit = float(min(ext))
    keep = d <= limit + 1e-12
    order = np.argsort(d[keep], kind="stable")
    return offs[keep][order], d[keep][order]


def _nearest_on_grid(
    query: np.ndarray, ref: np.ndarray, ref_mask: np.ndarray, spacing: tuple[float, ...], p: float
) -> np.ndarray:
    """Exact nearest distances: ring search on the reference grid for near points, ``_nearest`` for the rest.

    Offsets are tried in increasing distance, so the first hit is the nearest; every offset closer than the
    search radius is tried, so a point without a hit is handed to the KD-tree / distance transform.
    """
    n = query.shape[0]
    if n == 0 or ref.shape[0] == 0:
        return _nearest(query, ref, spacing, p, ref_mask.shape)
    offs, dists = _shell_offsets(query.shape[1], spacing, p)
    ext = np.maximum(np.abs(offs).max(axis=0), 1)  # >= 1: the boundary test below looks one step away
    padded = np.zeros(tuple(int(s + 2 * e) for s, e in zip(ref_mask.shape, ext)), dtype=bool)
    padded[tuple(slice(int(e), int(e) + s) for s, e in zip(ref_mask.shape, ext))] = ref_mask
    strides = np.array([int(np.prod(padded.shape[i + 1 :])) for i in range(padded.ndim)], dtype=np.int64)
    base = (query + ext) @ strides
    delta = offs @ strides
    flat = padded.ravel()
    out = np.full(n, np.nan)
    pending = np.arange(n)
    for k in range(len(delta)):
        hit = flat[base[pending] + delta[k]]
        if hit.any():
            out[pending[hit]] = dists[k]
            pending = pending[~hit]
            if pending.size == 0:
                return out
    # The remaining points lie outside the reference set, and the nearest point of a grid set to an outside
    # point always has an axis neighbour outside the set (a step toward the query would be closer), so only
    # those boundary points go into the tree (the whole area for filled sets, e.g. slab faces).
    ref_flat = (ref + ext) @ strides
    inner = np.ones(ref.shape[0], dtype=bool)
    for st in strides:
        inner &= flat[ref_flat + st] & flat[ref_flat - st]
    out[pending] = _nearest(query[pending], ref[~inner], spacing, p, ref_mask.shape)
    return out


# --------------------------------------------------------------------------------------- distances
@dataclass(frozen=True)
class SurfaceDistances:
    """Distances from every surfel of one surface to the other surface, with the surfels' weights.

    Why: one distance computation serves NSD, HD at any percentile and ASD/ASSD. ``convention`` decides the
    weighting and the empty-mask rules of each metric (see the module docstring).
    """

    distances_gt_to_pred: np.ndarray
    distances_pred_to_gt: np.ndarray
    surfel_areas_gt: np.ndarray
    surfel_areas_pred: np.ndarray
    convention: str = "deepmind"

    # ---- DeepMind convention (area weighted) ------------------------------------------------------
    def surface_overlap(self, tolerance: float) -> tuple[float, float]:
        """(fraction of GT surface within tolerance of pred, fraction of pred surface within tolerance of GT)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            gt = np.sum(self.surfel_areas_gt[self.distances_gt_to_pred <= tolerance]) / np.sum(
                self.surfel_areas_gt
            )
            pr = np.sum(self.surfel_areas_pred[self.distances_pred_to_gt <= tolerance]) / np.sum(
                self.surfel_areas_pred
            )
        return float(gt), float(pr)

    def nsd(self, tolerance: float) -> float:
        """Normalised surface Dice at ``tolerance`` (both surfaces empty -> NaN, one empty -> 0)."""
        ok_gt = np.sum(self.surfel_areas_gt[self.distances_gt_to_pred <= tolerance])
        ok_pr = np.sum(self.surfel_areas_pred[self.distances_pred_to_gt <= tolerance])
        total = np.sum(self.surfel_areas_gt) + np.sum(self.surfel_areas_pred)
        return float((ok_gt + ok_pr) / total) if total > 0 else math.nan

    def average_surface_distance(self) -> tuple[float, float]:
        """(mean GT->pred distance, mean pred->GT distance), area weighted; an empty side gives NaN, its partner inf."""
        return _weighted_mean(self.distances_gt_to_pred, self.surfel_areas_gt), _weighted_mean(
            self.distances_pred_to_gt, self.surfel_areas_pred
        )

    def assd(self) -> float:
        """Average symmetric surface distance: the two one-sided means averaged."""
        a, b = self.average_surface_distance()
        return (a + b) / 2.0

    def hausdorff(self, percent: float = 100.0) -> float:
        """Robust Hausdorff: max of the two area-weighted ``percent``-th percentile distances (DeepMind rule)."""
        return max(
            _weighted_percentile(self.distances_gt_to_pred, self.surfel_areas_gt, percent),
            _weighted_percentile(self.distances_pred_to_gt, self.surfel_areas_pred, percent),
        )


def _weighted_mean(d: np.ndarray, w: np.ndarray) -> float:
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.sum(d * w) / np.sum(w))


def _weighted_percentile(d: np.ndarray, w: np.ndarray, percent: float) -> float:
    """DeepMind's rule: sort by (distance, area), first index where cumulative area fraction >= percent/100."""
    if d.size == 0:
        return math.inf
    order = np.lexsort((w, d))
    ws = w[order]
    cum = np.cumsum(ws) / np.sum(ws)
    idx = int(np.searchsorted(cum, percent / 100.0))
    return float(d[order][min(idx, d.size - 1)])


def _empty_distances(convention: str) -> SurfaceDistances:
    e = np.zeros(0)
    return SurfaceDistances(e, e, e, e, convention)


def surface_distances(
    pred: np.ndarray,
    gt: np.ndarray,
    spacing: float | Sequence[float] | None = None,
    convention: Convention = "deepmind",
    distance_metric: DistanceMetric = "euclidean",
) -> SurfaceDistances:
    """Surfel distances between ``pred`` and ``gt`` (2D or 3D bool masks) in the named convention.

    ``deepmind``: corner surfels weighted by contour length / area (google-deepmind surface-distance);
    ``monai``: edge voxels with weight 1 (MONAI default). chessboard/taxicab ignore spacing, as MONAI does.
    """
    pred, gt = check_pair(pred, gt)
    if convention not in CONVENTIONS:
        raise ConfigError(
            f"unknown surface convention {convention!r}; choose one of {', '.join(CONVENTIONS)}"
        )
    if distance_metric not in DISTANCE_METRICS:
        raise ConfigError(
            f"unknown distance_metric {distance_metric!r}; choose one of {', '.join(DISTANCE_METRICS)}"
        )
    sp = normalize_spacing(spacing, pred.ndim)
    box = _bbox(pred | gt)
    if box is None:
        return _empty_distances(convention)
    cp, cg = pred[box], gt[box]
    if convention == "deepmind" and cp.ndim == 3 and 1 in cp.shape:
        return _slab_distances(cp, cg, sp, cp.shape.index(1), DISTANCE_METRICS[distance_metric])
    if convention == "deepmind":
        full = 2 ** (2**pred.ndim) - 1
        code_p, code_g = _neighbour_codes(cp), _neighbour_codes(cg)
        # edge corners: code not in {0, full}; (code - 1) wraps 0 to 255 so one compare does it
        edge_p = (code_p - np.uint8(1)) < full - 1
        edge_g = (code_g - np.uint8(1)) < full - 1
        table = surfel_measure_table(sp)
        idx_p, idx_g = np.flatnonzero(edge_p), np.flatnonzero(edge_g)
        area_p, area_g = table[code_p.ravel()[idx_p]], table[code_g.ravel()[idx_g]]
    else:
        edge_p, edge_g = _edge_voxels(cp), _edge_voxels(cg)
        idx_p, idx_g = np.flatnonzero(edge_p), np.flatnonzero(edge_g)
        area_p, area_g = np.ones(idx_p.size), np.ones(idx_g.size)
    shape = edge_p.shape
    pts_p = np.stack(np.unravel_index(idx_p, shape), axis=1)
    pts_g = np.stack(np.unravel_index(idx_g, shape), axis=1)
    p = DISTANCE_METRICS[distance_metric]
    # near surfels are found by a ring search on the other surface's grid, far ones by a KD-tree
    d_gp = _nearest_on_grid(pts_g, pts_p, edge_p, sp, p)
    d_pg = _nearest_on_grid(pts_p, pts_g, edge_g, sp, p)
    return SurfaceDistances(d_gp, d_pg, area_g, area_p, convention)


@lru_cache(maxsize=8)
def _slab_code_maps(axis: int) -> tuple[np.ndarray, np.ndarray]:
    """2D neighbour code -> 3D code of the corners below (level 0) and above (level 1) a one-voxel slab."""
    maps = []
    for slab_offset in (1, 0):  # level 0: the slab is the voxel at offset 1 along ``axis``; level 1: offset 0
        m = np.zeros(16, np.int64)
        for code2 in range(16):
            code3 = 0
            for flat2 in range(4):
                if code2 & (1 << (3 - flat2)):
                    offs = [flat2 >> 1, flat2 & 1]
                    offs.insert(axis, slab_offset)
                    code3 |= 1 << (7 - (4 * offs[0] + 2 * offs[1] + offs[2]))
            m[code2] = code3
        maps.append(m)
    return maps[0], maps[1]


def _slab_distances(
    cp: np.ndarray, cg: np.ndarray, sp: tuple[float, ...], axis: int, p: float
) -> SurfaceDistances:
    """DeepMind 3D distances of one-voxel-thick slabs (2D cases scored as (H, W, 1)) via one 2D plane.

    The corners below and above the slab carry the same in-plane pattern, so each surfel's nearest surfel of
    the other mask lies in its own plane: distances come from one 2D query and are used for both levels.
    """
    table = surfel_measure_table(sp)
    lo, hi = _slab_code_maps(axis)
    sp2 = tuple(v for i, v in enumerate(sp) if i != axis)
    out = []
    codes = [_neighbour_codes(m.squeeze(axis)) for m in (cp, cg)]
    idx = [np.flatnonzero(c) for c in codes]
    shape = codes[0].shape
    pts = [np.stack(np.unravel_index(i, shape), axis=1) for i in idx]
    present = [c != 0 for c in codes]
    for me, other in ((1, 0), (0, 1)):  # gt -> pred first, then pred -> gt
        d = _nearest_on_grid(pts[me], pts[other], present[other], sp2, p)
        c2 = codes[me].ravel()[idx[me]]
        out.append((np.concatenate([d, d]), np.concatenate([table[lo[c2]], table[hi[c2]]])))
    (d_gp, a_g), (d_pg, a_p) = out
    return SurfaceDistances(d_gp, d_pg, a_g, a_p, "deepmind")


# ------------------------------------------------------------------------ DeepMind-convention metrics
def nsd(
    pred: np.ndarray, gt: np.ndarray, tolerance: float, spacing: float | Sequence[float] | None = None
) -> float:
    """Normalised surface Dice, DeepMind convention (= MONAI ``use_subvoxels=True``); both empty -> NaN."""
    return surface_distances(pred, gt, spacing).nsd(tolerance)


def hausdorff(
    pred: np.ndarray, gt: np.ndarray, percent: float = 100.0, spacing: float | Sequence[float] | None = None
) -> float:
    """Robust Hausdorff distance at ``percent`` (100 = HD, 95 = HD95), DeepMind convention; one empty -> inf."""
    return surface_distances(pred, gt, spacing).hausdorff(percent)


def assd(pred: np.ndarray, gt: np.ndarray, spacing: float | Sequence[float] | None = None) -> float:
    """Average symmetric surface distance, DeepMind convention (mean of the two area-weighted one-sided means)."""
    return surface_distances(pred, gt, spacing).assd()


# --------------------------------------------------------------------------- MONAI-convention metrics
def _monai_one_sided(sd: SurfaceDistances, pred_to_gt: bool) -> np.ndarray:
    """MONAI's one-sided distances incl. its empty rules: if either surface is empty all are inf.

    MONAI returns, when the reference edges are empty, inf for every *query* edge, and when the query is empty
    but the reference is not, inf for every *reference* edge; both empty -> no distances. Values are float32.
    """
    q, r = (
        (sd.distances_pred_to_gt, sd.distances_gt_to_pred)
        if pred_to_gt
        else (sd.distances_gt_to_pred, sd.distances_pred_to_gt)
    )
    if q.size and r.size:
        return q.astype(np.float32)
    return np.full(q.size if q.size else r.size, np.inf, dtype=np.float32)


def monai_hausdorff(
    pred: np.ndarray,
    gt: np.ndarray,
    spacing: float | Sequence[float] | None = None,
    percentile: float | None = None,
    directed: bool = False,
    distance_metric: DistanceMetric = "euclidean",
) -> float:
    """Hausdorff distance as MONAI ``compute_hausdorff_distance`` (edge voxels, linear-interpolated percentile).

    percentile None or 0 = max; directed = pred->gt only; both empty -> NaN, one empty -> inf.
    """
    sd = surface_distances(pred, gt, spacing, "monai", distance_metric)
    sides = [_monai_one_sided(sd, True)] + ([] if directed else [_monai_one_sided(sd, False)])
    vals = []
    for d in sides:
        if d.size == 0:
            vals.append(math.nan)
        elif not percentile:
            vals.append(float(d.max()))
        elif 0 <= percentile <= 100:
            vals.append(float(np.quantile(d.astype(np.float64), percentile / 100.0)))
        else:
            raise ConfigError(f"percentile should be between 0 and 100, got {percentile}")
    return float(max(vals)) if not any(math.isnan(v) for v in vals) else math.nan


def monai_asd(
    pred: np.ndarray,
    gt: np.ndarray,
    spacing: float | Sequence[float] | None = None,
    symmetric: bool = False,
    distance_metric: DistanceMetric = "euclidean",
) -> float:
    """Average surface distance as MONAI ``compute_average_surface_distance`` (symmetric = pooled mean).

    Not symmetric = mean pred->gt distance; both empty -> NaN, one empty -> inf.
    """
    sd = surface_distances(pred, gt, spacing, "monai", distance_metric)
    parts = [_monai_one_sided(sd, True)] + ([_monai_one_sided(sd, False)] if symmetric else [])
    d = np.concatenate(parts)
    return float(d.astype(np.float64).mean()) if d.size else math.nan


def monai_nsd(
    pred: np.ndarray,
    gt: np.ndarray,
    tolerance: float,
    spacing: float | Sequence[float] | None = None,
    distance_metric: DistanceMetric = "euclidean",
    use_subvoxels: bool = False,
) -> float:
    """NSD as MONAI ``compute_surface_dice``: edge-voxel counts, or surfel areas with ``use_subvoxels``.

    Both empty -> NaN, one empty -> 0. Distances compared in float32, as MONAI does.
    """
    if not math.isfinite(tolerance) or tolerance < 0:
        raise ConfigError(f"tolerance must be finite and >= 0, got {tolerance}")
    sd = surface_distances(pred, gt, spacing, "deepmind" if use_subvoxels else "monai", distance_metric)
    d_gp = sd.distances_gt_to_pred.astype(np.float32)
    d_pg = sd.distances_pred_to_gt.astype(np.float32)
    total = np.sum(sd.surfel_areas_gt) + np.sum(sd.surfel_areas_pred)
    if total == 0:
        return math.nan
    ok = np.sum(sd.surfel_areas_gt[d_gp <= tolerance]) + np.sum(sd.surfel_areas_pred[d_pg <= tolerance])
    return float(ok / total)
