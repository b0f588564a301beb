"""Tracker rules on exact masks: following the previous box, re-detection, corrections in both directions,
bad prompts refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
from video_testutil import square_frames

from scopeseg.errors import DataError
from scopeseg.inference.tracking import BoxTracker, Prompt, check_prompts, propagate


def test_forward_tracking_follows_the_moving_square(segmenter):
    frames, masks = square_frames(10)
    out = list(propagate(segmenter, frames, {0: {1: Prompt(box=(5, 20, 21, 36))}}))
    assert [t for t, _ in out] == list(range(10))
    for t, m in out:
        assert np.array_equal(m[1], masks[t])  # the enlarged previous box still holds the moved square
    assert segmenter.encoded == 10


def test_streaming_iterable_starts_at_the_first_prompt(segmenter):
    frames, masks = square_frames(6)
    out = list(propagate(segmenter, iter(frames), {2: {1: Prompt(box=(11, 20, 27, 36))}}))
    assert [t for t, _ in out] == [2, 3, 4, 5]
    assert all(np.array_equal(m[1], masks[t]) for t, m in out)
    with pytest.raises(DataError, match="frame 9 is out of range"):
        list(propagate(segmenter, iter(frames), {9: {1: Prompt(box=(1, 1, 5, 5))}}))


def test_redetection_after_the_object_vanishes(segmenter):
    frames, masks = square_frames(8)
    for t in (3, 4):  # the square leaves the view for two frames
        frames[t] = np.full_like(frames[t], 30)
    out = dict(
        propagate(BoxTracker(segmenter, redetect_grow=2.0), frames, {0: {1: Prompt(box=(5, 20, 21, 36))}})
    )
    assert not out[3][1].any() and not out[4][1].any()
    assert np.array_equal(out[5][1], masks[5])  # found again from its last box, grown
    no = dict(propagate(BoxTracker(segmenter, redetect=False), frames, {0: {1: Prompt(box=(5, 20, 21, 36))}}))
    assert not no[5][1].any() and not no[7][1].any()


def test_a_correction_repropagates_forward_and_backward(segmenter):
    frames, masks = square_frames(10)
    wrong = {0: {1: Prompt(box=(60, 0, 80, 10))}}  # a box beside the square: nothing bright there
    first = dict(propagate(segmenter, frames, wrong, direction="both"))
    assert not any(first[t][1].any() for t in range(10))
    corrected = {**wrong, 6: {1: Prompt(points=[(25, 27)], labels=[1])}}
    fixed = dict(propagate(segmenter, frames, corrected, direction="both"))
    assert sorted(fixed) == list(range(10))
    assert not fixed[0][1].any() and not fixed[2][1].any()  # nearer the frame-0 prompt: unchanged
    for t in range(4, 10):  # frames 4, 5 (backward from 6) and 6.. (forward) follow the correction
        assert np.array_equal(fixed[t][1], masks[t]), t
    back = list(propagate(segmenter, frames, {6: {1: Prompt(mask=masks[6])}}, direction="backward"))
    assert [t for t, _ in back] == [6, 5, 4, 3, 2, 1, 0]
    assert all(np.array_equal(m[1], masks[t]) for t, m in back)


def test_several_objects_decode_in_one_call(segmenter):
    frames, masks = square_frames(4)
    for f in frames:
        f[45:55, 60:70] = 220
    out = dict(
        propagate(segmenter, frames, {0: {1: Prompt(box=(5, 20, 21, 36)), 2: Prompt(box=(60, 45, 70, 55))}})
    )
    assert all(np.array_equal(out[t][1], masks[t]) for t in range(4))
    assert all(out[t][2].sum() == 100 for t in range(4))


@pytest.mark.parametrize(
    "prompts, objects, message",
    [
        (
            {12: {1: Prompt(box=(1, 1, 9, 9))}},
            None,
            "prompt on frame 12 is out of range (the video has frames 0..9)",
        ),
        (
            {0: {1: Prompt(box=(1, 1, 90, 9))}},
            None,
            "prompt on frame 0, object 1: box [1, 1, 90, 9] lies outside",
        ),
        ({0: {3: Prompt(box=(1, 1, 9, 9))}}, [1, 2], "prompt on frame 0, object 3: unknown object id 3"),
        ({0: {0: Prompt(box=(1, 1, 9, 9))}}, None, "object ids are positive integers"),
        ({0: {1: Prompt(points=[(4, 4)], labels=[0])}}, None, "object 1 has only negative points"),
        ({0: {1: Prompt(points=[(4, 70)], labels=[1])}}, None, "point (4, 70) lies outside the 80x60"),
        ({}, None, "no prompts"),
    ],
)
def test_bad_prompts_are_one_line_errors(prompts, objects, message):
    with pytest.raises(DataError) as err:
        check_prompts(prompts, 10, (60, 80), objects)
    assert message in str(err.value) and "\n" not in str(err.value)
