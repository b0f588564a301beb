"""``scopeseg track`` end to end on a tiny video (tiny memory-head checkpoint), prompt parsing and refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
from video_testutil import square_frames

from scopeseg.cli import main
from scopeseg.errors import ConfigError, DataError
from scopeseg.inference.video_objects import VideoFrames, parse_prompt_specs, read_prompts_json
from scopeseg.video_io import write_video


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    frames, _ = square_frames(12, size=(64, 96))
    return write_video(tmp_path_factory.mktemp("vid") / "clip.mp4", frames, fps=10)


@pytest.fixture(scope="module")
def checkpoint(tiny_memory_model, tmp_path_factory):
    return tiny_memory_model.save_pretrained(tmp_path_factory.mktemp("ckpt") / "memory")


def test_track_writes_coco_video_rle_and_overlay(video, checkpoint, tmp_path, capsys):
    import av

    out = tmp_path / "out"
    code = main(["-q", "track", str(checkpoint), str(video), str(out), "prompt=f0:box:5,20,21,36",
                 "prompt=f4:o2:point:60,40", "direction=both"])  # fmt: skip
    assert code == 0
    assert "2 objects over 12 frames (both, memory" in capsys.readouterr().out
    ds = json.loads((out / "predicted" / "annotations.json").read_text())
    assert [c["name"] for c in ds["categories"]] == ["object 1", "object 2"]
    assert len(ds["images"]) == 12 and [im["frame_index"] for im in ds["images"]] == list(range(12))
    assert all(a["segmentation"]["counts"] and a["track_id"] in (1, 2) for a in ds["annotations"])
    results = json.loads((out / "results.json").read_text())
    assert len(results) == len(ds["annotations"])
    with av.open(str(out / "clip_overlay.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 12
    code = main(["-q", "track", str(checkpoint), str(video), str(out), "prompt=f0:box:5,20,21,36"])
    assert code == 2  # an existing OUT is refused


@pytest.mark.parametrize(
    "prompt, message",
    [
        ("prompt=f20:box:5,20,21,36", "prompt on frame 20 is out of range (the video has frames 0..11)"),
        ("prompt=f0:box:5,20,210,36", "box [5, 20, 210, 36] lies outside the 96x64 (WxH) frame"),
        ("prompt=f0:o0:box:5,20,21,36", "object ids are positive integers"),
        ("prompt=f0:lasso:1,2", "kind must be box, point or mask"),
        ("prompt=f0:box:1,2,3", "a box is x0,y0,x1,y1"),
    ],
)
def test_bad_prompts_exit_2_in_one_line(video, checkpoint, tmp_path, capsys, prompt, message):
    code = main(["-q", "track", str(checkpoint), str(video), str(tmp_path / "out"), prompt])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_unknown_object_in_prompts_json(video, checkpoint, tmp_path, capsys):
    doc = {"objects": {"1": "grasper"}, "prompts": [{"frame": 0, "object": 1, "box": [5, 20, 21, 36]},
                                                    {"frame": 3, "object": 2, "points": [[30, 28, 1]]}]}  # fmt: skip
    (tmp_path / "p.json").write_text(json.dumps(doc))
    code = main(
        ["-q", "track", str(checkpoint), str(video), str(tmp_path / "out"), f"prompts={tmp_path / 'p.json'}"]
    )
    err = capsys.readouterr().err
    assert code == 2 and "unknown object id 2 (known: [1])" in err and err.count("\n") == 1


def test_prompt_grammar():
    p = parse_prompt_specs(["f0:box:1,2,30,40", "f0:box:50,2,60,40;f3:o1:point:5,6,0", "f3:o1:point:7,8"])
    assert sorted(p) == [0, 3] and sorted(p[0]) == [1, 2]
    assert p[0][2].box == (50.0, 2.0, 60.0, 40.0)
    assert p[3][1].points == ((5.0, 6.0), (7.0, 8.0)) and p[3][1].labels == (0, 1)
    with pytest.raises(ConfigError, match="already has a box"):
        parse_prompt_specs(["f0:o1:box:1,2,3,4", "f0:o1:box:1,2,3,4"])
    with pytest.raises(ConfigError, match="frame 'fx'"):
        parse_prompt_specs(["fx:box:1,2,3,4"])


def test_prompts_json_errors(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps([{"frame": "x", "box": [1, 2, 3, 4]}]))
    with pytest.raises(DataError, match="prompt 0: frame and object must be integers"):
        read_prompts_json(tmp_path / "a.json")
    (tmp_path / "b.json").write_text(json.dumps({"prompts": []}))
    with pytest.raises(DataError, match="no prompts"):
        read_prompts_json(tmp_path / "b.json")


def test_video_frames_random_access_holds_a_window(video):
    frames = VideoFrames(video, window=4)
    assert len(frames) == 12
    fwd = [frames[t] for t in range(12)]
    assert frames.decoded == 12 and len(frames._cache) == 4
    back = [frames[t] for t in range(11, -1, -1)]
    assert all(np.array_equal(a, b) for a, b in zip(fwd, back[::-1]))
    assert len(frames._cache) <= 4 and frames.decoded < 12 + 12 * 4  # re-decoded by windows, not per frame
    frames.close()


def test_tune_threshold_on_a_video_model(checkpoint, tmp_path, capsys):
    from tests.conftest import make_disc_videos

    data = make_disc_videos(tmp_path / "discs", videos=2, frames=4, size=(48, 64))
    out = tmp_path / "grid.json"
    assert main(["-q", "tune-threshold", str(checkpoint), str(data), str(out), "kernels=[0,3]"]) == 0
    r = json.loads(out.read_text())
    assert r["num_items"] == 2 * 4  # one disc per frame, prompted on frame 0 and propagated
    assert len(r["grid"]) == 2 * 17 and 0.0 <= r["best"]["score"] <= 1.0 and r["best"]["kernel"] in (0, 3)
    assert "best dice" in capsys.readouterr().out


def test_unreadable_video_is_one_line(checkpoint, tmp_path, capsys):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    code = main(["-q", "track", str(checkpoint), str(bad), str(tmp_path / "out"), "prompt=f0:box:1,1,5,5"])
    err = capsys.readouterr().err
    assert code == 2 and "bad.mp4" in err and err.count("\n") == 1 and not (tmp_path / "out").exists()


def test_backward_track_writes_frames_in_order(video, checkpoint, tmp_path):
    out = tmp_path / "out"
    assert (
        main(
            [
                "-q",
                "track",
                str(checkpoint),
                str(video),
                str(out),
                "prompt=f6:box:23,20,39,36",
                "direction=backward",
            ]
        )
        == 0
    )
    ds = json.loads((out / "predicted" / "annotations.json").read_text())
    assert [im["frame_index"] for im in ds["images"]] == list(range(7))
