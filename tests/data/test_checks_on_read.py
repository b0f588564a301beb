"""Every read of a data set runs the cheap structural checks and refuses broken data in one line.

The inputs are the data set cases of the bad-input corpus (``tests/badinput/corpus.py``): each invalid case
is refused by ``load_dataset`` (or, for broken pixels, by ``load_image``) with a ``ScopesegError`` naming the
file and the problem; every valid case loads; ``check=False`` loads what is structurally loadable.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from scopeseg.data.coco import CocoDataset, data_checks, load_dataset
from scopeseg.data.validate import validate
from scopeseg.errors import ConfigError, DataError, ScopesegError
from scopeseg.io import read_image, read_json

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "badinput"))
import corpus  # noqa: E402

#: invalid case -> text its refusal must hold (the problem; the code in brackets for structural problems)
REFUSED = {
    "string_image_ids": "image id '1' is a str, not an integer [id_not_integer]",
    "duplicate_image_ids": "duplicate image id 1 (a different record) [duplicate_image_id]",
    "duplicate_annotation_ids": "annotation 1: duplicate annotation id 1 (a different record) [duplicate_annotation_id]",
    "orphan_annotation": "annotation 1: image id 99 does not exist [annotation_unknown_image]",
    "unknown_category": "annotation 1 has unknown category id 7",
    "polygon_two_points": "annotation 1: 1 polygon ring(s) with < 3 points dropped [polygon_too_few_points]",
    "polygon_odd_coords": "an odd number of coordinates) [polygon_invalid]",
    "negative_box": "annotation 1: bbox [5, 5, -3, 4] is not [x, y, width >= 0, height >= 0]",
    "nan_box": "annotation 1: bbox [5, 5, nan, 4]",
    "duplicate_frame_index": "frame_index 0 used by images [1, 2] [frame_index_duplicate]",
    "negative_frame_index": "image 1: frame_index -1 of video 1 is not a non-negative integer",
    "unknown_video": "image 1: video id 5 is not in the videos table [unknown_video]",
    "bad_rle_counts": "annotation 1: RLE counts unreadable",
    "rle_size_mismatch": "annotation 1: RLE size 40x48 != image size 32x48 [rle_size_mismatch]",
    "rle_counts_overflow": "annotation 1: cannot read RLE (run lengths sum to 2036, size 32x48 needs 1536)",
    "missing_segmentation": "annotation 1: segmentation is not RLE or polygons",
    "image_size_differs": "annotation 1: RLE size 32x48 != image size 64x48",
    "huge_dimensions_json": "image 1: height x width 1000000000x1000000000 is more than",
    "zero_dimensions": "image 1: height/width 0x48 invalid [image_bad_size]",
    "file_name_escapes_root": "image 1: file_name '../../etc/passwd' escapes the data root (..)",
    "absolute_file_name": "image 1: file_name '/etc/hostname' is absolute",
    "no_images_key": "COCO JSON has no 'images' list",
    "images_not_a_list": "'images' must be a list",
    "category_without_name": "category 1 has no name",
    "duplicate_category_ids": "duplicate category id 1 (a different record) [duplicate_category_id]",
    "empty_dataset": "the data set has no images",
    "missing_image_file": "image 2: image file 'images/f001.png' not found [image_missing]",
    "symlink_out_of_root": "image 2: file_name 'images/f001.png' is a link leading outside the data root",
    "image_is_a_folder": "image 2: image file 'images/f001.png' is a folder [image_missing]",
    "malformed_json": "malformed JSON at line 1 column 13",
    "non_utf8_json": "not UTF-8 text",
    "deeply_nested_json": "JSON nested too deeply",
    "json_is_a_list": "COCO JSON must be an object",
    "zero_byte_json": "empty file (no JSON)",
    "empty_folder": "data set not found",
    "does_not_exist": "data set not found",
    # COCO-video flavours (SAM2 order_in_video, TAPIS video_name + frame_num)
    "string_frame_num": "image 1: frame_num 'first' of video 1 is not a number [frame_index_invalid]",
    "duplicate_order": "frame_index 0 used by images [1, 2] [frame_index_duplicate]",
    "string_image_ids_video": "image id 'im1' is a str, not an integer [id_not_integer]",
    "unknown_video_video": "image 1: video id 5 is not in the videos table [unknown_video]",
}
#: structure sound, pixels broken: loading succeeds, reading image 2 is refused naming file and image
PIXELS = {
    "zero_byte_image": "image 2: image file is empty (0 bytes)",
    "truncated_image": "image 2: cannot decode image",
    "text_as_image": "image 2: cannot decode image",
    "decompression_bomb": "image 2: image header claims more than",
}
#: refused before any record exists (no JSON object to load): ``check=False`` cannot load these either
UNLOADABLE = {"no_images_key", "images_not_a_list", "malformed_json", "non_utf8_json", "deeply_nested_json",
              "json_is_a_list", "zero_byte_json", "empty_folder", "does_not_exist"}  # fmt: skip


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("corpus")
    out = {c.name: c for c in corpus._dataset_cases(root)}
    for c in corpus._coco_video_cases(root):
        out[c.name if c.name.startswith("valid") else f"{c.name}_video" if c.name in out else c.name] = c
    return out


#: valid cases (unusual pixels included): they load and every image reads
VALID = [
    "valid",
    "valid_polygons",
    "grey_16bit_images",
    "rgba_image",
    "cmyk_jpeg",
    "valid_sam2",
    "valid_tapis",
]


def test_every_corpus_case_is_covered(cases):
    """Each data set case of the corpus has an expectation here, and the corpus agrees on validity."""
    assert set(cases) == set(VALID) | set(REFUSED) | set(PIXELS)
    assert {n for n, c in cases.items() if c.valid} == set(VALID)


@pytest.mark.parametrize("name", sorted({*REFUSED, *PIXELS}))
def test_invalid_case_is_refused_in_one_line(cases, name):
    case = cases[name]
    if name in PIXELS:
        ds = load_dataset(case.path, files=True)  # the structure is sound
        with pytest.raises(DataError) as err:
            ds.load_image(2)
        msg = str(err.value)
        assert PIXELS[name] in msg, msg
        assert str(case.path / "images" / "f001.png") in msg and "\n" not in msg
        return
    with pytest.raises(ScopesegError) as err:
        load_dataset(case.path, files=True)
    msg = str(err.value)
    assert "\n" not in msg
    assert REFUSED[name] in msg, msg
    named = {case.path / "annotations.json", case.path / "images" / "f001.png", case.path}
    assert any(msg.startswith(f"{p}: ") for p in named), msg  # the file comes first


@pytest.mark.parametrize("name", VALID)
def test_valid_case_loads_and_reads(cases, name):
    ds = load_dataset(cases[name].path, files=True)
    assert len(ds.images) == 3 and len(ds.annotations) == 3
    for iid in ds.images:
        img = ds.load_image(iid)
        assert img.shape == (corpus.H, corpus.W, 3) and img.dtype == np.uint8
        assert ds.semantic_mask(iid).shape == (corpus.H, corpus.W)


@pytest.mark.parametrize("name", sorted(set(REFUSED) - UNLOADABLE))
def test_check_false_loads_what_is_structurally_loadable(cases, name):
    ds = load_dataset(cases[name].path, check=False)
    with data_checks(False):
        again = load_dataset(cases[name].path, files=True)
    assert (
        len(ds.images)
        == len(again.images)
        == len(json.loads((cases[name].path / "annotations.json").read_text())["images"])
        - len(ds.duplicates.get("images", []))
    )
    report = validate(ds)  # ... and validate names every problem the load refused
    assert not report.ok
    code = re.search(r"\[([a-z_]+)\]$", REFUSED[name])
    if code:
        assert report.by_code(code[1]), report.counts()


def test_duplicate_image_is_not_dropped_silently(cases):
    ds = load_dataset(cases["duplicate_image_ids"].path, check=False)
    assert len(ds.images) == 2 and len(ds.duplicates["images"]) == 1  # kept aside, reported, re-saved
    assert len(ds.to_dict()["images"]) == 3


@pytest.mark.parametrize("name", sorted(UNLOADABLE))
def test_unloadable_stays_refused_without_checks(cases, name):
    with pytest.raises(DataError, match=re.escape(REFUSED[name])):
        load_dataset(cases[name].path, check=False)


def test_library_default_checks_records_not_files(cases):
    """An annotation file loads without its images; commands (``data_checks(files=True)``) need them."""
    path = cases["missing_image_file"].path
    assert len(load_dataset(path)) == 3
    with data_checks(True, files=True), pytest.raises(DataError, match=r"not found \[image_missing\]"):
        load_dataset(path)
    assert len(load_dataset(path, files=False)) == 3
    with pytest.raises(DataError, match=r"\[annotation_unknown_image\]"):
        CocoDataset.load(cases["orphan_annotation"].path)


def test_first_problems_named_and_the_rest_counted(tmp_path):
    coco = corpus.valid_coco()
    for im in coco["images"]:
        im["id"] = str(im["id"])
    for a in coco["annotations"]:
        a["category_id"] = 9
    corpus._write_dataset(tmp_path, coco)
    with pytest.raises(DataError) as err:
        load_dataset(tmp_path)
    msg = str(err.value)
    assert msg.startswith(f"{tmp_path / 'annotations.json'}: image '1': image id '1' is a str")
    assert "; and 6 more problem(s)" in msg and "--no-check" in msg  # 3 ids, 3 orphans, 3 categories
    assert len(validate(tmp_path).errors) == 9  # validate reports every problem


def test_cli_refuses_and_no_check_skips(cases, capsys):
    from scopeseg.cli import main

    broken = cases["duplicate_annotation_ids"].path
    assert main(["info", str(broken)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "[duplicate_annotation_id]" in err[0] and "Traceback" not in err[0]
    assert main(["info", str(broken), "--no-check", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 3
    assert main(["info", str(cases["missing_image_file"].path)]) == 2  # commands check the files
    assert "[image_missing]" in capsys.readouterr().err
    assert main(["validate", str(broken)]) == 2  # validate lists problems instead of refusing at load
    assert "duplicate_annotation_id" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------ io readers
@pytest.mark.parametrize(
    "data, needle",
    [
        (b"", "empty file"),
        (b"  \n", "only whitespace"),
        (b'{"a": [1, 2', "malformed JSON at line 1"),
        (b'{"a": "\xff\xfe"}', "not UTF-8"),
        (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
    ],
)
def test_read_json_refuses_in_one_line(tmp_path, data, needle):
    p = tmp_path / "x.json"
    p.write_bytes(data)
    with pytest.raises(DataError, match=needle) as err:
        read_json(p)
    assert str(err.value).startswith(f"{p}: ") and "\n" not in str(err.value)


def test_read_json_types_and_nan(tmp_path):
    p = tmp_path / "x.json"
    p.write_text('{"score": NaN, "far": Infinity}')
    obj = read_json(p, expect=dict)
    assert np.isnan(obj["score"]) and obj["far"] == float("inf")  # what Python's json writes is read
    with pytest.raises(DataError, match="JSON top level is an object, expected an array"):
        read_json(p, expect=list)
    with pytest.raises(DataError, match="is a folder"):
        read_json(tmp_path)
    with pytest.raises(DataError, match="file not found"):
        read_json(tmp_path / "nope.json")


def test_read_image_pixel_limit(cases, monkeypatch):
    img = cases["valid"].path / "images" / "f000.png"
    assert read_image(img).shape == (corpus.H, corpus.W, 3)
    monkeypatch.setenv("SCOPESEG_MAX_IMAGE_PIXELS", str(corpus.H * corpus.W - 1))
    with pytest.raises(DataError, match="decompression-bomb guard"):
        read_image(img)
    monkeypatch.setenv("SCOPESEG_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(ConfigError, match="SCOPESEG_MAX_IMAGE_PIXELS"):
        read_image(img)
    monkeypatch.delenv("SCOPESEG_MAX_IMAGE_PIXELS")
    bomb = cases["decompression_bomb"].path / "images" / "f001.png"
    with pytest.raises(DataError, match="decompression-bomb guard"):
        read_image(bomb)
    result = validate(cases["decompression_bomb"].path)  # validate names it too (no traceback)
    assert [p.code for p in result.errors] == ["image_unreadable"]


def test_unusual_pixels_convert(cases):
    grey = read_image(cases["grey_16bit_images"].path / "images" / "f001.png")
    assert grey.dtype == np.uint8 and grey.shape == (corpus.H, corpus.W, 3)
    src = np.arange(corpus.H * corpus.W, dtype=np.uint16).reshape(corpus.H, corpus.W) * 20
    assert np.array_equal(grey[..., 0], np.round(src / 257.0)) and np.array_equal(grey[..., 0], grey[..., 2])
    rgba = read_image(cases["rgba_image"].path / "images" / "f001.png")
    assert np.array_equal(rgba, corpus._image(1)[..., ::-1])  # the corpus writes it with cv2 (BGRA)
    cmyk = read_image(cases["cmyk_jpeg"].path / "images" / "f001.jpg")
    assert np.abs(cmyk.astype(int) - corpus._image(1)).mean() < 20  # JPEG + CMYK round trip
