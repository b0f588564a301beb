"""Golden values from google-deepmind ``surface-distance`` (PyPI ``surface-distance`` 0.1) on ``cases.py``.

Run once in a separate environment with numpy<2 (the package uses ``np.NaN``):
    python3 -m venv /tmp/peers && /tmp/peers/bin/pip install "numpy<2" scipy surface-distance
    /tmp/peers/bin/python tests/metrics/golden/make_deepmind_golden.py
Writes ``deepmind_golden.json`` next to this file (NaN/Infinity as JSON extensions).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import surface_distance as sdm

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from cases import PERCENTS, TOLERANCES, surface_cases  # noqa: E402


def main() -> None:
    out = {"numpy": np.__version__, "package": "surface-distance 0.1", "cases": {}}
    for name, pred, gt, spacing in surface_cases():
        sp = spacing if spacing is not None else (1.0,) * pred.ndim
        sd = sdm.compute_surface_distances(gt, pred, sp)
        rec = {
            "dice": float(sdm.compute_dice_coefficient(gt, pred)),
            "nsd": [float(sdm.compute_surface_dice_at_tolerance(sd, t)) for t in TOLERANCES],
            "overlap": [
                list(map(float, sdm.compute_surface_overlap_at_tolerance(sd, t))) for t in TOLERANCES
            ],
            "hd": [float(sdm.compute_robust_hausdorff(sd, p)) for p in PERCENTS],
            "asd": list(map(float, sdm.compute_average_surface_distance(sd))),
        }
        out["cases"][name] = rec
    (HERE / "deepmind_golden.json").write_text(json.dumps(out))


if __name__ == "__main__":
    import warnings

    warnings.simplefilter("ignore")
    main()
