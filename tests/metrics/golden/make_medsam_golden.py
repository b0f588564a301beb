"""Golden values of the MedSAM challenge scorers on ``cases.medsam_cases()``.

Rebuilt from bowang-lab/MedSAM ``evaluation/compute_metrics.py`` (CVPR24) and the CVPR25 ``CVPR25_iter_eval.py``
(``compute_multi_class_dsc/nsd`` with ``np.sort(pd.unique(gt.ravel()))[1:]``), on top of google-deepmind
``surface-distance`` (the algorithm of MedSAM's ``SurfaceDice.py``). Run in the numpy<2 environment:
    /tmp/peers/bin/python tests/metrics/golden/make_medsam_golden.py
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
from surface_distance import (
    compute_dice_coefficient,
    compute_surface_dice_at_tolerance,
    compute_surface_distances,
)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from cases import medsam_cases  # noqa: E402


def cvpr24_dsc(gt, seg):
    dsc = []
    for i in range(1, gt.max() + 1):
        dsc.append(compute_dice_coefficient(gt == i, seg == i))
    return np.mean(dsc)


def cvpr24_nsd(gt, seg, spacing, tolerance=2.0):
    nsd = []
    for i in range(1, gt.max() + 1):
        sd = compute_surface_distances(gt == i, seg == i, spacing_mm=spacing)
        nsd.append(compute_surface_dice_at_tolerance(sd, tolerance))
    return np.mean(nsd)


def cvpr25_dsc(gt, seg):
    return np.mean([compute_dice_coefficient(gt == i, seg == i) for i in np.sort(np.unique(gt.ravel()))[1:]])


def cvpr25_nsd(gt, seg, spacing, tolerance=2.0):
    out = []
    for i in np.sort(np.unique(gt.ravel()))[1:]:
        sd = compute_surface_distances(gt == i, seg == i, spacing_mm=spacing)
        out.append(compute_surface_dice_at_tolerance(sd, tolerance))
    return np.mean(out)


def score(seg, gt, spacing, dsc_fn, nsd_fn):
    """The per-case logic of compute_metrics(): 2D cases as (H, W, 1) with spacing 1, NSD only if DSC > 0.2."""
    dsc = dsc_fn(gt, segs := seg)
    if dsc > 0.2:
        if spacing is not None:
            nsd = nsd_fn(gt, segs, spacing)
        else:
            nsd = nsd_fn(np.expand_dims(gt, -1), np.expand_dims(segs, -1), [1.0, 1.0, 1.0])
    else:
        nsd = 0.0
    return {"dsc": float(dsc), "nsd": float(nsd)}


def main() -> None:
    out = {}
    for name, seg, gt, spacing in medsam_cases():
        out[name] = {
            "cvpr24": score(seg, gt, spacing, cvpr24_dsc, cvpr24_nsd),
            "cvpr25": score(seg, gt, spacing, cvpr25_dsc, cvpr25_nsd),
        }
    (HERE / "medsam_golden.json").write_text(json.dumps(out))


if __name__ == "__main__":
    warnings.simplefilter("ignore")
    main()
