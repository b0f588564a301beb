"""Deterministic mask pairs for reference comparisons (pure numpy: also imported by the golden scripts).

Each case: (name, pred, gt, spacing). Covers both empty, one empty, single pixels, border-touching masks,
thin 1-px structures, anisotropic spacing, 3D and odd sizes.
"""

from __future__ import annotations

import numpy as np


def _disk(shape, center, radius, spacing=(1.0, 1.0)):
    grid = np.indices(shape).astype(float)
    d2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grid, center, spacing))
    return d2 <= radius**2


def _blobs(rng, shape, n=3):
    m = np.zeros(shape, bool)
    for _ in range(n):
        c = [rng.integers(0, s) for s in shape]
        r = rng.uniform(2, max(3, min(shape) / 3))
        m |= _disk(shape, c, r, (1.0,) * len(shape))
    return m


def surface_cases():
    rng = np.random.default_rng(20261123)
    z = np.zeros((17, 23), bool)
    cases = []
    cases.append(("both_empty", z.copy(), z.copy(), None))
    g = _disk((17, 23), (8, 11), 5)
    cases.append(("pred_empty", z.copy(), g, None))
    cases.append(("gt_empty", g, z.copy(), None))
    p1, g1 = z.copy(), z.copy()
    p1[4, 5] = True
    g1[4, 5] = True
    cases.append(("single_pixel_same", p1, g1, None))
    g2 = z.copy()
    g2[12, 19] = True
    cases.append(("single_pixel_apart", p1, g2, (0.7, 1.3)))
    pb, gb = z.copy(), z.copy()
    pb[:6, :] = True
    gb[:5, 3:] = True
    cases.append(("border_touching", pb, gb, None))
    full = np.ones((9, 11), bool)
    part = full.copy()
    part[4:, 6:] = False
    cases.append(("full_image", full, part, None))
    pl, gl = z.copy(), z.copy()
    pl[8, 2:20] = True
    gl[9, 3:21] = True
    cases.append(("thin_lines", pl, gl, None))
    pd_, gd = z.copy(), z.copy()
    idx = np.arange(15)
    pd_[idx, idx] = True
    gd[idx, idx + 1] = True
    cases.append(("thin_diagonal", pd_, gd, (1.0, 1.0)))
    cases.append(("thin_vs_disk", pl, g, (0.5, 2.0)))
    a = _disk((31, 29), (15, 13), 9)
    b = _disk((31, 29), (17, 15), 8)
    cases.append(("disks_aniso", a, b, (1.5, 0.6)))
    cases.append(("disks_iso", a, b, None))
    for i in range(3):
        shape = (int(rng.integers(20, 41)), int(rng.integers(20, 41)))
        cases.append(
            (f"random2d_{i}", _blobs(rng, shape), _blobs(rng, shape), (float(rng.uniform(0.4, 2)), 1.0))
        )
    s3 = (13, 15, 11)
    a3 = _disk(s3, (6, 7, 5), 4.5, (1, 1, 1))
    b3 = _disk(s3, (7, 7, 6), 4.0, (1, 1, 1))
    cases.append(("sphere3d_iso", a3, b3, None))
    cases.append(("sphere3d_aniso", a3, b3, (2.0, 0.8, 0.8)))
    e3 = np.zeros(s3, bool)
    cases.append(("empty3d_pred", e3, b3, (1.0, 1.0, 2.5)))
    t3p, t3g = e3.copy(), e3.copy()
    t3p[6, 2:12, 5] = True
    t3g[6, 3:13, 6] = True
    cases.append(("thin3d", t3p, t3g, None))
    bt3 = e3.copy()
    bt3[:4, :, :3] = True
    cases.append(("border3d", bt3, b3, (1.0, 0.5, 0.5)))
    cases.append(("random3d", _blobs(rng, (15, 17, 13)), _blobs(rng, (15, 17, 13)), (1.2, 0.9, 2.0)))
    # one-voxel slabs (2D cases scored as 3D volumes), along each axis, incl. anisotropic spacing
    cases.append(("slab_axis2", a[..., None], b[..., None], None))
    cases.append(("slab_axis0_aniso", pb[None], gb[None], (3.0, 0.7, 1.1)))
    cases.append(("slab_axis1_thin", pl[:, None], g[:, None], (1.0, 2.0, 0.5)))
    cases.append(("slab_gt_empty", a[..., None], np.zeros_like(a)[..., None], None))
    return cases


TOLERANCES = (0.0, 1.0, 2.0, 3.5)
PERCENTS = (100.0, 95.0, 50.0)


def _labels(rng, shape, n_classes, n_blobs=4, empty_p=0.0):
    lab = np.zeros(shape, np.uint8)
    if rng.uniform() < empty_p:
        return lab
    for _ in range(n_blobs):
        c = [rng.integers(0, s) for s in shape]
        r = rng.uniform(2, max(3, min(shape) / 3))
        lab[_disk(shape, c, r, (1.0,) * len(shape))] = rng.integers(1, n_classes + 1)
    return lab


def _perturb(rng, lab, n_classes, p_shift=0.7):
    out = lab.copy()
    if rng.uniform() < p_shift:
        out = np.roll(
            out, tuple(int(v) for v in rng.integers(-2, 3, size=lab.ndim)), axis=tuple(range(lab.ndim))
        )
    flip = rng.uniform(size=lab.shape) < 0.03
    out[flip] = rng.integers(0, n_classes + 1, size=int(flip.sum()))
    return out


def medsam_cases():
    """(name, seg, gt, spacing) integer label maps for the MedSAM challenge scorers."""
    rng = np.random.default_rng(24)
    cases = []
    for i in range(4):
        gt = _labels(rng, (33, 41), 3)
        cases.append((f"2d_{i}", _perturb(rng, gt, 3), gt, None))
    gt = np.zeros((20, 24), np.uint8)
    gt[3:9, 4:12] = 1
    gt[12:18, 10:20] = 3  # class 2 absent from gt
    seg = gt.copy()
    seg[13:18, 10:21] = 3
    cases.append(("2d_missing_class_in_both", seg, gt, None))
    seg2 = seg.copy()
    seg2[0:2, 0:3] = 2
    cases.append(("2d_missing_class_pred_only", seg2, gt, None))
    low = np.zeros_like(gt)
    low[3:5, 10:12] = 1
    cases.append(("2d_low_dice_gate", low, gt, None))
    cases.append(("2d_empty_pred", np.zeros_like(gt), gt, None))
    cases.append(("2d_both_empty", np.zeros_like(gt), np.zeros_like(gt), None))
    nobg = np.full((12, 14), 2, np.uint8)
    nobg[3:8, 4:9] = 5
    cases.append(("2d_no_background", _perturb(rng, nobg, 5), nobg, None))
    for i in range(2):
        gt3 = _labels(rng, (9, 21, 19), 2)
        cases.append((f"3d_{i}", _perturb(rng, gt3, 2), gt3, (2.5, 0.8, 0.8)))
    return cases


def endovis_cases():
    """(name, preds, gts, num_classes) uint8 (N, H, W) instrument label maps."""
    rng = np.random.default_rng(2018)
    cases = []
    for i in range(3):
        gts = np.stack([_labels(rng, (24, 30), 4, 2, empty_p=0.25) for _ in range(6)])
        preds = np.stack([_perturb(rng, g, 4) if rng.uniform() > 0.2 else np.zeros_like(g) for g in gts])
        cases.append((f"random_{i}", preds, gts, 4))
    cases.append(("class_absent_everywhere", preds, gts, 6))
    z = np.zeros((3, 8, 9), np.uint8)
    cases.append(("all_empty", z, z.copy(), 3))
    g = z.copy()
    g[0, 2:5, 2:5] = 1
    p = z.copy()
    p[1, 2:5, 2:5] = 2
    cases.append(("fp_on_empty_frame", p, g, 3))
    return cases


def semantic_cases():
    """(name, preds, gts, num_classes, ignore_index) label-map lists for mmseg IoUMetric."""
    rng = np.random.default_rng(1)
    cases = []
    gts = [_labels(rng, (20, 26), 4, 3) for _ in range(4)]
    preds = [_perturb(rng, g, 4) for g in gts]
    gts[0][:3, :] = 255
    cases.append(("ignore_255", preds, gts, 6, 255))
    preds2 = [p.copy() for p in preds]
    preds2[1][5:8, 5:8] = 9  # out of range
    cases.append(("out_of_range_pred", preds2, gts, 6, 255))
    cases.append(("no_ignore", preds, [np.where(g == 255, 0, g).astype(np.uint8) for g in gts], 5, None))
    return cases


def davis_cases():
    """(name, pred_labels, gt_labels) (T, H, W) videos with object ids."""
    rng = np.random.default_rng(2017)
    cases = []
    for i in range(2):
        t, h, w = 6, 40, 52
        gt = np.zeros((t, h, w), np.uint8)
        pred = np.zeros_like(gt)
        for f in range(t):
            gt[f][_disk((h, w), (10 + f, 12 + 2 * f), 6)] = 1
            gt[f][_disk((h, w), (28, 36 - f), 5 + (f % 2))] = 2
            pred[f][_disk((h, w), (10 + f + rng.integers(-2, 3), 12 + 2 * f), 6)] = 1
            if f != 3:
                pred[f][_disk((h, w), (28, 36 - f + rng.integers(-3, 4)), 5)] = 2
        if i == 1:
            gt[2][gt[2] == 2] = 0  # object absent in a frame
        cases.append((f"video_{i}", pred, gt))
    return cases


def tapis_map_case():
    """A small instrument data set + frame-keyed predictions (RLE segments, score distributions)."""
    from pycocotools import mask as m

    rng = np.random.default_rng(5)
    h, w, n_cls = 24, 32, 3
    images, anns, preds = [], [], {}
    aid = 1
    for i in range(12):
        name = f"video01_{i:05d}.jpg"
        images.append({"id": i + 1, "file_name": name, "height": h, "width": w})
        instances = []
        for _ in range(int(rng.integers(0 if i == 4 else 1, 4))):
            y, x = int(rng.integers(0, h - 8)), int(rng.integers(0, w - 8))
            gm = np.zeros((h, w), np.uint8, order="F")
            gm[y : y + 8, x : x + 8] = 1
            rle = m.encode(np.asfortranarray(gm))
            rle["counts"] = rle["counts"].decode()
            cat = int(rng.integers(1, n_cls + 1))
            anns.append(
                {
                    "id": aid,
                    "image_id": i + 1,
                    "category_id": cat,
                    "segmentation": rle,
                    "bbox": [x, y, 8, 8],
                    "area": 64,
                    "iscrowd": 0,
                }
            )
            aid += 1
            dy, dx = int(rng.integers(-3, 4)), int(rng.integers(-3, 4))
            pm = np.zeros((h, w), np.uint8)
            pm[max(0, y + dy) : y + dy + 8, max(0, x + dx) : x + dx + 8] = 1
            prle = m.encode(np.asfortranarray(pm))
            prle["counts"] = prle["counts"].decode()
            dist = rng.dirichlet(np.ones(n_cls) * 0.7)
            if rng.uniform() < 0.6:
                dist = 0.5 * dist + 0.5 * np.eye(n_cls)[cat - 1]
            instances.append(
                {
                    "bbox": [x, y, x + 8, y + 8],
                    "instruments_score_dist": dist.round(3).tolist(),
                    "segment": prle,
                }
            )
        if i == 2:
            instances.append(dict(instances[0], instruments_score_dist=[0.2, 0.2, 0.6]))  # duplicate
        if i not in (5, 9):
            preds[name] = {"instances": instances}
    gt = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": k, "name": f"tool{k}"} for k in range(1, n_cls + 1)],
    }
    return gt, preds
