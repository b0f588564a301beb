"""DAVIS 2017 J&F against golden/make_transcribed_golden.py (davis2017-evaluation code), and helpers."""

from __future__ import annotations

import numpy as np
import pytest
from cases import davis_cases
from metrics_testutil import same

from scopeseg.metrics.video import davis_f, davis_j, davis_jf, davis_jf_dataset, disk, seg2bmap, video_overlap


@pytest.mark.parametrize("case", davis_cases(), ids=[c[0] for c in davis_cases()])
def test_davis_jf_matches_reference(case, transcribed_golden):
    name, pred, gt = case
    ref = transcribed_golden["davis"][name]
    got = davis_jf(pred, gt)
    assert (
        same(got["J&F"], ref["J&F"])
        and same(got["J_mean"], ref["J_mean"])
        and same(got["F_mean"], ref["F_mean"])
    )
    for k, oid in enumerate(sorted(got["objects"])):
        o = got["objects"][oid]
        assert same(o["J_mean"], ref["per_object"]["J"][k][0]) and same(
            o["J_decay"], ref["per_object"]["J"][k][2]
        )
        assert same(o["F_mean"], ref["per_object"]["F"][k][0]) and same(
            o["F_recall"], ref["per_object"]["F"][k][1]
        )


def test_dataset_jf_pools_objects(transcribed_golden):
    vids = [(p, g) for _, p, g in davis_cases()]
    r = davis_jf_dataset(vids)
    js = [o[0] for n in ("video_0", "video_1") for o in transcribed_golden["davis"][n]["per_object"]["J"]]
    assert same(r["J_mean"], np.mean(js))


def test_disk_and_boundary_helpers():
    from skimage.morphology import disk as sk_disk

    for r in (1.0, 2.0, 5.0, 12.0):
        assert np.array_equal(disk(r), sk_disk(r).astype(np.uint8))
    z = np.zeros((5, 6), bool)
    assert davis_j(z, z) == 1.0 and davis_f(z, z) == 1.0
    a = z.copy()
    a[1:3, 1:4] = True
    assert davis_f(z, a) == 0.0 and davis_j(a, a) == 1.0
    b = seg2bmap(a)
    assert b.sum() > 0 and not b[-1, -1]


def test_video_overlap_per_frame_and_video():
    g = np.zeros((3, 8, 8), bool)
    g[:, 2:6, 2:6] = True
    p = g.copy()
    p[1] = False
    r = video_overlap(p, g)
    assert r["frame_dice"] == [1.0, 0.0, 1.0] and same(r["video_dice"], 2 * 32 / (32 + 48))
