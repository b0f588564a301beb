"""EndoVis 2017 (per-instrument part masks, crop) and EndoVis 2018 (RGB class colors).

2017 layout: challenge data page + ternaus/robot-surgery-segmentation ``prepare_data.py``
(``instrument_dataset_N/left_frames``, ``ground_truth/<Instrument>_labels``, part codes 10/20/30, crop at
(x=320, y=28) to 1280x1024). 2018 layout: ``seq_N/left_frames`` + ``seq_N/labels`` with the published
labels.json colors (mmsegmentation EndoVis2018RSS project, DKFZ MML ``endovis18_rob_instr``).
"""

from __future__ import annotations

import numpy as np
import pytest
from formats_helpers import assert_valid, blobs, coco_masks, rgb, shared, write

from scopeseg.data.coco import CocoDataset
from scopeseg.data.formats import convert, detect
from scopeseg.data.formats.endovis18 import LABELS
from scopeseg.io import read_image

H, W = 20, 28


def _parts(seed):
    lab = blobs(H, W, seed, n=3, k=3)
    return np.array([0, 10, 20, 30], np.uint8)[lab]


def _ev17(root, frames=3):
    for s in (1, 2):
        seq = root / f"instrument_dataset_{s}"
        for f in range(frames):
            write(seq / "left_frames" / f"frame{f:03d}.png", rgb(H, W, f))
            write(
                seq / "ground_truth" / "Left_Prograsp_Forceps_labels" / f"frame{f:03d}.png",
                _parts(f + 10 * s),
            )
            right = _parts(f + 100 * s)
            right[_parts(f + 10 * s) > 0] = 0  # instruments do not overlap
            write(seq / "ground_truth" / "Right_Large_Needle_Driver_labels" / f"frame{f:03d}.png", right)
            other = np.zeros((H, W), np.uint8)
            other[:3, :3] = 255
            write(seq / "ground_truth" / "Other_labels" / f"frame{f:03d}.png", other)
    return root


def test_endovis17_parts_round_trip_identical(tmp_path):
    src = _ev17(tmp_path / "ev17")
    assert detect(src) == "endovis2017"
    rep = convert(src, tmp_path / "coco", labels="parts")
    assert_valid(tmp_path / "coco")
    ds = CocoDataset.load(tmp_path / "coco")
    assert {c["name"]: c["code"] for c in ds.categories.values()} == {
        "shaft": 10,
        "wrist": 20,
        "claspers": 30,
    }
    assert rep.counts["videos"] == 2 and rep.counts["images"] == 6
    assert [ds.images[i]["frame_index"] for i in ds.video_frames(2)] == [0, 1, 2]
    convert(tmp_path / "coco", tmp_path / "back", to_format="endovis2017")
    for p in src.rglob("*_labels/*.png"):
        if "Other" in p.parent.name:
            assert not (tmp_path / "back" / p.relative_to(src)).exists()  # challenge parts exclude "Other"
            continue
        assert np.array_equal(
            read_image(tmp_path / "back" / p.relative_to(src), "unchanged"), read_image(p, "unchanged")
        )


def test_endovis17_type_and_binary_labels(tmp_path):
    src = _ev17(tmp_path / "ev17", frames=1)
    convert(src, tmp_path / "type", labels="type")
    ds = CocoDataset.load(tmp_path / "type")
    names = {a["instrument"]: ds.categories[a["category_id"]]["name"] for a in ds.annotations.values()}
    assert names == {
        "Left_Prograsp_Forceps_labels": "Prograsp Forceps",
        "Right_Large_Needle_Driver_labels": "Large Needle Driver",
        "Other_labels": "Other",
    }
    convert(src, tmp_path / "bin", labels="binary")
    seq = src / "instrument_dataset_1" / "ground_truth"
    union = sum(
        read_image(seq / d / "frame000.png", "unchanged") > 0
        for d in ("Left_Prograsp_Forceps_labels", "Right_Large_Needle_Driver_labels")
    )
    assert np.array_equal(
        coco_masks(tmp_path / "bin")["instrument_dataset_1/left_frames/frame000.png"] > 0, union > 0
    )
    # documented loss: a type data set exported back has 255 instead of the part codes
    convert(tmp_path / "type", tmp_path / "tback", to_format="endovis2017")
    back = read_image(
        tmp_path / "tback/instrument_dataset_1/ground_truth/Left_Prograsp_Forceps_labels/frame000.png",
        "unchanged",
    )
    orig = read_image(seq / "Left_Prograsp_Forceps_labels" / "frame000.png", "unchanged")
    assert np.array_equal(back > 0, orig > 0) and set(np.unique(back)) <= {0, 255}


def test_endovis17_real_frame_with_crop(tmp_path):
    data = shared("endovis17_unclear")
    seq = tmp_path / "ev" / "instrument_dataset_1"
    (seq / "left_frames").mkdir(parents=True)
    (seq / "left_frames" / "frame000.png").symlink_to(data / "images" / "frame.png")
    for side in ("left", "right"):
        d = seq / "ground_truth" / f"{side.title()}_Prograsp_Forceps_labels"
        d.mkdir(parents=True)
        (d / "frame000.png").symlink_to(data / "masks" / f"frame_{side}_instrument.png")
    convert(tmp_path / "ev", tmp_path / "coco", labels="parts", crop=True)
    ds = CocoDataset.load(tmp_path / "coco")
    im = ds.images[1]
    assert (im["height"], im["width"]) == (1024, 1280)
    full = read_image(data / "masks" / "frame.png", "unchanged")[28:1052, 320:1600]
    lab = coco_masks(tmp_path / "coco")[im["file_name"]]
    assert np.array_equal(lab, np.array([0, 1, 2, 3] + [0] * 27, np.int32)[full // 10 * (full % 10 == 0)])
    assert np.array_equal(ds.load_image(1), read_image(data / "images" / "frame.png")[28:1052, 320:1600])


def test_endovis17_bad_inputs(tmp_path, bad_input):
    src = _ev17(tmp_path / "a", frames=2)
    (src / "instrument_dataset_2/ground_truth/Other_labels/frame001.png").unlink()
    bad_input(
        ["convert", src, tmp_path / "o1"], tmp_path / "o1", "Other_labels: no mask for frame frame001.png"
    )
    src = _ev17(tmp_path / "b", frames=1)
    write(src / "instrument_dataset_1/ground_truth/Other_labels/frame000.png", np.zeros((H, 5), np.uint8))
    bad_input(["convert", src, tmp_path / "o2"], tmp_path / "o2", "frame000.png: mask size")
    src = _ev17(tmp_path / "c", frames=1)
    m = _parts(0)
    m[0, 0] = 40
    write(src / "instrument_dataset_2/ground_truth/Left_Prograsp_Forceps_labels/frame000.png", m)
    bad_input(["convert", src, tmp_path / "o3", "labels=parts"], tmp_path / "o3", "unknown part value 40")
    src = _ev17(tmp_path / "d", frames=1)
    (src / "instrument_dataset_1/ground_truth/Left_Prograsp_Forceps_labels/frame000.png").write_bytes(b"junk")
    bad_input(["convert", src, tmp_path / "o4"], tmp_path / "o4", "Left_Prograsp_Forceps_labels/frame000.png")
    src = _ev17(tmp_path / "e", frames=1)
    bad_input(["convert", src, tmp_path / "o5", "crop=true"], tmp_path / "o5", "cannot crop a 20x28 frame")
    (tmp_path / "f" / "instrument_dataset_1" / "left_frames").mkdir(parents=True)
    bad_input(["convert", tmp_path / "f", tmp_path / "o6", "from=endovis2017"], tmp_path / "o6", "no frames")


# ---------------------------------------------------------------------------------------------- 2018
PALETTE = np.array([c["color"] for c in LABELS], np.uint8)


def _ev18(root, seqs=(1, 3), frames=2, size=(H, W)):
    labs = {}
    for s in seqs:
        for f in range(frames):
            lab = blobs(*size, 7 * s + f, n=4, k=11)
            write(root / f"seq_{s}" / "left_frames" / f"frame{f:03d}.png", rgb(*size, f))
            write(root / f"seq_{s}" / "labels" / f"frame{f:03d}.png", PALETTE[lab])
            labs[f"seq_{s}/left_frames/frame{f:03d}.png"] = lab
    return root, labs


def test_endovis18_round_trip_and_table(tmp_path):
    src, labs = _ev18(tmp_path / "ev18")
    assert detect(src) == "endovis2018"
    convert(src, tmp_path / "coco")
    assert_valid(tmp_path / "coco")
    ds = CocoDataset.load(tmp_path / "coco")
    assert [(c["id"], c["name"], c["color"]) for c in ds.categories.values()] == [
        (c["classid"], c["name"], c["color"]) for c in LABELS[1:]
    ]
    assert ds.info["background"] == {"id": 0, "name": "background-tissue", "color": [0, 0, 0]}
    assert [v["name"] for v in ds.videos.values()] == ["seq_1", "seq_3"]
    assert {k: v.astype(np.uint8).tolist() for k, v in coco_masks(tmp_path / "coco").items()} == {
        k: v.tolist() for k, v in labs.items()
    }
    convert(tmp_path / "coco", tmp_path / "back", to_format="endovis2018")
    for p in src.rglob("labels/*.png"):
        assert np.array_equal(read_image(tmp_path / "back" / p.relative_to(src)), read_image(p))
    import json

    assert json.loads((tmp_path / "back" / "labels.json").read_text()) == LABELS


def test_endovis18_bad_inputs(tmp_path, bad_input):
    src, _ = _ev18(tmp_path / "a")
    (src / "seq_3/labels/frame001.png").unlink()
    bad_input(["convert", src, tmp_path / "o1"], tmp_path / "o1", "seq_3/left_frames/frame001.png: no label")
    src, _ = _ev18(tmp_path / "b")
    m = read_image(src / "seq_1/labels/frame000.png")
    m[0, 0] = (1, 2, 3)
    write(src / "seq_1/labels/frame000.png", m)
    bad_input(["convert", src, tmp_path / "o2"], tmp_path / "o2", "frame000.png: unknown color (1, 2, 3)")
    src, _ = _ev18(tmp_path / "c")
    write(src / "seq_1/labels/frame001.png", np.zeros((H, W + 2, 3), np.uint8))
    bad_input(["convert", src, tmp_path / "o3"], tmp_path / "o3", "frame001.png: mask size")
    src, _ = _ev18(tmp_path / "d")
    (src / "seq_1/labels/frame001.png").write_bytes(b"")
    bad_input(["convert", src, tmp_path / "o4"], tmp_path / "o4", "seq_1/labels/frame001.png")
    (tmp_path / "e" / "seq_1" / "left_frames").mkdir(parents=True)
    (tmp_path / "e" / "seq_1" / "labels").mkdir()
    bad_input(["convert", tmp_path / "e", tmp_path / "o5"], tmp_path / "o5", "no frames")


@pytest.mark.parametrize("size", [(1024, 1280)])
def test_endovis18_full_size_frame(tmp_path, size):
    """One frame at the challenge's 1024x1280: every class color decodes to its id."""
    src, labs = _ev18(tmp_path / "big", seqs=(2,), frames=1, size=size)
    convert(src, tmp_path / "coco")
    got = coco_masks(tmp_path / "coco")["seq_2/left_frames/frame000.png"]
    assert np.array_equal(got, labs["seq_2/left_frames/frame000.png"])
