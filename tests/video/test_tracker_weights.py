"""The box tracker with the real LiteMedSAM weights on a synthetic scope video (skipped without the weights)."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.weights


def test_litemedsam_tracker_follows_instruments(require_weights, tmp_path):
    require_weights("litemedsam")
    from scopeseg.data.synthetic.config import SynthConfig
    from scopeseg.data.synthetic.writer import generate
    from scopeseg.inference.video_objects import TrackConfig, evaluate_tracking, load_propagator

    data = tmp_path / "synth"
    generate(data, SynthConfig(videos=1, frames=6, size=(128, 160), seed=3), progress=False)
    prop = load_propagator("litemedsam", TrackConfig())
    res = evaluate_tracking(prop, data, mode="first", kind="box")
    m = res["metrics"]
    assert 0.5 < m["J&F"] <= 1.0 and 0.0 < m["J"] <= m["J&F"] * 2
    dice = next(iter(res["frame_dice"].values()))
    assert len(dice) == 6 and np.mean(dice) > 0.5
