"""MedSAM npz (2D/3D, gts/segs), COCO polygons, detectron2 sem-seg dicts, COCO-video (SAM2 / TAPIS).

Layouts: MedSAM "Segment Anything in Medical Images on Laptop" npz keys (imgs, gts, boxes, spacing; segs
for predictions); COCO polygons per the COCO data format page; detectron2 dataset dicts ("Use Custom
Datasets": file_name + sem_seg_file_name, 255 ignore); COCO-video as SAM2 training (video_id,
order_in_video) and TAPIS/GraSP (video_name, frame_num, phases/steps/actions tables) write it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from formats_helpers import assert_valid, blobs, coco_masks, rgb, write

from scopeseg.data import rle as rle_utils
from scopeseg.data.coco import CocoDataset
from scopeseg.data.formats import convert, detect
from scopeseg.data.formats.polygons import mask_to_exact_polygons

H, W = 18, 26


def _npz2d(path, seed=0, key="gts"):
    gts = blobs(H, W, seed, n=3, k=3)
    boxes = np.array([[1, 2, 9, 10], [3, 3, 7, 8]])
    np.savez_compressed(path, imgs=rgb(H, W, seed), **{key: gts}, boxes=boxes, spacing=np.array([0.5, 0.5]))
    return path


def _npz3d(path, seed=0):
    rng = np.random.default_rng(seed)
    gts = np.stack([blobs(H, W, seed + z, n=2, k=2) for z in range(4)]).astype(np.uint16) * 300
    imgs = rng.integers(0, 256, (4, H, W), dtype=np.uint8)
    np.savez_compressed(
        path, imgs=imgs, gts=gts, boxes=np.array([[0, 0, 0, 5, 5, 3]]), spacing=np.array([2.5, 0.7, 0.7])
    )
    return path


def test_medsam_npz_2d_3d_round_trip_identical(tmp_path):
    src = tmp_path / "npz"
    src.mkdir()
    _npz2d(src / "a2d.npz")
    _npz3d(src / "b3d.npz")
    assert detect(src) == "medsam-npz"
    rep = convert(src, tmp_path / "coco")
    assert_valid(tmp_path / "coco")
    ds = CocoDataset.load(tmp_path / "coco")
    assert rep.counts["images"] == 5 and rep.counts["videos"] == 1
    assert sorted(ds.categories) == [1, 2, 3, 300, 600]
    assert [ds.images[i]["frame_index"] for i in ds.video_frames(1)] == [0, 1, 2, 3]
    convert(tmp_path / "coco", tmp_path / "back", to_format="medsam-npz")
    for name in ("a2d.npz", "b3d.npz"):
        a, b = np.load(src / name), np.load(tmp_path / "back" / name)
        assert sorted(a.files) == sorted(b.files)
        for k in a.files:
            assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), (name, k)


def test_medsam_segs_predictions_and_computed_boxes(tmp_path):
    _npz2d(tmp_path / "p.npz", seed=3, key="segs")
    convert(tmp_path / "p.npz", tmp_path / "coco")
    ds = CocoDataset.load(tmp_path / "coco")
    assert ds.images[1]["medsam"]["key"] == "segs"
    segs = np.load(tmp_path / "p.npz")["segs"]
    assert np.array_equal(coco_masks(tmp_path / "coco")["images/p.png"], segs)
    # without stored boxes, export computes [x0, y0, x1, y1] per label from the masks
    del ds.images[1]["medsam"]
    ds.save(tmp_path / "coco")
    convert(tmp_path / "coco", tmp_path / "back", to_format="medsam-npz", key="segs")
    out = np.load(tmp_path / "back" / "p.npz")
    assert np.array_equal(out["segs"], segs)
    for row, v in zip(out["boxes"], [v for v in np.unique(segs) if v]):
        ys, xs = np.nonzero(segs == v)
        assert row.tolist() == [xs.min(), ys.min(), xs.max(), ys.max()]


def test_medsam_bad_inputs(tmp_path, bad_input):
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 broken")
    bad_input(
        ["convert", tmp_path / "junk.npz", tmp_path / "o1"], tmp_path / "o1", "junk.npz: cannot read npz"
    )
    np.savez(tmp_path / "mis.npz", imgs=rgb(H, W), gts=np.zeros((H, W + 1), np.uint8))
    bad_input(["convert", tmp_path / "mis.npz", tmp_path / "o2"], tmp_path / "o2", "mis.npz: gts shape")
    np.savez(tmp_path / "nog.npz", imgs=rgb(H, W))
    bad_input(
        ["convert", tmp_path / "nog.npz", tmp_path / "o3", "key=gts"],
        tmp_path / "o3",
        "nog.npz: npz has no 'gts'",
    )
    (tmp_path / "empty").mkdir()
    bad_input(
        ["convert", tmp_path / "empty", tmp_path / "o4", "from=medsam-npz"],
        tmp_path / "o4",
        "no .npz files",
    )


# ---------------------------------------------------------------------------------------------- polygons
def _ring_mask(h=H, w=W):
    import cv2

    m = np.zeros((h, w), np.uint8)
    cv2.circle(m, (13, 9), 8, 1, -1)
    cv2.circle(m, (13, 9), 3, 0, -1)  # a hole
    m[9, 13] = 1  # an island inside the hole
    m[0, 0] = m[1, 1] = 1  # diagonal single pixels
    return m.astype(bool)


def test_exact_polygons_keep_holes():
    rng = np.random.default_rng(0)
    for m in [_ring_mask(), rng.random((H, W)) > 0.6, np.zeros((H, W), bool)]:
        polys = mask_to_exact_polygons(m)
        back = rle_utils.decode(rle_utils.polygons_to_rle(polys, H, W)) if polys else np.zeros((H, W), bool)
        assert np.array_equal(back, m)


def _polygon_coco(root):
    write(root / "imgs" / "a.png", rgb(H, W))
    doc = {
        "images": [{"id": 7, "file_name": "imgs/a.png", "height": H, "width": W}],
        "categories": [{"id": 3, "name": "polyp", "supercategory": "lesion", "color": [1, 2, 3]}],
        "annotations": [
            {
                "id": 1,
                "image_id": 7,
                "category_id": 3,
                "iscrowd": 0,
                "segmentation": [[2, 2, 10, 2, 10, 8, 2, 8], [12, 12, 14, 12]],
            },  # 2-point ring: dropped
            {"id": 2, "image_id": 7, "category_id": 3, "iscrowd": 0, "segmentation": [[1, 1, 2, 2]]},
            {
                "id": 3,
                "image_id": 7,
                "category_id": 3,
                "iscrowd": 0,
                "segmentation": mask_to_exact_polygons(_ring_mask()),
            },
        ],
    }
    (root / "coco.json").write_text(json.dumps(doc))
    return root / "coco.json"


def test_polygons_to_rle_and_back(tmp_path):
    src = _polygon_coco(tmp_path / "p")
    assert detect(src) == "coco-polygons"
    rep = convert(src, tmp_path / "coco")
    assert_valid(tmp_path / "coco")
    assert rep.counts["dropped_rings"] == 2 and rep.counts["annotations"] == 2
    assert any("fewer than 3 points" in w for w in rep.warnings)
    ds = CocoDataset.load(tmp_path / "coco")
    assert ds.categories[3] == {"id": 3, "name": "polyp", "supercategory": "lesion", "color": [1, 2, 3]}
    assert np.array_equal(ds.mask(ds.image_anns(7)[1]), _ring_mask())
    ref = rle_utils.decode(rle_utils.polygons_to_rle([[2, 2, 10, 2, 10, 8, 2, 8]], H, W))
    assert np.array_equal(ds.mask(ds.image_anns(7)[0]), ref)
    convert(tmp_path / "coco", tmp_path / "back", to_format="coco-polygons")
    back = json.loads((tmp_path / "back" / "annotations.json").read_text())
    assert all(isinstance(a["segmentation"], list) for a in back["annotations"])
    convert(tmp_path / "back" / "annotations.json", tmp_path / "again", from_format="coco-polygons")
    a, b = coco_masks(tmp_path / "coco"), coco_masks(tmp_path / "again")
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_polygons_bad_inputs(tmp_path, bad_input):
    src = _polygon_coco(tmp_path / "a")
    (tmp_path / "a" / "imgs" / "a.png").unlink()
    bad_input(
        ["convert", src, tmp_path / "o1", "from=coco-polygons"],
        tmp_path / "o1",
        "image 7 not found: imgs/a.png",
    )
    src = _polygon_coco(tmp_path / "b")
    d = json.loads(src.read_text())
    d["annotations"][0]["segmentation"] = [[1, 2, "x", 3, 4, 5]]
    src.write_text(json.dumps(d))
    bad_input(
        ["convert", src, tmp_path / "o2", "from=coco-polygons"],
        tmp_path / "o2",
        "coco.json: annotation 1: cannot rasterise",
    )
    src.write_text("{")
    bad_input(
        ["convert", src, tmp_path / "o3", "from=coco-polygons"],
        tmp_path / "o3",
        "coco.json: malformed JSON",
    )


# ---------------------------------------------------------------------------------------------- detectron2
def _d2(root, n=2):
    recs = []
    for i in range(n):
        lab = blobs(H, W, i, n=3, k=3) - 1  # classes 0..2 with 255 (from 0-1) as ignore
        write(root / "img" / f"{i}.jpg", rgb(H, W, i))
        write(root / "sem" / f"{i}.png", lab.astype(np.uint8))
        recs.append(
            {
                "file_name": f"img/{i}.jpg",
                "sem_seg_file_name": f"sem/{i}.png",
                "height": H,
                "width": W,
                "image_id": 100 + i,
            }
        )
    (root / "d2.json").write_text(json.dumps(recs))
    return root / "d2.json"


def test_detectron2_semseg_round_trip(tmp_path):
    src = _d2(tmp_path / "d2")
    assert detect(src) == "detectron2-semseg"
    (tmp_path / "names.json").write_text(json.dumps(["tissue", "tool", "blood"]))  # stuff_classes
    rep = convert(src, tmp_path / "coco", classes=tmp_path / "names.json")
    assert_valid(tmp_path / "coco")
    assert rep.counts["ignored_pixels"] > 0
    ds = CocoDataset.load(tmp_path / "coco")
    assert {c: (x["name"], x["sem_seg_value"]) for c, x in ds.categories.items()} == {
        1: ("tissue", 0),
        2: ("tool", 1),
        3: ("blood", 2),
    }
    convert(tmp_path / "coco", tmp_path / "back", to_format="detectron2-semseg")
    from scopeseg.io import read_image

    for i in range(2):
        assert np.array_equal(
            read_image(tmp_path / "back" / "sem_seg" / f"{i}.png", "unchanged"),
            read_image(tmp_path / "d2" / "sem" / f"{i}.png", "unchanged"),
        )
    recs = json.loads((tmp_path / "back" / "dataset.json").read_text())
    assert [r["image_id"] for r in recs] == [100, 101]


def test_detectron2_bad_inputs(tmp_path, bad_input):
    src = _d2(tmp_path / "a")
    (tmp_path / "a" / "sem" / "1.png").unlink()
    bad_input(["convert", src, tmp_path / "o1"], tmp_path / "o1", "sem/1.png: image not found")
    src = _d2(tmp_path / "b")
    write(tmp_path / "b" / "sem" / "0.png", np.zeros((H, W - 1), np.uint8))
    bad_input(["convert", src, tmp_path / "o2"], tmp_path / "o2", "sem/0.png: mask size")
    src = _d2(tmp_path / "c")
    (tmp_path / "c" / "names.json").write_text(json.dumps(["tissue", "tool"]))
    bad_input(
        ["convert", src, tmp_path / "o3", f"classes={tmp_path / 'c' / 'names.json'}"],
        tmp_path / "o3",
        "class index 2",
    )


# ---------------------------------------------------------------------------------------------- COCO-video
def _video_coco(root, flavor):
    images, anns = [], []
    for v, name in enumerate(("CASE001", "CASE014")):
        for f in (90, 0, 45):
            iid = len(images) + 1
            write(root / name / f"{f:05d}.jpg", rgb(H, W, iid))
            im = {"id": iid, "file_name": f"{name}/{f:05d}.jpg", "height": H, "width": W}
            if flavor == "sam2":
                im.update(video_id=v + 1, order_in_video=f // 45)
            else:
                im.update(video_name=name, frame_num=f)
            images.append(im)
            m = blobs(H, W, iid, n=1) > 0
            ann = {
                "id": 500 + iid,
                "image_id": iid,
                "category_id": 1 + iid % 2,
                "iscrowd": 0,
                "segmentation": mask_to_exact_polygons(m) if iid % 2 else rle_utils.encode(m),
            }
            if flavor == "tapis":
                ann.update(actions=[1, 4], phases=3, steps=7, instruments=1 + iid % 2)
            anns.append(ann)
    doc = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": 1, "name": "Bipolar Forceps"}, {"id": 2, "name": "Prograsp Forceps"}],
    }
    if flavor == "sam2":
        doc["videos"] = [{"id": 1, "name": "CASE001"}, {"id": 2, "name": "CASE014"}]
    else:
        doc["phases_categories"] = [{"id": 3, "name": "Dissection"}]
        doc["actions_categories"] = [{"id": 1, "name": "Cut"}, {"id": 4, "name": "Hold"}]
    (root / "ann.json").write_text(json.dumps(doc))
    return root / "ann.json", doc


@pytest.mark.parametrize("flavor", ["sam2", "tapis"])
def test_coco_video_round_trip(tmp_path, flavor):
    src, doc = _video_coco(tmp_path / "v", flavor)
    assert detect(src) == "coco-video"
    convert(src, tmp_path / "coco")
    assert_valid(tmp_path / "coco")
    ds = CocoDataset.load(tmp_path / "coco")
    assert [ds.images[i]["file_name"] for i in ds.video_frames(2)] == [
        "CASE014/00000.jpg",
        "CASE014/00045.jpg",
        "CASE014/00090.jpg",
    ]
    assert [ds.images[i]["frame_index"] for i in ds.video_frames(2)] == [0, 1, 2]
    if flavor == "tapis":
        assert ds.extra["phases_categories"] == doc["phases_categories"]
        assert ds.annotations[501]["actions"] == [1, 4] and ds.annotations[501]["steps"] == 7
    convert(tmp_path / "coco", tmp_path / "back", to_format="coco-video", flavor=flavor)
    back = json.loads((tmp_path / "back" / "annotations.json").read_text())
    keys = ("order_in_video",) if flavor == "sam2" else ("video_name", "frame_num")
    assert [[im[k] for k in keys] for im in back["images"]] == [[im[k] for k in keys] for im in doc["images"]]
    for a, b in zip(doc["annotations"], back["annotations"]):
        ref = (
            rle_utils.polygons_to_rle(a["segmentation"], H, W)
            if isinstance(a["segmentation"], list)
            else a["segmentation"]
        )
        assert np.array_equal(rle_utils.decode(b["segmentation"]), rle_utils.decode(ref))
        assert {k: b[k] for k in a if k != "segmentation"} == {
            k: v for k, v in a.items() if k != "segmentation"
        }


def test_coco_video_bad_inputs(tmp_path, bad_input):
    src, doc = _video_coco(tmp_path / "a", "tapis")
    doc["annotations"][0]["category_id"] = 9
    src.write_text(json.dumps(doc))
    bad_input(["convert", src, tmp_path / "o1"], tmp_path / "o1", "annotation 501 has unknown category id 9")
    src, doc = _video_coco(tmp_path / "b", "sam2")
    doc["annotations"][1]["segmentation"]["size"] = [H, W + 3]
    src.write_text(json.dumps(doc))
    bad_input(["convert", src, tmp_path / "o2"], tmp_path / "o2", "ann.json: annotation 502: RLE size")
    src, doc = _video_coco(tmp_path / "c", "sam2")
    (tmp_path / "c" / "CASE014" / "00045.jpg").unlink()
    bad_input(["convert", src, tmp_path / "o3"], tmp_path / "o3", "CASE014/00045.jpg")
