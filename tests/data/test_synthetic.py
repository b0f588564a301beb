"""Synthetic scope videos: determinism, exact masks, COCO-video layout, smooth motion, CLI."""

from __future__ import annotations

import re

import numpy as np
import pytest

from scopeseg.cli import main
from scopeseg.config import validate_config
from scopeseg.data import rle as rle_utils
from scopeseg.data.coco import CocoDataset
from scopeseg.data.synthetic import (
    CATEGORY_IDS,
    INSTRUMENT_STYLES,
    SynthConfig,
    categories,
    generate,
    render_video,
    video_seed,
)
from scopeseg.errors import ConfigError, DataError

SMALL = {"size": (96, 128), "frames": 4}


def _video(seed: int, **kw):
    return list(render_video(seed, SynthConfig(**{**SMALL, **kw}), with_tracks=True))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "ds"
    cfg = SynthConfig(
        videos=2, frames=4, size=(96, 128), seed=3, polyp_prob=1.0, splits={"train": 0.5, "val": 0.5}
    )
    return out, cfg, generate(out, cfg, progress=False)


def test_same_seed_same_video_and_different_seeds_differ():
    a, b, c = _video(11), _video(11), _video(12)
    for (fa, ia), (fb, ib) in zip(a, b):
        assert np.array_equal(fa, fb)
        assert [(x[0], x[2]) for x in ia] == [(x[0], x[2]) for x in ib]
        assert all(np.array_equal(x[1], y[1]) for x, y in zip(ia, ib))
    assert not np.array_equal(a[0][0], c[0][0])


def test_video_seed_depends_only_on_index():
    assert video_seed(0, 3) == video_seed(0, 3)
    assert len({video_seed(0, k) for k in range(50)}) == 50
    assert video_seed(0, 1) != video_seed(1, 1)


def test_masks_inside_fov_disjoint_and_frames_black_outside():
    for seed in (1, 2, 5):
        for frame, inst in _video(seed, max_instruments=3, polyp_prob=1.0):
            assert frame.dtype == np.uint8 and frame.shape == (96, 128, 3)
            stack = np.stack([m for _, m, _ in inst]) if inst else np.zeros((0, 96, 128), bool)
            assert (stack.sum(0) <= 1).all(), "visible instance masks must not overlap"
            lit = frame.max(axis=-1) > 0
            assert not (stack.any(0) & ~lit).any(), "mask pixels must lie inside the (lit) field of view"
            assert frame[0, 0].max() == 0 or frame[-1, -1].max() == 0 or frame[0, -1].max() == 0
            assert len({t for _, _, t in inst}) == len(inst)


def test_instruments_move_smoothly():
    h, w = 120, 184
    cfg = SynthConfig(size=(h, w), frames=24, max_instruments=1, polyp_prob=0.0)
    for seed in (1, 4):
        prev = None
        for _, inst in render_video(seed, cfg, with_tracks=True):
            if not inst:
                prev = None
                continue
            ys, xs = np.nonzero(inst[0][1])
            c = np.array([ys.mean(), xs.mean()])
            if prev is not None and len(ys) > 200:
                assert np.linalg.norm(c - prev) < 0.06 * max(h, w)
            prev = c if len(ys) > 200 else None


def test_categories_have_ids_names_supercategories_colors():
    cats = categories()
    assert [c["name"] for c in cats] == [*INSTRUMENT_STYLES, "polyp"]
    assert [c["id"] for c in cats] == list(range(1, len(cats) + 1))
    assert {c["supercategory"] for c in cats} == {"instrument", "tissue"}
    assert CATEGORY_IDS["polyp"] == len(cats)
    assert len({tuple(c["color"]) for c in cats}) == len(cats)


def test_generate_writes_coco_video(tiny):
    out, cfg, ds = tiny
    loaded = CocoDataset.load(out)
    assert [v["name"] for v in loaded.videos.values()] == ["vid000", "vid001"]
    assert len(loaded.images) == 8
    for vid in loaded.videos:
        frames = loaded.video_frames(vid)
        assert [loaded.images[i]["frame_index"] for i in frames] == [0, 1, 2, 3]
        for i in frames:
            im = loaded.images[i]
            assert re.fullmatch(r"frames/vid00\d/0000\d\.jpg", im["file_name"])
            assert (out / im["file_name"]).is_file()
            assert loaded.load_image(i).shape == (96, 128, 3)
        assert (out / "videos" / f"{loaded.videos[vid]['name']}.mp4").is_file()
    assert {im["split"] for im in loaded.images.values()} == {"train", "val"}
    assert {c["name"] for c in loaded.categories.values()} >= {"grasper", "polyp"}
    for a in loaded.annotations.values():
        m = loaded.mask(a)
        assert a["area"] == int(m.sum()) > 0
        assert a["bbox"] == rle_utils.bbox(rle_utils.encode(m))
        ys, xs = np.nonzero(m)
        assert a["bbox"] == [
            float(xs.min()),
            float(ys.min()),
            float(xs.max() - xs.min() + 1),
            float(ys.max() - ys.min() + 1),
        ]
    # the annotations are the masks render_video gives for the same per-video seed
    vid0 = list(render_video(video_seed(3, 0), cfg))
    first = loaded.video_frames(1)[0]
    masks, cids, _ = loaded.instance_masks(first)
    assert cids == [c for c, _ in vid0[0][1]]
    assert all(np.array_equal(m, r) for m, (_, r) in zip(masks, vid0[0][1]))


def test_generate_is_deterministic_and_replaces_only_datasets(tiny, tmp_path):
    out, cfg, _ = tiny
    again = tmp_path / "again"
    generate(again, cfg, progress=False)
    assert (again / "annotations.json").read_bytes() == (out / "annotations.json").read_bytes()
    generate(again, cfg.model_copy(update={"videos": 1}), progress=False)  # replaces the old data set
    assert len(CocoDataset.load(again).videos) == 1
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    with pytest.raises(DataError, match="refusing"):
        generate(other, cfg, progress=False)
    assert (other / "keep.txt").exists()


def test_config_validation():
    assert SynthConfig(size="64x80").size == (64, 80)
    with pytest.raises(ConfigError, match="difficulty"):
        validate_config(SynthConfig, {"difficulty": 1.5})
    with pytest.raises(ConfigError, match="HEIGHTxWIDTH"):
        SynthConfig(size="64")
    with pytest.raises(ConfigError, match="did you mean"):
        validate_config(SynthConfig, {"vidoes": 2})


def test_cli_synth_and_preview(tmp_path, capsys):
    out = tmp_path / "d"
    rc = main(
        [
            "-q",
            "synth",
            str(out),
            "videos=2",
            "frames=3",
            "size=96x128",
            "image_format=png",
            "polyp_prob=0",
            "splits=train=0.5,val=0.5",
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0
    assert "2 videos, 6 frames (96x128)" in text and str(out) in text
    ds = CocoDataset.load(out)
    assert all(im["file_name"].endswith(".png") for im in ds.images.values())
    assert not any(a["category_id"] == CATEGORY_IDS["polyp"] for a in ds.annotations.values())
    rc = main(["-q", "preview", str(out), str(tmp_path / "pv"), "--max-frames", "4"])
    assert rc == 0
    assert (tmp_path / "pv" / "preview.jpg").is_file()
    assert sorted(p.name for p in (tmp_path / "pv").glob("*.mp4")) == [
        "vid000_overlay.mp4",
        "vid001_overlay.mp4",
    ]


@pytest.mark.parametrize("bad", [["size=96"], ["size=axb"], ["splits=train"], ["difficulty=3"]])
def test_cli_bad_options_exit_2_with_one_line(tmp_path, capsys, bad):
    rc = main(["synth", str(tmp_path / "x"), *bad])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("error: ") and err.count("\n") == 1
    assert not (tmp_path / "x").exists()


def test_longer_video_starts_with_the_same_frames():
    short = _video(7, frames=2)
    longer = _video(7, frames=4)
    for (fa, ia), (fb, ib) in zip(short, longer[:2]):
        assert np.array_equal(fa, fb) and len(ia) == len(ib)
