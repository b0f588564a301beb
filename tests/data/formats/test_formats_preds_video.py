"""TAPIS/LEMIS prediction files <-> COCO results, unlabelled videos -> frames, registry / CLI / mapping.

TAPIS layout: BCV-Uniandes/GraSP ``TAPIS/data/match_annots_n_preds.py`` (``format_instances``: bbox
normalised [x1, y1, x2, y2], ``instruments_score_dist``, ``segment``) and its evaluation code
(class = argmax + 1). Videos: any PyAV-readable file (the fixture is written with ``write_video``).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from formats_helpers import assert_valid, blobs, coco_masks, rgb, shared, write

from scopeseg.data import rle as rle_utils
from scopeseg.data.coco import CocoDataset
from scopeseg.data.formats import convert, detect, list_formats
from scopeseg.errors import ConfigError, DataError

H, W = 20, 30


def _gt(root):
    ds = CocoDataset(root=root)
    for cid, name in ((1, "Bipolar Forceps"), (2, "Prograsp Forceps"), (3, "Clip Applier")):
        ds.add_category(name, id=cid)
    for i, name in enumerate(("CASE041/00000.jpg", "CASE041/00035.jpg")):
        write(root / name, rgb(H, W, i))
        ds.add_image(name, H, W, id=10 + i)
    ds.save(root)
    return root


def _tapis_preds(path):
    preds = {}
    for i, name in enumerate(("CASE041/00000.jpg", "CASE041/00035.jpg")):
        insts = []
        for k in range(2):
            m = blobs(H, W, 10 * i + k, n=1) > 0
            seg = rle_utils.encode(m)
            x, y, w, h = rle_utils.bbox(seg)
            dist = np.random.default_rng(10 * i + k).dirichlet([1, 1, 1]).tolist()
            insts.append(
                {
                    "bbox": [x / W, y / H, (x + w) / W, (y + h) / H],
                    "instruments_score_dist": dist,
                    "segment": seg,
                    "actions_score_dist": [0.1, 0.9],
                }
            )
        preds[name] = {"instances": insts}
    path.write_text(json.dumps(preds))
    return preds


def test_tapis_predictions_round_trip(tmp_path):
    gt = _gt(tmp_path / "gt")
    preds = _tapis_preds(tmp_path / "preds.json")
    assert detect(tmp_path / "preds.json") == "tapis-preds"
    convert(tmp_path / "preds.json", tmp_path / "results.json", gt=gt)
    results = json.loads((tmp_path / "results.json").read_text())
    assert len(results) == 4
    first = preds["CASE041/00000.jpg"]["instances"][0]
    r0 = results[0]
    assert r0["image_id"] == 10 and r0["category_id"] == int(np.argmax(first["instruments_score_dist"])) + 1
    assert r0["score"] == max(first["instruments_score_dist"]) and r0["actions_score_dist"] == [0.1, 0.9]
    assert r0["bbox"] == pytest.approx(rle_utils.bbox(first["segment"]))
    convert(tmp_path / "results.json", tmp_path / "back.json", to_format="tapis-preds", gt=gt)
    back = json.loads((tmp_path / "back.json").read_text())
    for name, entry in preds.items():
        for a, b in zip(entry["instances"], back[name]["instances"]):
            assert b["instruments_score_dist"] == a["instruments_score_dist"]
            assert b["bbox"] == pytest.approx(a["bbox"])
            assert np.array_equal(rle_utils.decode(b["segment"]), rle_utils.decode(a["segment"]))
    # documented loss: results without score_dist become one-hot distributions
    for r in results:
        r.pop("score_dist")
    (tmp_path / "r2.json").write_text(json.dumps(results))
    rep = convert(tmp_path / "r2.json", tmp_path / "b2.json", to_format="tapis-preds", gt=gt)
    assert any("one-hot" in w for w in rep.warnings)
    b2 = json.loads((tmp_path / "b2.json").read_text())["CASE041/00000.jpg"]["instances"][0][
        "instruments_score_dist"
    ]
    assert b2 == [r0["score"] if k + 1 == r0["category_id"] else 0.0 for k in range(3)]


def test_tapis_bad_inputs(tmp_path, bad_input):
    gt = _gt(tmp_path / "gt")
    preds = _tapis_preds(tmp_path / "p.json")
    preds["CASE099/00000.jpg"] = {"instances": []}
    (tmp_path / "p.json").write_text(json.dumps(preds))
    bad_input(
        ["convert", tmp_path / "p.json", tmp_path / "o1.json", f"gt={gt}"],
        tmp_path / "o1.json",
        "p.json: prediction for 'CASE099/00000.jpg'",
    )
    preds = _tapis_preds(tmp_path / "q.json")
    preds["CASE041/00000.jpg"]["instances"][1]["instruments_score_dist"] = [0.5, 0.5]
    (tmp_path / "q.json").write_text(json.dumps(preds))
    bad_input(
        ["convert", tmp_path / "q.json", tmp_path / "o2.json", f"gt={gt}"],
        tmp_path / "o2.json",
        "instance 1: instruments_score_dist must list 3",
    )
    (tmp_path / "r.json").write_text(json.dumps([{"image_id": 10, "category_id": 7, "score": 1.0}]))
    bad_input(
        ["convert", tmp_path / "r.json", tmp_path / "o3.json", "to=tapis-preds", f"gt={gt}"],
        tmp_path / "o3.json",
        "category_id 7 is not a ground-truth category",
    )
    bad_input(
        ["convert", tmp_path / "p.json", tmp_path / "o4.json", "from=tapis-preds"],
        tmp_path / "o4.json",
        "gt=DATA",
    )


# ---------------------------------------------------------------------------------------------- video
def _videos(root):
    from scopeseg.video_io import write_video

    root.mkdir(parents=True, exist_ok=True)
    for name, n in (("clipA.mp4", 7), ("clipB.mkv", 4)):
        frames = [np.roll(rgb(32, 48, 0), 3 * i, axis=1) for i in range(n)]
        write_video(root / name, frames, fps=10)
    return root


def test_video_frames_with_stride(tmp_path):
    from scopeseg.video_io import iter_frames

    src = _videos(tmp_path / "vids")
    assert detect(src) == "video" and detect(src / "clipA.mp4") == "video"
    rep = convert(src, tmp_path / "coco", stride=3)
    assert_valid(tmp_path / "coco")
    ds = CocoDataset.load(tmp_path / "coco")
    assert rep.counts["videos"] == 2 and rep.counts["images"] == 3 + 2
    va = next(v for v, x in ds.videos.items() if x["name"] == "clipA")
    assert ds.videos[va]["fps"] == pytest.approx(10) and ds.videos[va]["stride"] == 3
    frames = ds.video_frames(va)
    assert [ds.images[i]["frame_index"] for i in frames] == [0, 3, 6]
    for iid, (idx, ref) in zip(frames, iter_frames(src / "clipA.mp4", 3)):
        assert ds.images[iid]["frame_index"] == idx and np.array_equal(
            ds.load_image(iid), ref
        )  # lossless PNG
    # export re-encodes (H.264: lossy, documented): same frames count and size, close pixels
    convert(tmp_path / "coco", tmp_path / "mp4", to_format="video")
    back = [f for _, f in iter_frames(tmp_path / "mp4" / "clipA.mp4")]
    assert len(back) == 3 and back[0].shape == (32, 48, 3)
    mse = np.mean((back[1].astype(float) - ds.load_image(frames[1]).astype(float)) ** 2)
    assert 10 * np.log10(255**2 / mse) > 20


def test_video_real_clip(tmp_path):
    data = shared("endovis17_unclear")
    convert(data / "video" / "short_source.mp4", tmp_path / "coco", stride=10)
    ds = CocoDataset.load(tmp_path / "coco")
    assert [im["frame_index"] for im in ds.images.values()] == [0, 10]
    assert (ds.images[1]["height"], ds.images[1]["width"]) == (1080, 1920)


def test_video_bad_inputs(tmp_path, bad_input):
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 garbage" * 10)
    bad_input(["convert", tmp_path / "broken.mp4", tmp_path / "o1"], tmp_path / "o1", "broken.mp4")
    (tmp_path / "none").mkdir()
    bad_input(
        ["convert", tmp_path / "none", tmp_path / "o2", "from=video"], tmp_path / "o2", "no video files"
    )
    _videos(tmp_path / "v")
    bad_input(
        ["convert", tmp_path / "v", tmp_path / "o3", "stride=0"], tmp_path / "o3", "stride must be >= 1"
    )


# ---------------------------------------------------------------------------------------------- registry / CLI
def _pairs(root, n=2, k=3):
    for i in range(n):
        write(root / "images" / f"{i}.png", rgb(H, W, i))
        write(root / "masks" / f"{i}.png", blobs(H, W, i, n=4, k=k))
    return root


def test_mapping_renames_merges_and_drops(tmp_path):
    src = _pairs(tmp_path / "src")
    (tmp_path / "classes.json").write_text(json.dumps({"polyp": 1, "tool": 2, "smoke": 3}))
    (tmp_path / "map.json").write_text(json.dumps({"tool": "instrument", "smoke": None, "ghost": "x"}))
    rep = convert(src, tmp_path / "coco", classes=tmp_path / "classes.json", mapping=tmp_path / "map.json")
    ds = CocoDataset.load(tmp_path / "coco")
    assert {c: x["name"] for c, x in ds.categories.items()} == {1: "polyp", 2: "instrument"}
    assert rep.counts["dropped_annotations"] > 0 and any("'ghost'" in w for w in rep.warnings)
    (tmp_path / "merge.json").write_text(json.dumps({"tool": "polyp"}))
    convert(src, tmp_path / "merged", classes=tmp_path / "classes.json", mapping=tmp_path / "merge.json")
    got = coco_masks(tmp_path / "merged")["images/0.png"]
    lab = blobs(H, W, 0, n=4, k=3)
    assert np.array_equal(got, np.array([0, 1, 1, 3])[lab])
    # the same mapping applies on export
    convert(tmp_path / "coco", tmp_path / "out", to_format="mask-folder", mapping=tmp_path / "merge.json")


def test_cli_summary_detection_and_errors(tmp_path, cli, bad_input):
    src = _pairs(tmp_path / "src")
    rc, out, _ = cli("convert", src, tmp_path / "coco", f"classes={tmp_path / 'nope.json'}")
    assert rc == 2
    rc, out, err = cli("convert", src, tmp_path / "coco", "mask_mode=index")
    assert rc == 0 and "mask-folder -> coco" in out and "images=2" in out
    bad_input(
        ["convert", src, tmp_path / "coco2", "from=endovis2017", "labels=nonsense"],
        tmp_path / "coco2",
        "labels must be one of",
    )
    rc, _, err = cli("convert", src, tmp_path / "coco")
    assert rc == 2 and "already exists" in err
    rc, out, _ = cli("convert", src, tmp_path / "coco", "--overwrite", "mask_mode=index")
    assert rc == 0
    bad_input(["convert", src, tmp_path / "x", "crop=true"], tmp_path / "x", "has no option 'crop'")
    rc, out, _ = cli("convert", "--list")
    assert rc == 0 and len(out.strip().splitlines()) == len(list_formats()) >= 12
    # a folder that two formats claim equally is refused
    amb = tmp_path / "amb"
    (amb / "seq_1" / "left_frames").mkdir(parents=True)
    (amb / "seq_1" / "labels").mkdir()
    (amb / "seq_1" / "ground_truth" / "Other_labels").mkdir(parents=True)
    with pytest.raises(DataError, match="ambiguous"):
        detect(amb)
    with pytest.raises(ConfigError, match="unknown data format"):
        convert(src, tmp_path / "y", from_format="nope")


def test_foreign_to_foreign_chain(tmp_path):
    from scopeseg.data.formats.endovis18 import LABELS

    palette = np.array([c["color"] for c in LABELS], np.uint8)
    src = tmp_path / "ev18"
    lab = blobs(H, W, 5, n=4, k=11)
    write(src / "seq_1" / "left_frames" / "frame000.png", rgb(H, W))
    write(src / "seq_1" / "labels" / "frame000.png", palette[lab])
    convert(src, tmp_path / "d2", from_format="endovis2018", to_format="detectron2-semseg")
    from scopeseg.io import read_image

    sem = read_image(tmp_path / "d2" / "sem_seg" / "frame000.png", "unchanged")
    assert np.array_equal(sem, np.where(lab == 0, 255, lab - 1))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".convert")]


def test_conversion_memory_does_not_grow_with_frames(tmp_path):
    """Streaming: peak traced memory for 4x the frames grows by far less than the masks it encoded."""
    import tracemalloc

    def peak(n: int) -> int:
        src = tmp_path / f"s{n}"
        for i in range(n):
            write(src / "images" / f"{i}.png", np.zeros((96, 128, 3), np.uint8))
            write(src / "masks" / f"{i}.png", blobs(96, 128, i, n=6, k=5))
        tracemalloc.start()
        convert(src, tmp_path / f"o{n}", mask_mode="index")
        p = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return p

    peak(3)  # one-time allocations (imports, caches)
    small, large = peak(15), peak(60)
    per_frame = (large - small) / 45
    assert per_frame < 4_000, (small, large)  # a decoded mask alone is 12 kB; image records stay < 4 kB


def test_cli_video_stride(tmp_path, cli):
    src = _videos(tmp_path / "v")
    rc, out, _ = cli("convert", src / "clipA.mp4", tmp_path / "frames", "stride=2")
    assert rc == 0 and "images=4" in out and "videos=1" in out
