"""Canonical data model: round trips, polygons, video fields, merge/split/filter, lazy masks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from scopeseg.data import rle as rle_utils
from scopeseg.data.coco import CocoDataset, load_dataset
from scopeseg.data.ops import write_relocated
from scopeseg.errors import DataError


def shoelace(poly: list[float]) -> float:
    p = np.asarray(poly, dtype=float).reshape(-1, 2)
    x, y = p[:, 0], p[:, 1]
    return 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 48) -> list[float]:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], 1).ravel().tolist()


def rle_of(mask: np.ndarray) -> dict:
    return rle_utils.encode(mask)


def canonical_dict(n_videos: int = 2, frames: int = 3, h: int = 24, w: int = 32) -> dict:
    """A small canonical COCO-video dict (every field as ``to_dict`` writes it)."""
    images, anns = [], []
    for v in range(n_videos):
        for f in range(frames):
            iid = len(images) + 1
            images.append({"id": iid, "file_name": f"v{v}/{f:03d}.png", "height": h, "width": w,
                           "video_id": v + 1, "frame_index": f})  # fmt: skip
            m = np.zeros((h, w), bool)
            m[2 + f : 10 + f, 3 + v : 12 + v] = True
            r = rle_of(m)
            anns.append({"id": len(anns) + 1, "image_id": iid, "category_id": 1 + (iid % 2), "segmentation": r,
                         "area": rle_utils.area(r), "bbox": rle_utils.bbox(r), "iscrowd": 0})  # fmt: skip
    return {
        "info": {"description": "tiny", "version": "1"},
        "licenses": [{"id": 1, "name": "CC0"}],
        "extra_top_level": {"kept": True},
        "videos": [{"id": v + 1, "name": f"video{v}"} for v in range(n_videos)],
        "images": images,
        "annotations": anns,
        "categories": [{"id": 1, "name": "grasper", "color": [10, 20, 30]}, {"id": 2, "name": "hook"}],
    }


def write(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


# ---------------------------------------------------------------------------------------------- round trips
def test_save_load_round_trip_identical(tmp_path):
    data = canonical_dict()
    src = write(tmp_path / "a" / "annotations.json", data)
    ds = CocoDataset.load(src.parent)
    assert ds.root == src.parent and ds.path == src
    assert ds.to_dict() == data
    out = ds.save(tmp_path / "b")
    assert out == tmp_path / "b" / "annotations.json"
    again = CocoDataset.load(out)
    assert again.to_dict() == data
    assert json.loads(out.read_text()) == data
    out2 = again.save(tmp_path / "c.json")
    assert out2.read_bytes() == out.read_bytes()  # byte-identical on a second round


def test_polygon_to_rle_to_polygon_area_within_1_percent(tmp_path):
    h, w = 120, 160
    data = canonical_dict(1, 1, h, w)
    polys = [ellipse(70, 60, 40, 25), ellipse(20, 20, 9, 6, n=12)]
    data["annotations"] = [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [polys[0]], "iscrowd": 0},
                           {"id": 2, "image_id": 1, "category_id": 2, "segmentation": [polys[1]], "iscrowd": 0}]  # fmt: skip
    ds = CocoDataset.from_dict(data)
    for aid, poly in zip((1, 2), polys):
        seg = ds.annotations[aid]["segmentation"]
        assert (
            isinstance(seg, dict) and isinstance(seg["counts"], str) and seg["size"] == [h, w]
        )  # converted on load
        a_poly, a_rle = shoelace(poly), rle_utils.area(seg)
        assert abs(a_rle - a_poly) / a_poly < (0.01 if aid == 1 else 0.05)
        back = rle_utils.mask_to_polygons(ds.mask(aid))
        assert len(back) == 1
        assert abs(shoelace(back[0]) - a_rle) / a_rle < 0.01
        assert abs(shoelace(back[0]) - a_poly) / a_poly < (0.01 if aid == 1 else 0.05)
        # pixel-edge polygons rasterise back to the identical mask
        again = rle_utils.decode(rle_utils.polygons_to_rle(back, h, w))
        assert (again == ds.mask(aid)).all()
    assert ds.to_dict()["annotations"][0]["segmentation"] == ds.annotations[1]["segmentation"]


def test_mask_to_polygons_exact_on_random_blobs():
    from scipy import ndimage as ndi

    rng = np.random.default_rng(0)
    for _ in range(20):
        m = ndi.binary_fill_holes(ndi.gaussian_filter(rng.random((30, 40)), 2.5) > 0.5)
        back = rle_utils.decode(rle_utils.polygons_to_rle(rle_utils.mask_to_polygons(m), 30, 40))
        assert (back == m).all()


def test_rle_helpers_against_pycocotools():
    rng = np.random.default_rng(1)
    masks = rng.random((3, 17, 23)) < 0.4
    rles = rle_utils.encode_many(masks)
    for m, r in zip(masks, rles):
        assert (rle_utils.decode(r) == m).all()
        assert rle_utils.area(r) == m.sum()
        assert rle_utils.counts_total(r) == 17 * 23
        ys, xs = np.nonzero(m)
        assert rle_utils.bbox(r) == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
    unc = {"size": [17, 23], "counts": [5, 10, 17 * 23 - 15]}
    assert rle_utils.area(unc) == 10 and rle_utils.counts_total(unc) == 17 * 23
    assert rle_utils.compress(unc)["counts"] == mask_utils.frPyObjects(unc, 17, 23)["counts"].decode()
    iou = rle_utils.iou_matrix(rles[:1], rles)
    assert iou[0, 0] == pytest.approx(1.0)


def test_lazy_load_does_not_decode(tmp_path, monkeypatch):
    data = canonical_dict(2, 50)
    src = write(tmp_path / "annotations.json", data)

    def boom(*a, **k):
        raise AssertionError("mask decoded during load")

    monkeypatch.setattr(rle_utils, "decode", boom)
    monkeypatch.setattr(mask_utils, "decode", boom)
    ds = CocoDataset.load(src)
    assert len(ds.annotations) == 100 and len(ds.summary()["categories"]) == 2


# ---------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "content, match",
    [("{not json", "malformed JSON"), ("[1, 2]", "must be an object"), ('{"annotations": []}', "no 'images'"),
     ('{"images": {}}', "'images' must be a list"), ('{"images": [1]}', "not an object")],
)  # fmt: skip
def test_load_errors_are_one_line_data_errors(tmp_path, content, match):
    p = tmp_path / "bad.json"
    p.write_text(content)
    with pytest.raises(DataError, match=match) as e:
        CocoDataset.load(p)
    assert str(p) in str(e.value) and "\n" not in str(e.value)


def test_missing_data_set(tmp_path):
    with pytest.raises(DataError, match="data set not found"):
        load_dataset(tmp_path / "nope")


def test_duplicates_are_kept_aside_and_written_back():
    data = canonical_dict(1, 2)
    dup_same = dict(data["annotations"][0])
    dup_diff = dict(data["annotations"][1], category_id=2, bbox=[0, 0, 1, 1])
    data["annotations"] += [dup_same, dup_diff]
    ds = CocoDataset.from_dict(json.loads(json.dumps(data)))
    assert len(ds.annotations) == 2
    codes = [(c, d["identical"]) for c, _, d in ds.load_problems]
    assert codes == [("duplicate_id", True), ("duplicate_id", False)]
    assert ds.to_dict()["annotations"] == data["annotations"]  # nothing lost silently


# ---------------------------------------------------------------------------------------------- video
def test_video_field_aliases_and_frame_order():
    imgs = [
        # TAPIS-like: string video names, 1-based order_in_video, listed out of order
        {
            "id": 10,
            "file_name": "a/3.jpg",
            "height": 8,
            "width": 8,
            "video_name": "caseA",
            "order_in_video": 3,
        },
        {
            "id": 11,
            "file_name": "a/1.jpg",
            "height": 8,
            "width": 8,
            "video_name": "caseA",
            "order_in_video": 1,
        },
        {
            "id": 12,
            "file_name": "a/2.jpg",
            "height": 8,
            "width": 8,
            "video_name": "caseA",
            "order_in_video": 2,
        },
        # sparse frame numbers (every 25th frame) are ranked
        {"id": 20, "file_name": "b/50.jpg", "height": 8, "width": 8, "video_id": "caseB", "frame_num": 50},
        {"id": 21, "file_name": "b/0.jpg", "height": 8, "width": 8, "video_id": "caseB", "frame_num": 0},
        {"id": 22, "file_name": "b/25.jpg", "height": 8, "width": 8, "video_id": "caseB", "frame_num": 25},
        {"id": 30, "file_name": "c/x.jpg", "height": 8, "width": 8, "video_id": 7, "frame_id": "f002"},
        {"id": 31, "file_name": "c/y.jpg", "height": 8, "width": 8, "video_id": 7, "frame_id": "f001"},
    ]
    ds = CocoDataset.from_dict({"images": imgs, "categories": [{"id": 1, "name": "x"}]})
    names = {v["name"]: vid for vid, v in ds.videos.items()}
    assert set(names) == {"caseA", "caseB", "7"} and names["7"] == 7
    a, b = names["caseA"], names["caseB"]
    assert {ds.images[i]["frame_index"] for i in (10, 11, 12)} == {0, 1, 2}
    assert ds.video_frames(a) == [11, 12, 10]
    assert ds.video_frames(b) == [21, 22, 20]
    assert [ds.images[i]["frame_index"] for i in ds.video_frames(b)] == [0, 1, 2]
    assert ds.video_frames(7) == [31, 30]
    assert [im["id"] for im in ds.iter_video(a)] == [11, 12, 10]
    assert all(isinstance(ds.images[i]["video_id"], int) for i in ds.images)
    with pytest.raises(DataError, match="unknown video"):
        ds.video_frames(999)


def test_clips_fixed_length():
    ds = CocoDataset.from_dict(canonical_dict(2, 5))
    clips = ds.clips(2)
    assert clips == [[1, 2], [3, 4], [6, 7], [8, 9]]
    assert ds.clips(3, stride=1, video_ids=[2]) == [[6, 7, 8], [7, 8, 9], [8, 9, 10]]
    assert ds.clips(6) == []  # videos shorter than a clip are skipped
    with pytest.raises(DataError):
        ds.clips(0)


# ---------------------------------------------------------------------------------------------- split / merge / filter
def video_set(n_videos: int = 10, frames: int = 4) -> CocoDataset:
    ds = CocoDataset(categories=[{"id": 1, "name": "tool"}])
    for v in range(n_videos):
        vid = ds.add_video(f"v{v}")
        for f in range(frames):
            ds.add_image(f"v{v}/{f}.png", 8, 8, video_id=vid, frame_index=f)
    return ds


def test_split_by_video_no_leak_and_deterministic():
    ds = video_set(10, 4)
    parts = ds.assign_splits({"train": 0.8, "val": 0.1, "test": 0.1}, seed=0)
    assert {k: len(v) for k, v in parts.items()} == {"train": 32, "val": 4, "test": 4}
    per_video = {}
    for im in ds.images.values():
        per_video.setdefault(im["video_id"], set()).add(im["split"])
    assert all(len(s) == 1 for s in per_video.values())  # no video crosses splits
    again = video_set(10, 4)
    assert again.assign_splits({"train": 0.8, "val": 0.1, "test": 0.1}, seed=0) == parts
    other = video_set(10, 4).assign_splits({"train": 0.8, "val": 0.1, "test": 0.1}, seed=1)
    assert other != parts
    # separate data sets, carrying the split field
    split = video_set(10, 4).split({"train": 0.5, "val": 0.5}, seed=3)
    assert sum(len(d.images) for d in split.values()) == 40
    assert {im["split"] for im in split["val"].images.values()} == {"val"}
    vids = [set(im["video_id"] for im in d.images.values()) for d in split.values()]
    assert not (vids[0] & vids[1])
    # zero fraction gets nothing, bad fractions are errors
    assert video_set(3, 2).assign_splits({"train": 1.0, "test": 0.0})["test"] == []
    with pytest.raises(DataError):
        ds.assign_splits({"train": -1})


def test_merge_unifies_categories_and_renumbers(tmp_path):
    a = CocoDataset.from_dict(canonical_dict(2, 2), root=tmp_path / "a")
    bd = canonical_dict(1, 3)
    bd["categories"] = [{"id": 1, "name": "hook"}, {"id": 5, "name": "clipper"}]
    for ann in bd["annotations"]:
        ann["category_id"] = 5 if ann["category_id"] == 2 else 1
    b = CocoDataset.from_dict(bd, root=tmp_path / "b")
    m = CocoDataset.merge([a, b], root=tmp_path)
    assert {c["name"]: cid for cid, c in m.categories.items()} == {"grasper": 1, "hook": 2, "clipper": 5}
    assert len(m.images) == 7 and sorted(m.images) == list(range(1, 8))
    assert len(m.annotations) == 7 and sorted(m.annotations) == list(range(1, 8))
    assert len(m.videos) == 3
    # b's category 1 (hook) became 2, its 5 (clipper) kept
    b_anns = [m.annotations[i] for i in range(5, 8)]
    assert [x["category_id"] for x in b_anns] == [
        2 if a_["category_id"] == 1 else 5 for a_ in bd["annotations"]
    ]
    assert m.images[5]["file_name"] == "b/v0/000.png" and m.images[5]["video_id"] == 3
    assert m.video_frames(3) == [5, 6, 7]
    assert m.category_color(1) == (10, 20, 30)


def test_filter_by_category_video_split_image():
    ds = CocoDataset.from_dict(canonical_dict(2, 3))
    only = ds.filter(category_names=["hook"], keep_empty=False)
    assert set(only.categories) == {2}
    assert all(a["category_id"] == 2 for a in only.annotations.values())
    assert set(only.images) == {a["image_id"] for a in only.annotations.values()}
    assert set(ds.filter(video_ids=[2]).images) == {4, 5, 6}
    assert set(ds.filter(image_ids=[1, 6]).annotations) == {1, 6}
    ds.assign_splits({"train": 0.5, "val": 0.5}, seed=0)
    val = ds.filter(split="val")
    assert {im["split"] for im in val.images.values()} == {"val"} and len(val.videos) == 1
    with pytest.raises(DataError, match="unknown category"):
        ds.filter(category_names=["nope"])
    with pytest.raises(DataError, match="no images in split"):
        ds.filter(split="test")


def test_categories_colors_and_class_map():
    ds = CocoDataset.from_dict(canonical_dict(1, 1))
    assert ds.category_color(1) == (10, 20, 30)
    assert ds.category_color(2) == (255, 64, 64)  # palette entry of the 2nd category
    assert ds.class_map() == {1: 1, 2: 2}
    cid = ds.add_category("new", color=(1, 2, 3))
    assert cid == 3 and ds.category_color(3) == (1, 2, 3)


def test_masks_instance_and_semantic():
    ds = CocoDataset(categories=[{"id": 3, "name": "a"}, {"id": 7, "name": "b"}])
    iid = ds.add_image("x.png", 6, 5)
    m1 = np.zeros((6, 5), bool)
    m1[1:4, 1:4] = True
    m2 = np.zeros((6, 5), bool)
    m2[3:6, 2:5] = True
    ds.add_annotation(iid, 3, m1)
    aid = ds.add_annotation(iid, 7, [[2, 3, 5, 3, 5, 6, 2, 6]])  # polygon == m2
    assert ds.annotations[aid]["area"] == 9 and ds.annotations[aid]["bbox"] == [2.0, 3.0, 3.0, 3.0]
    masks, cats, ids = ds.instance_masks(iid)
    assert masks.shape == (2, 6, 5) and cats == [3, 7] and ids == [1, 2]
    assert (masks[1] == m2).all()
    sem = ds.semantic_mask(iid)
    assert sem[3, 3] == 2 and sem[1, 1] == 1 and sem[0, 0] == 0  # later annotation wins on overlap
    ds.annotations[1]["segmentation"] = rle_of(np.zeros((4, 4), bool))
    with pytest.raises(DataError, match="RLE size"):
        ds.instance_masks(iid)


def test_relocate_and_write(tmp_path):
    ds = CocoDataset.from_dict(canonical_dict(1, 2), root=tmp_path / "data")
    out = write_relocated(ds.copy(), tmp_path / "out.json")
    assert json.loads(out.read_text())["images"][0]["file_name"] == "data/v0/000.png"
    with pytest.raises(DataError, match="outside"):
        write_relocated(ds.copy(), tmp_path / "elsewhere" / "x.json")


def test_summary_numbers():
    ds = CocoDataset.from_dict(canonical_dict(2, 3))
    s = ds.summary()
    assert s["images"] == 6 and s["annotations"] == 6
    assert [c["annotations"] for c in s["categories"]] == [3, 3]
    assert [v["frames"] for v in s["videos"]] == [3, 3]
    assert s["image_sizes"] == {"24x32": 6}
    assert s["mask_area"]["counts"][-1] == 6 and s["mask_area"]["min"] == 72 and s["mask_area"]["empty"] == 0
