"""Surface internals against a plain transcription of DeepMind's algorithm (correlate + EDT) on random masks.

Covers what the small golden cases reach rarely: far-apart objects and speckles (KD-tree fallback after the
ring search), filled slabs, anisotropic spacing, and the MONAI-convention edge voxels.
"""

from __future__ import annotations

import numpy as np
import pytest
from metrics_testutil import same
from scipy import ndimage

from scopeseg.errors import ConfigError, DataError
from scopeseg.metrics.surface import surface_distances, surfel_measure_table


def deepmind_distances(gt, pred, spacing):
    """compute_surface_distances of google-deepmind/surface-distance, unsorted (areas + distances)."""
    nd = gt.ndim
    kernel = np.array([[8, 4], [2, 1]]) if nd == 2 else np.array([[[128, 64], [32, 16]], [[8, 4], [2, 1]]])
    full = 15 if nd == 2 else 255
    table = surfel_measure_table(tuple(spacing))
    idx = np.argwhere(gt | pred)
    lo, hi = idx.min(0), idx.max(0)
    out = []
    for m in (gt, pred):
        crop = np.zeros(hi - lo + 2, np.uint8)
        crop[tuple(slice(0, -1) for _ in range(nd))] = m[tuple(slice(a, b + 1) for a, b in zip(lo, hi))]
        code = ndimage.correlate(crop, kernel, mode="constant", cval=0)
        out.append((code, (code != 0) & (code != full)))
    (cg, bg), (cp, bp) = out
    dist_g = ndimage.distance_transform_edt(~bg, sampling=spacing)
    dist_p = ndimage.distance_transform_edt(~bp, sampling=spacing)
    return dist_p[bg], table[cg[bg]], dist_g[bp], table[cp[bp]]


def _random_mask(rng, shape, n, far=False):
    m = np.zeros(shape, bool)
    for _ in range(n):
        c = [rng.integers(0, s) for s in shape]
        r = rng.uniform(1, max(2, min(shape) / (6 if far else 3)))
        grid = np.indices(shape)
        m |= sum((g - ci) ** 2 for g, ci in zip(grid, c)) <= r * r
    m |= rng.uniform(size=shape) < 0.002  # speckles
    return m


CASES = [
    ((64, 80), (1.0, 1.0)),
    ((70, 50), (0.6, 1.7)),
    ((41, 43), (2.0, 0.5)),
    ((20, 24, 18), (1.0, 1.0, 1.0)),
    ((16, 30, 22), (2.5, 0.8, 0.8)),
    ((1, 60, 50), (1.0, 1.0, 1.0)),
    ((45, 1, 38), (1.3, 1.0, 0.7)),
]


@pytest.mark.parametrize("shape,spacing", CASES, ids=[f"{s}-{sp}" for s, sp in CASES])
def test_matches_deepmind_algorithm(shape, spacing):
    rng = np.random.default_rng(abs(hash((shape, spacing))) % 2**32)
    for far in (False, True):
        pred, gt = _random_mask(rng, shape, 3, far), _random_mask(rng, shape, 3, far)
        d_gp, a_g, d_pg, a_p = deepmind_distances(gt, pred, spacing)
        sd = surface_distances(pred, gt, spacing)
        # same multiset of (distance, area) pairs in each direction
        for mine, ref in (((sd.distances_gt_to_pred, sd.surfel_areas_gt), (d_gp, a_g)),
                          ((sd.distances_pred_to_gt, sd.surfel_areas_pred), (d_pg, a_p))):  # fmt: skip
            o1, o2 = np.lexsort((mine[1], mine[0])), np.lexsort((ref[1], ref[0]))
            assert np.array_equal(mine[0][o1], ref[0][o2])
            assert np.allclose(mine[1][o1], ref[1][o2], rtol=1e-12, atol=0)


def test_monai_edges_are_erosion_borders():
    rng = np.random.default_rng(5)
    for shape in ((30, 33), (12, 14, 9)):
        m = _random_mask(rng, shape, 3)
        sd = surface_distances(m, m, None, convention="monai")
        edges = m & ~ndimage.binary_erosion(m)
        assert sd.surfel_areas_gt.sum() == edges.sum() and not sd.distances_gt_to_pred.any()


def test_bad_inputs():
    a = np.zeros((4, 4), bool)
    with pytest.raises(DataError, match="shape"):
        surface_distances(a, np.zeros((4, 5), bool))
    with pytest.raises(DataError, match="2D or 3D"):
        surface_distances(np.zeros(4, bool), np.zeros(4, bool))
    with pytest.raises(ConfigError, match="spacing"):
        surface_distances(a, a, (1.0, 1.0, 1.0))
    with pytest.raises(ConfigError, match="positive"):
        surface_distances(a, a, (1.0, -1.0))
    with pytest.raises(ConfigError, match="convention"):
        surface_distances(a, a, convention="medpy")  # type: ignore[arg-type]


def test_scalar_spacing_and_nonbool_inputs():
    a = np.zeros((9, 9), np.uint8)
    a[2:5, 2:6] = 7
    b = np.zeros((9, 9), np.int32)
    b[3:6, 2:6] = 1
    x = surface_distances(a, b, 0.5)
    y = surface_distances(a.astype(bool), b.astype(bool), (0.5, 0.5))
    assert same(x.nsd(0.5), y.nsd(0.5)) and same(x.hausdorff(95), y.hausdorff(95))
