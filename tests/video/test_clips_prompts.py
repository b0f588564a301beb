"""Clip sampling (order, no clip across videos, padding), objects of a clip, prompts from ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from scopeseg.data.coco import load_dataset
from scopeseg.data.video import clips, gt_prompt, object_tracks, padded_clips, prompt_frames, video_frames
from scopeseg.errors import DataError


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    from tests.conftest import make_disc_videos

    return load_dataset(make_disc_videos(tmp_path_factory.mktemp("clipdiscs"), videos=3, frames=7))


def test_padded_clips_keep_order_stay_in_video_and_pad_the_tail(ds):
    out = padded_clips(ds, 3, 2)
    video_of = {iid: ds.images[iid]["video_id"] for iid in ds.images}
    per_video = {vid: video_frames(ds, vid) for vid in ds.videos}
    assert len(out) == 3 * 3  # starts 0, 2, 4 (4..6 ends the 7-frame video) per video
    for ids, valid in out:
        assert len(ids) == len(valid) == 3
        assert len({video_of[i] for i in ids}) == 1  # never across a video
        frames = per_video[video_of[ids[0]]]
        real = [i for i, v in zip(ids, valid) if v]
        pos = [frames.index(i) for i in real]
        assert pos == list(range(pos[0], pos[0] + len(pos)))  # consecutive frames in order
    assert all(all(v) for _, v in out)  # 7 frames, length 3, stride 2: no padding needed
    ids, valid = padded_clips(ds, 5, 5)[1]  # second window of a video: frames 5, 6 + 3 padding
    assert valid == [True, True, False, False, False] and ids[2:] == [ids[1]] * 3
    short = padded_clips(ds, 10)
    assert len(short) == 3 and all(v == [True] * 7 + [False] * 3 for _, v in short)
    assert clips(ds, 10) == []  # the unpadded windows skip short videos, as before


def test_object_tracks_follow_track_ids_then_categories(ds):
    vid = next(iter(ds.videos))
    ids = video_frames(ds, vid)
    tracks = object_tracks(ds, ids)
    assert list(tracks) == [1] and sorted(tracks[1]) == sorted(ids)  # no track_id: the category is the object
    assert object_tracks(ds, ids, category_ids=[99]) == {}


def test_prompt_frames_first_and_every_k():
    vis = [False, False, True, True, False, True, True, True, True]
    assert prompt_frames(vis, "first") == [2]
    assert prompt_frames(vis, "every_k", 3) == [2, 5, 8]
    assert prompt_frames(vis, "on_error") == [2]
    assert prompt_frames([False] * 4) == []
    with pytest.raises(DataError, match="prompt mode"):
        prompt_frames(vis, "sometimes")


def test_gt_prompt_kinds():
    m = np.zeros((20, 30), bool)
    m[4:10, 6:21] = True
    assert gt_prompt(m, "box") == {"box": (6.0, 4.0, 21.0, 10.0)}
    p = gt_prompt(m, "points", n_points=3, rng=np.random.default_rng(0))
    assert p["labels"] == [1, 1, 1] and len(p["points"]) == 3
    x, y = p["points"][0]
    assert (x, y) == (13.5, 6.5) or m[int(y), int(x)]  # the deepest pixel first
    assert all(m[int(py), int(px)] for px, py in p["points"])
    assert gt_prompt(m, "mask")["mask"] is not None and gt_prompt(m, "mask")["mask"].sum() == m.sum()
    j = gt_prompt(m, "box", jitter=0.2, rng=np.random.default_rng(1))["box"]
    assert j != (6.0, 4.0, 21.0, 10.0) and abs(j[0] - 6) <= 0.2 * 15 + 1e-9 and 0 <= j[0] < j[2] <= 30
    with pytest.raises(DataError, match="empty mask"):
        gt_prompt(np.zeros((4, 4), bool))


class PromptedOnly:
    """A stepper that knows nothing between frames: masks only where a prompt is given (the box filled)."""

    def reset(self):
        pass

    def step(self, image, prompts=None):
        out = {}
        for oid, p in (prompts or {}).items():
            m = np.zeros(image.shape[:2], bool)
            x0, y0, x1, y1 = (int(round(v)) for v in p.box)
            m[y0:y1, x0:x1] = True
            out[oid] = m
        return out


def test_evaluation_prompts_first_every_k_and_on_error(ds):
    from scopeseg.inference.video_objects import Propagator, evaluate_tracking

    prop = Propagator(PromptedOnly(), "test")
    first = evaluate_tracking(prop, ds, mode="first")
    every = evaluate_tracking(prop, ds, mode="every_k", k=3)
    fixed = evaluate_tracking(prop, ds, mode="on_error", max_corrections=2, direction="forward")
    assert all(v == {"prompts": 1, "corrections": 0} for v in first["prompted"].values())
    assert all(v["prompts"] == 3 for v in every["prompted"].values())  # frames 0, 3, 6 of 7
    assert all(v == {"prompts": 3, "corrections": 2} for v in fixed["prompted"].values())
    dice = next(iter(first["frame_dice"].values()))
    assert dice[0] > 0.5 and dice[1:] == [0.0] * 6  # nothing propagates beyond the prompt
    # DAVIS J&F skips the first and last frame: every_k adds frame 3 (6 is last), on_error frames 1 and 2
    assert first["metrics"]["J&F"] == 0.0 < every["metrics"]["J&F"] < fixed["metrics"]["J&F"]
