"""CholecSeg8k (watershed/color masks), CholecInstanceSeg (LabelMe polygons), Endoscapes (per-frame COCO).

Layouts: CholecSeg8k Kaggle release (``videoNN/videoNN_XXXXX/frame_N_endo*.png``, class codes in
../shared/data/cholecseg8k_clip/SOURCE.md); CholecInstanceSeg ``ann_dir``/``img_dir`` LabelMe files
(labdeeman7/cholec_instance_seg sample files); Endoscapes per-frame COCO JSON (SurgicalSAM2's
annotation_coco_vid.json split per frame). Real files from ../shared/data are used where present.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
from formats_helpers import assert_valid, coco_masks, rgb, shared, write

from scopeseg.data import rle as rle_utils
from scopeseg.data.coco import CocoDataset
from scopeseg.data.formats import convert, detect
from scopeseg.data.formats.cholecseg8k import CLASSES
from scopeseg.io import read_image

H, W = 16, 24
CODES = np.array([c[0] for c in CLASSES], np.uint8)
COLORS = {c[0]: c[2] for c in CLASSES}


def _cholec(root, frames=(80, 81, 95)):
    labs = {}
    for n in frames:
        lab = CODES[np.random.default_rng(n).integers(0, len(CODES), (H, W))]
        lab[0, :] = 255  # unlabelled edge
        folder = root / "video12" / "video12_00080"
        write(folder / f"frame_{n}_endo.png", rgb(H, W, n))
        write(folder / f"frame_{n}_endo_watershed_mask.png", np.repeat(lab[..., None], 3, axis=2))
        color = np.full((H, W, 3), 255, np.uint8)
        for code, c in COLORS.items():
            color[lab == code] = c
        write(folder / f"frame_{n}_endo_color_mask.png", color)
        labs[n] = lab
    return root, labs


def test_cholecseg8k_watershed_and_color_round_trip(tmp_path):
    src, labs = _cholec(tmp_path / "cs")
    assert detect(src) == "cholecseg8k"
    rep = convert(src, tmp_path / "ws")
    assert_valid(tmp_path / "ws")
    assert rep.counts["unlabelled_pixels"] == 3 * W
    ds = CocoDataset.load(tmp_path / "ws")
    assert sorted(ds.categories) == sorted(CODES.tolist()) and ds.categories[31]["name"] == "Grasper"
    assert [ds.images[i]["frame_index"] for i in ds.video_frames(1)] == [0, 1, 2]
    convert(src, tmp_path / "col", masks="color")
    a, b = coco_masks(tmp_path / "ws"), coco_masks(tmp_path / "col")
    for k, lab in a.items():
        n = int(k.split("frame_")[1].split("_")[0])
        expect = np.where(labs[n] == 255, 0, labs[n])
        assert np.array_equal(lab, expect) and np.array_equal(b[k], expect)
    convert(tmp_path / "ws", tmp_path / "back", to_format="cholecseg8k")
    for p in src.rglob("*_mask.png"):
        assert np.array_equal(read_image(tmp_path / "back" / p.relative_to(src)), read_image(p)), p.name


def test_cholecseg8k_real_clip(tmp_path):
    data = shared("cholecseg8k_clip")
    folder = tmp_path / "cs" / "video01" / "video01_00560"
    folder.mkdir(parents=True)
    for p in sorted((data / "images").glob("*.png"))[:3]:
        n = int(p.stem.split("_")[1])
        (folder / f"frame_{n}_endo.png").symlink_to(p)
        (folder / f"frame_{n}_endo_watershed_mask.png").symlink_to(data / "masks_semantic" / p.name)
    convert(tmp_path / "cs", tmp_path / "coco")
    for k, lab in coco_masks(tmp_path / "coco").items():
        n = int(k.split("frame_")[1].split("_")[0])
        ref = read_image(data / "masks_semantic" / f"frame_{n:04d}.png", "unchanged")
        assert np.array_equal(lab, np.where(ref == 255, 0, ref))
        # the binary instrument mask of the clip = grasper (31) | L-hook (32)
        tool = read_image(data / "masks" / f"frame_{n:04d}.png", "unchanged") > 0
        assert np.array_equal((lab == 31) | (lab == 32), tool)


def test_cholecseg8k_bad_inputs(tmp_path, bad_input):
    src, _ = _cholec(tmp_path / "a")
    (src / "video12/video12_00080/frame_81_endo_watershed_mask.png").unlink()
    bad_input(["convert", src, tmp_path / "o1"], tmp_path / "o1", "frame_81_endo.png: no watershed mask")
    src, labs = _cholec(tmp_path / "b")
    bad = labs[95].copy()
    bad[3, 3] = 77
    write(src / "video12/video12_00080/frame_95_endo_watershed_mask.png", bad)
    bad_input(
        ["convert", src, tmp_path / "o2"],
        tmp_path / "o2",
        "frame_95_endo_watershed_mask.png: unknown class value 77",
    )
    src, _ = _cholec(tmp_path / "c")
    col = read_image(src / "video12/video12_00080/frame_80_endo_color_mask.png")
    col[1, 1] = (1, 1, 1)
    write(src / "video12/video12_00080/frame_80_endo_color_mask.png", col)
    bad_input(["convert", src, tmp_path / "o3", "masks=color"], tmp_path / "o3", "unknown color (1, 1, 1)")
    src, _ = _cholec(tmp_path / "d")
    write(src / "video12/video12_00080/frame_80_endo_watershed_mask.png", np.zeros((H - 1, W), np.uint8))
    bad_input(["convert", src, tmp_path / "o4"], tmp_path / "o4", "mask size 15x24")
    src, _ = _cholec(tmp_path / "e")
    (src / "video12/video12_00080/frame_95_endo.png").write_bytes(b"x")
    bad_input(["convert", src, tmp_path / "o5"], tmp_path / "o5", "frame_95_endo.png")
    (tmp_path / "f").mkdir()
    bad_input(
        ["convert", tmp_path / "f", tmp_path / "o6", "from=cholecseg8k"],
        tmp_path / "o6",
        "no CholecSeg8k frames",
    )


# ---------------------------------------------------------------------------------------------- LabelMe
def _labelme(root):
    shapes = [
        {
            "label": "grasper",
            "points": [[2, 2], [12, 2], [12, 9], [2, 9]],
            "group_id": 1,
            "shape_type": "polygon",
        },
        {
            "label": "grasper",
            "points": [[16, 10], [22, 10], [22, 14]],
            "group_id": 1,
            "shape_type": "polygon",
        },
        {
            "label": "hook",
            "points": [[8, 5], [18, 5], [18, 12], [8, 12]],
            "group_id": 1,
            "shape_type": "polygon",
        },
        {
            "label": "grasper",
            "points": [[1, 12], [5, 12], [5, 15], [1, 15]],
            "group_id": 2,
            "shape_type": "polygon",
        },
    ]
    for n, sh in ((30, shapes), (60, [])):
        write(root / "img_dir" / f"t80_VID07_{n:06d}.png", rgb(H, W, n))
        doc = {
            "version": "1.0.0",
            "flags": {},
            "shapes": sh,
            "imagePath": f"img_dir/t80_VID07_{n:06d}.png",
            "imageData": None,
            "imageHeight": H,
            "imageWidth": W,
        }
        (root / "ann_dir").mkdir(exist_ok=True)
        (root / "ann_dir" / f"t80_VID07_{n:06d}.json").write_text(json.dumps(doc))
    return root


def test_labelme_instances_and_round_trip(tmp_path):
    import cv2

    src = _labelme(tmp_path / "lm")
    assert detect(src) == "labelme"
    convert(src, tmp_path / "coco")
    assert_valid(tmp_path / "coco")
    ds = CocoDataset.load(tmp_path / "coco")
    anns = ds.image_anns(1)
    assert [(ds.categories[a["category_id"]]["name"], a["group_id"]) for a in anns] == [
        ("grasper", 1),
        ("hook", 1),
        ("grasper", 2),
    ]
    ref = np.zeros((H, W), np.int32)
    cv2.fillPoly(ref, [np.array([[2, 2], [12, 2], [12, 9], [2, 9]])], 1)
    cv2.fillPoly(ref, [np.array([[16, 10], [22, 10], [22, 14]])], 1)
    cv2.fillPoly(ref, [np.array([[8, 5], [18, 5], [18, 12], [8, 12]])], 2)  # hook drawn later wins
    assert np.array_equal(ds.mask(anns[0]), ref == 1) and np.array_equal(ds.mask(anns[1]), ref == 2)
    assert ds.images[1]["frame_index"] == 0 and ds.videos[1]["name"] == "VID07" and not ds.image_anns(2)
    convert(tmp_path / "coco", tmp_path / "back", to_format="labelme")
    convert(tmp_path / "back", tmp_path / "again")
    a, b = coco_masks(tmp_path / "coco"), coco_masks(tmp_path / "again")
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_labelme_real_cholecinstanceseg_matches_reference_masks(tmp_path):
    data = shared("cholecinstanceseg_vid03_unclear")
    convert(data, tmp_path / "coco")
    ds = CocoDataset.load(tmp_path / "coco")
    for iid, im in ds.images.items():
        ref = read_image(data / "masks_instance" / im["file_name"].split("/")[-1], "unchanged")
        got = np.zeros_like(ref)
        for k, a in enumerate(ds.image_anns(iid)):
            got[ds.mask(a)] = k + 1
        assert np.array_equal(got, ref), im["file_name"]
    convert(tmp_path / "coco", tmp_path / "back", to_format="labelme")
    convert(tmp_path / "back", tmp_path / "again")
    a, b = coco_masks(tmp_path / "coco"), coco_masks(tmp_path / "again")
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_labelme_bad_inputs(tmp_path, bad_input):
    src = _labelme(tmp_path / "a")
    (src / "img_dir" / "t80_VID07_000060.png").unlink()
    bad_input(["convert", src, tmp_path / "o1"], tmp_path / "o1", "t80_VID07_000060.json: no image")
    src = _labelme(tmp_path / "b")
    doc = json.loads((src / "ann_dir/t80_VID07_000030.json").read_text())
    doc["imageHeight"] = H + 4
    (src / "ann_dir/t80_VID07_000030.json").write_text(json.dumps(doc))
    bad_input(["convert", src, tmp_path / "o2"], tmp_path / "o2", "t80_VID07_000030.json: imageHeight")
    src = _labelme(tmp_path / "c")
    (src / "ann_dir/t80_VID07_000060.json").write_text("{not json")
    bad_input(
        ["convert", src, tmp_path / "o3", "from=labelme"],
        tmp_path / "o3",
        "t80_VID07_000060.json: malformed JSON",
    )
    (tmp_path / "d").mkdir()
    bad_input(
        ["convert", tmp_path / "d", tmp_path / "o4", "from=labelme"], tmp_path / "o4", "no LabelMe JSON"
    )


# ---------------------------------------------------------------------------------------------- Endoscapes
def _endoscapes(root, stringly=False):
    cats = [
        {"id": 1, "name": "cystic_plate", "supercategory": "anatomy"},
        {"id": 6, "name": "tool", "supercategory": "tool"},
    ]
    masks = {}
    for n, frame_id in ((4500, 9), (4475, 8)):
        write(root / "images" / f"4_{n}.jpg", rgb(H, W, n))
        m1 = np.zeros((H, W), bool)
        m1[2:9, 3:10] = True
        m2 = np.zeros((H, W), bool)
        m2[n % 7 : 12, 12:20] = True
        anns = []
        for k, (cid, m) in enumerate(((1, m1), (6, m2))):
            seg = rle_utils.encode(m)
            anns.append(
                {
                    "id": n * 10 + k,
                    "image_id": 4000000 + n,
                    "category_id": cid,
                    "segmentation": seg,
                    "bbox": rle_utils.bbox(seg),
                    "area": int(m.sum()),
                    "instance_id": cid,
                    "video_id": 4,
                }
            )
        im = {
            "file_name": f"4_{n}.jpg",
            "height": H,
            "width": W,
            "id": 4000000 + n,
            "video_id": 4,
            "frame_id": frame_id,
        }
        if (
            stringly
        ):  # the SurgicalSAM2 file: strings everywhere, RLE as a Python literal, height/width swapped
            im = {k: str(v) for k, v in im.items()}
            im["height"], im["width"] = str(W), str(H)
            for a in anns:
                a["segmentation"] = repr(a["segmentation"])
                a["category_id"] = str(a["category_id"])
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / f"4_{n}.json").write_text(
            json.dumps({"image": im, "annotations": anns, "categories": cats})
        )
        masks[f"images/4_{n}.jpg"] = np.where(m2, 6, np.where(m1, 1, 0))
    return root, masks


def test_endoscapes_round_trip_and_repairs(tmp_path):
    for stringly in (False, True):
        src, masks = _endoscapes(tmp_path / f"e{stringly}", stringly)
        assert detect(src) == "endoscapes"
        rep = convert(src, tmp_path / f"coco{stringly}")
        assert_valid(tmp_path / f"coco{stringly}")
        assert any("swapped" in w for w in rep.warnings) == stringly
        ds = CocoDataset.load(tmp_path / f"coco{stringly}")
        assert sorted(ds.images) == [4004475, 4004500]
        assert [ds.images[i]["frame_index"] for i in ds.video_frames(1)] == [0, 1]
        assert {k: v.tolist() for k, v in coco_masks(tmp_path / f"coco{stringly}").items()} == {
            k: v.tolist() for k, v in masks.items()
        }
    convert(tmp_path / "cocoFalse", tmp_path / "back", to_format="endoscapes")
    for p in (tmp_path / "eFalse" / "annotations").iterdir():
        a, b = json.loads(p.read_text()), json.loads((tmp_path / "back" / "annotations" / p.name).read_text())
        assert b["image"] == a["image"] and b["categories"] == a["categories"]
        assert [x["segmentation"] for x in b["annotations"]] == [x["segmentation"] for x in a["annotations"]]
        assert [x["id"] for x in b["annotations"]] == [x["id"] for x in a["annotations"]]


def test_endoscapes_real_frames_match_reference_masks(tmp_path):
    data = shared("endoscapes2023_vid04_unclear")
    convert(data, tmp_path / "coco")
    ds = CocoDataset.load(tmp_path / "coco")
    for iid, im in ds.images.items():
        stem = im["file_name"].split("/")[-1].rsplit(".", 1)[0]
        ref = read_image(data / "masks_semantic" / f"{stem}.png", "unchanged")
        got = np.zeros_like(ref)
        for a in sorted(ds.image_anns(iid), key=lambda a: a["category_id"] == 6):  # tools painted last
            got[ds.mask(a)] = a["category_id"]
        assert np.array_equal(got, ref)


def test_endoscapes_bad_inputs(tmp_path, bad_input):
    src, _ = _endoscapes(tmp_path / "a")
    (src / "images" / "4_4475.jpg").unlink()
    bad_input(["convert", src, tmp_path / "o1"], tmp_path / "o1", "4_4475.json: image '4_4475.jpg'")
    src, _ = _endoscapes(tmp_path / "b")
    d = json.loads((src / "annotations/4_4500.json").read_text())
    d["annotations"][0]["segmentation"]["size"] = [H + 1, W]
    (src / "annotations/4_4500.json").write_text(json.dumps(d))
    bad_input(["convert", src, tmp_path / "o2"], tmp_path / "o2", "4_4500.json: annotation 45000: RLE size")
    src, _ = _endoscapes(tmp_path / "c")
    d["annotations"][0]["segmentation"]["size"] = [H, W]
    d["annotations"][1]["category_id"] = 3
    (src / "annotations/4_4500.json").write_text(json.dumps(d))
    bad_input(["convert", src, tmp_path / "o3"], tmp_path / "o3", "unknown category id 3")
    src, _ = _endoscapes(tmp_path / "d")
    shutil.copyfile(src / "images/4_4500.jpg", src / "annotations/4_4475.json")
    bad_input(["convert", src, tmp_path / "o4", "from=endoscapes"], tmp_path / "o4", "4_4475.json")
    (tmp_path / "e").mkdir()
    bad_input(
        ["convert", tmp_path / "e", tmp_path / "o5", "from=endoscapes"],
        tmp_path / "o5",
        "no per-frame JSON",
    )
