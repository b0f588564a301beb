"""Every validation problem detected on a fixture made for it; ``fix`` repairs what is unambiguous."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from scopeseg.data import rle as rle_utils
from scopeseg.data.coco import CocoDataset
from scopeseg.data.validate import CODES, ERROR, WARNING, fix, validate
from scopeseg.errors import DataError
from scopeseg.io import write_image

H, W = 16, 20


def box_mask(y0: int, y1: int, x0: int, x1: int, h: int = H, w: int = W) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def ann(aid: int, iid: int, cid: int, mask: np.ndarray) -> dict:
    r = rle_utils.encode(mask)
    return {"id": aid, "image_id": iid, "category_id": cid, "segmentation": r, "area": rle_utils.area(r),
            "bbox": rle_utils.bbox(r), "iscrowd": 0}  # fmt: skip


def clean_dict() -> dict:
    """2 videos x 3 frames, one non-overlapping instance per frame: validates with no problem at all."""
    images, anns = [], []
    for v in range(2):
        for f in range(3):
            iid = len(images) + 1
            images.append({"id": iid, "file_name": f"v{v}/{f}.png", "height": H, "width": W, "video_id": v + 1,
                           "frame_index": f})  # fmt: skip
            anns.append(ann(iid, iid, 1 + v, box_mask(2 + f, 8 + f, 3, 9)))
    return {
        "videos": [{"id": 1, "name": "v0"}, {"id": 2, "name": "v1"}],
        "images": images,
        "annotations": anns,
        "categories": [{"id": 1, "name": "grasper", "color": [0, 255, 0]}, {"id": 2, "name": "hook"}],
    }


def make_data(root: Path, data: dict | None = None) -> Path:
    """Write images (sizes from the dict) and annotations.json under ``root``."""
    data = clean_dict() if data is None else data
    for im in data["images"]:
        write_image(root / im["file_name"], np.full((im["height"], im["width"], 3), 90, np.uint8))
    (root / "annotations.json").write_text(json.dumps(data))
    return root


def test_clean_fixture_is_clean(tmp_path):
    report = validate(make_data(tmp_path))
    assert report.problems == [] and report.ok
    assert report.to_dict()["counts"] == {}


def _set(path: list, value):
    def mutate(d: dict, root: Path) -> None:
        node = d
        for p in path[:-1]:
            node = node[p]
        node[path[-1]] = value

    return mutate


def _img_file(iid: int, action: Callable[[Path], None]):
    def mutate(d: dict, root: Path) -> None:
        action(root / d["images"][iid - 1]["file_name"])

    return mutate


def _replace_ann(a: dict):
    def mutate(d: dict, root: Path) -> None:
        d["annotations"][0] = a

    return mutate


def _append(table: str, rec_fn: Callable[[dict], dict]):
    def mutate(d: dict, root: Path) -> None:
        d[table].append(rec_fn(d))

    return mutate


def _del(path: list):
    def mutate(d: dict, root: Path) -> None:
        node = d
        for p in path[:-1]:
            node = node[p]
        del node[path[-1]]

    return mutate


_bad_bbox = ann(1, 1, 1, box_mask(2, 8, 3, 9))
_bad_bbox["bbox"] = [6.0, 2.0, 6.0, 6.0]
_bad_area = ann(1, 1, 1, box_mask(2, 8, 3, 9))
_bad_area["area"] = 50
_empty = ann(1, 1, 1, np.zeros((H, W), bool))
_small_rle = ann(1, 1, 1, box_mask(1, 3, 1, 3, 8, 8))
_broken_rle = ann(1, 1, 1, box_mask(1, 3, 1, 3, 8, 8))
_broken_rle["segmentation"] = {"size": [H, W], "counts": _broken_rle["segmentation"]["counts"]}
_poly_short = {**ann(1, 1, 1, box_mask(2, 8, 3, 9)), "segmentation": [[3, 2, 9, 2, 9, 8, 3, 8], [1, 1, 2, 2]]}
_poly_bad = {**ann(1, 1, 1, box_mask(2, 8, 3, 9)), "segmentation": [[3, "a", 9, 2, 9, 8, 3, 8]]}
_no_seg = {**ann(1, 1, 1, box_mask(2, 8, 3, 9)), "segmentation": None}
_no_id = {k: v for k, v in ann(1, 1, 1, box_mask(2, 8, 3, 9)).items() if k != "id"}
_negative_box = {**ann(1, 1, 1, box_mask(2, 8, 3, 9)), "bbox": [3.0, 2.0, -6.0, 6.0]}

# (mutation, expected code, image id, annotation id)
CASES = {
    "image_missing": (_img_file(2, Path.unlink), 2, None),
    "image_unreadable": (_img_file(2, lambda p: p.write_bytes(b"not a png at all")), 2, None),
    "image_size_mismatch": (_img_file(2, lambda p: write_image(p, np.zeros((10, W, 3), np.uint8))), 2, None),
    "image_bad_size": (_set(["images", 1, "height"], 0), 2, None),
    "image_no_file_name": (_del(["images", 1, "file_name"]), 2, None),
    "file_name_escapes_root": (_set(["images", 1, "file_name"], "../outside.png"), 2, None),
    "rle_size_mismatch": (_replace_ann(_small_rle), 1, 1),
    "rle_invalid": (_replace_ann(_broken_rle), 1, 1),
    "segmentation_invalid": (_replace_ann(_no_seg), 1, 1),
    "polygon_too_few_points": (_replace_ann(_poly_short), 1, 1),
    "polygon_invalid": (_replace_ann(_poly_bad), 1, 1),
    "empty_mask": (_replace_ann(_empty), 1, 1),
    "bbox_mismatch": (_replace_ann(_bad_bbox), 1, 1),
    "area_mismatch": (_replace_ann(_bad_area), 1, 1),
    "unknown_category": (_set(["annotations", 0, "category_id"], 99), 1, 1),
    "annotation_unknown_image": (_set(["annotations", 0, "image_id"], 999), 999, 1),
    "duplicate_category_id": (_append("categories", lambda d: {"id": 1, "name": "other"}), None, None),
    "duplicate_category_name": (_append("categories", lambda d: {"id": 3, "name": "hook"}), None, None),
    "duplicate_image_id": (_append("images", lambda d: dict(d["images"][0], file_name="v0/1.png")), 1, None),
    "duplicate_annotation_id": (_append("annotations", lambda d: copy.deepcopy(d["annotations"][0])), 1, 1),
    "duplicate_video_id": (_append("videos", lambda d: {"id": 1, "name": "again"}), None, None),
    "missing_id": (_append("annotations", lambda d: copy.deepcopy(_no_id) | {"image_id": 2}), 2, 7),
    "frame_index_duplicate": (_set(["images", 1, "frame_index"], 0), 2, None),
    "frame_index_gap": (_set(["images", 2, "frame_index"], 5), None, None),
    "frame_index_missing": (_del(["images", 1, "frame_index"]), 2, None),
    "frame_index_invalid": (_set(["images", 1, "frame_index"], -1), 2, None),
    "class_overlap": (_append("annotations", lambda d: ann(7, 1, 2, box_mask(0, 4, 0, 5))), 1, None),
    "id_not_integer": (_append("videos", lambda d: {"id": "v9", "name": "extra"}), None, None),
    "category_no_name": (_del(["categories", 1, "name"]), None, None),
    "too_many_pixels": (_set(["images", 1, "height"], 10**9), 2, None),
    "unknown_video": (_set(["images", 1, "video_id"], 9), 2, None),
    "bbox_invalid": (_replace_ann(_negative_box), 1, 1),
    "no_images": (lambda d, root: d.update(images=[], annotations=[], videos=[]), None, None),
}


def test_every_code_has_a_case():
    assert set(CASES) == set(CODES)


@pytest.mark.parametrize("code", sorted(CASES))
def test_problem_detected(tmp_path, code):
    mutate, image_id, annotation_id = CASES[code]
    data = clean_dict()
    make_data(tmp_path, data)
    mutate(data, tmp_path)
    (tmp_path / "annotations.json").write_text(json.dumps(data))
    report = validate(tmp_path)
    found = report.by_code(code)
    assert found, f"{code} not detected; got {report.counts()}"
    p = found[0]
    assert p.severity == CODES[code].severity
    assert (p.image_id, p.annotation_id) == (image_id, annotation_id)
    assert p.file  # every problem names a file
    if code.startswith("image_") and code not in ("image_bad_size", "image_no_file_name"):
        assert p.file.endswith(".png")
    else:
        assert p.file == str(tmp_path / "annotations.json")
    assert report.ok == (
        CODES[code].severity == WARNING and all(q.severity == WARNING for q in report.problems)
    )
    line = p.line()
    assert "\n" not in line and code in line and p.file in line


def test_absolute_file_name(tmp_path):
    data = clean_dict()
    make_data(tmp_path, data)
    data["images"][0]["file_name"] = str(tmp_path / "v0" / "0.png")
    (tmp_path / "annotations.json").write_text(json.dumps(data))
    (p,) = validate(tmp_path).by_code("file_name_escapes_root")
    assert p.image_id == 1 and p.severity == ERROR


def test_no_images_skips_files(tmp_path):
    data = clean_dict()
    make_data(tmp_path, data)
    (tmp_path / "v0" / "1.png").unlink()
    assert validate(tmp_path, check_images=False).ok
    assert not validate(tmp_path).ok


def test_validate_path_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        validate(tmp_path / "missing")


def test_fix_repairs_unambiguous_problems(tmp_path):
    data = clean_dict()
    make_data(tmp_path, data)
    data["annotations"][0]["bbox"] = [0, 0, 1, 1]  # bbox_mismatch
    data["annotations"][1]["area"] = 3  # area_mismatch
    data["annotations"][2]["segmentation"] = [[3, 4, 9, 4, 9, 10, 3, 10], [0, 0, 1, 1]]  # short ring
    data["annotations"].append(copy.deepcopy(data["annotations"][3]))  # exact duplicate
    data["annotations"].append(ann(20, 5, 2, np.zeros((H, W), bool)))  # empty mask
    data["images"][5]["frame_index"] = 7  # gap in video 2 (order unambiguous)
    for im in data["images"][:3]:  # video 1: no indices, order from file names
        del im["frame_index"]
    data["images"][2]["frame_index"] = 2
    (tmp_path / "annotations.json").write_text(json.dumps(data))
    ds = CocoDataset.load(tmp_path, check=False)
    report = validate(ds)
    fixable = {c for c in report.counts() if CODES[c].fixable}
    assert fixable == {"bbox_mismatch", "area_mismatch", "polygon_too_few_points", "duplicate_annotation_id",
                       "empty_mask", "frame_index_gap", "frame_index_missing"}  # fmt: skip
    fixed = fix(ds, report)
    done = {c for act in fixed.fix_log for c in act["code"].split(",")}
    assert fixable <= done
    assert ds.annotations[1]["bbox"] == [0, 0, 1, 1]  # the input is untouched
    out = fixed.save(tmp_path / "fixed.json")
    after = validate(out)
    assert after.problems == [], after.counts()
    again = CocoDataset.load(out)
    assert again.annotations[1]["bbox"] == [3.0, 2.0, 6.0, 6.0]
    assert 20 not in again.annotations and len(again.annotations) == 6
    assert [again.images[i]["frame_index"] for i in again.video_frames(1)] == [0, 1, 2]
    assert [again.images[i]["frame_index"] for i in again.video_frames(2)] == [0, 1, 2]


def test_fix_leaves_ambiguous_problems(tmp_path):
    data = clean_dict()
    make_data(tmp_path, data)
    data["annotations"][0]["category_id"] = 42
    data["annotations"].append(dict(data["annotations"][1], category_id=2))  # duplicate id, different record
    data["images"][1]["frame_index"] = 0  # duplicate index
    data["images"][1]["file_name"] = data["images"][0]["file_name"]  # ... and same file: order unknown
    (tmp_path / "annotations.json").write_text(json.dumps(data))
    ds = CocoDataset.load(tmp_path, check=False)
    fixed = fix(ds, validate(ds))
    left = validate(CocoDataset.load(fixed.save(tmp_path / "fixed.json"), check=False), check_images=False)
    assert {"unknown_category", "duplicate_annotation_id", "frame_index_duplicate"} <= set(left.counts())


def test_fix_image_size_when_masks_agree(tmp_path):
    data = clean_dict()
    make_data(tmp_path, data)
    data["images"][0]["height"] = 99  # JSON wrong; file and RLE say 16
    (tmp_path / "annotations.json").write_text(json.dumps(data))
    ds = CocoDataset.load(tmp_path, check=False)
    report = validate(ds)
    assert {"image_size_mismatch", "rle_size_mismatch"} <= set(report.counts())
    fixed = fix(ds, report)
    assert fixed.images[1]["height"] == H
    assert validate(fixed).problems == []


ENDOSCAPES = Path(__file__).resolve().parents[3] / "shared" / "data" / "endoscapes2023_vid04_unclear"


@pytest.mark.realdata
@pytest.mark.skipif(not ENDOSCAPES.is_dir(), reason="../shared/data absent")
def test_real_endoscapes_frames_validate_clean():
    """Endoscapes2023 per-frame COCO (real RLE, sparse frame_id) gathered into one set: no problem at all."""
    images, anns, cats = [], [], []
    for f in sorted((ENDOSCAPES / "annotations").glob("*.json")):
        d = json.loads(f.read_text())
        images.append(d["image"])
        anns += d["annotations"]
        cats = d["categories"]
    ds = CocoDataset.from_dict(
        {"images": images, "annotations": anns, "categories": cats}, root=ENDOSCAPES / "images"
    )
    assert len(ds.videos) == 1
    frames = ds.video_frames(next(iter(ds.videos)))
    assert [ds.images[i]["frame_index"] for i in frames] == list(range(len(images)))  # frame_id ranked
    report = validate(ds)
    assert report.problems == [], [p.line() for p in report.problems]
    assert ds.summary()["annotations"] == len(anns) > 0


def test_malformed_segmentations_survive_fix_and_save(tmp_path):
    data = clean_dict()
    data["annotations"][0]["segmentation"] = {"size": [H, W], "counts": [1, "x"]}
    data["annotations"][1]["segmentation"] = {"size": [H, W], "counts": [H * W + 5]}
    ds = CocoDataset.from_dict(data, root=tmp_path)
    report = validate(ds, check_images=False)
    assert [(p.code, p.annotation_id) for p in report.errors] == [("rle_invalid", 1), ("rle_invalid", 2)]
    with pytest.raises(DataError, match="annotation 2: malformed RLE"):
        ds.mask(2)
    out = fix(ds, report).save(tmp_path / "fixed.json")
    again = json.loads(out.read_text())["annotations"]
    assert again[0]["segmentation"] == {"size": [H, W], "counts": [1, "x"]}  # written as given
