"""Mask folders: images/ + masks/ and *_seg pairs; binary, index, palette, color, lossy JPEG masks.

Layouts follow the common data set releases: Kvasir-SEG (images/ + masks/, JPEG 0/255 masks, see
../shared/data/kvasir_seg/SOURCE.md), ISIC-style ``X.png`` + ``X_seg.png`` pairs, VOC-style palette PNGs.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from formats_helpers import assert_valid, blobs, coco_masks, rgb, shared, write

from scopeseg.data.coco import CocoDataset
from scopeseg.data.formats import convert, detect
from scopeseg.io import read_image

H, W = 24, 32


def _folder(root, masks: dict, ext=".png", layout="dirs"):
    for i, (name, m) in enumerate(masks.items()):
        if layout == "dirs":
            write(root / "images" / f"{name}.png", rgb(H, W, i))
            write(root / "masks" / f"{name}{ext}", m)
        else:
            write(root / f"{name}.png", rgb(H, W, i))
            write(root / f"{name}_seg{ext}", m)
    return root


def _read(p):
    return read_image(p, mode="unchanged")


@pytest.mark.parametrize("layout", ["dirs", "suffix"])
@pytest.mark.parametrize("fg", [255, 1])
def test_binary_round_trip_identical(tmp_path, layout, fg):
    masks = {f"f{i}": (blobs(H, W, i) > 0).astype(np.uint8) * fg for i in range(3)}
    masks["empty"] = np.zeros((H, W), np.uint8)
    src = _folder(tmp_path / "src", masks, layout=layout)
    assert detect(src) == "mask-folder"
    rep = convert(src, tmp_path / "coco")
    assert rep.counts["images"] == 4 and rep.counts["annotations"] == 3 and not rep.warnings
    ds = CocoDataset.load(tmp_path / "coco")
    assert_valid(tmp_path / "coco")
    assert [c["name"] for c in ds.categories.values()] == ["foreground"]
    convert(tmp_path / "coco", tmp_path / "back", to_format="mask-folder")
    for name, m in masks.items():
        back = _read(tmp_path / "back" / "masks" / f"{name}.png")
        assert back.dtype == np.uint8 and np.array_equal(back, m), name
        assert np.array_equal(
            _read(tmp_path / "back" / "images" / f"{name}.png"), rgb(H, W, list(masks).index(name))
        )


def test_index_masks_with_table_and_video_subfolders(tmp_path):
    table = [{"id": 1, "name": "polyp"}, {"id": 2, "name": "tool"}, {"id": 3, "name": "blood"}]
    (tmp_path / "classes.json").write_text(json.dumps(table))
    src = tmp_path / "src"
    for v in ("caseA", "caseB"):
        for f in (2, 10, 1):
            write(src / "images" / v / f"frame{f}.png", rgb(H, W, f))
            write(src / "masks" / v / f"frame{f}.png", blobs(H, W, f + len(v)))
    rep = convert(src, tmp_path / "coco", classes=tmp_path / "classes.json")
    ds = CocoDataset.load(tmp_path / "coco")
    assert {c: x["name"] for c, x in ds.categories.items()} == {1: "polyp", 2: "tool", 3: "blood"}
    assert rep.counts["videos"] == 2
    frames = [ds.images[i]["file_name"] for i in ds.video_frames(1)]
    assert frames == ["images/caseA/frame1.png", "images/caseA/frame2.png", "images/caseA/frame10.png"]
    got = coco_masks(tmp_path / "coco")
    for name, lab in got.items():
        assert np.array_equal(lab, _read(src / "masks" / name.split("/", 1)[1]))
    convert(tmp_path / "coco", tmp_path / "back", to_format="mask-folder")
    for p in (src / "masks").rglob("*.png"):
        assert np.array_equal(_read(tmp_path / "back" / "masks" / p.relative_to(src / "masks")), _read(p))


def test_color_masks_round_trip_and_palette_png(tmp_path):
    from PIL import Image

    table = {"shaft": [0, 255, 0], "kidney": [255, 55, 0]}
    (tmp_path / "t.json").write_text(json.dumps(table))
    palette = np.array([[0, 0, 0], [0, 255, 0], [255, 55, 0]], np.uint8)
    src = tmp_path / "src"
    labs = {f"c{i}": blobs(H, W, i, k=2) for i in range(2)}
    for i, (name, lab) in enumerate(labs.items()):
        write(src / "images" / f"{name}.png", rgb(H, W, i))
        write(src / "masks" / f"{name}.png", palette[lab])
    convert(src, tmp_path / "coco", classes=tmp_path / "t.json")
    ds = CocoDataset.load(tmp_path / "coco")
    assert [(c["name"], c["color"]) for c in ds.categories.values()] == [
        ("shaft", [0, 255, 0]),
        ("kidney", [255, 55, 0]),
    ]
    convert(tmp_path / "coco", tmp_path / "back", to_format="mask-folder")
    for name, lab in labs.items():
        assert np.array_equal(_read(tmp_path / "back" / "masks" / f"{name}.png"), palette[lab])
    # a VOC-style palette PNG is read as its indices (class-index mode)
    pal = tmp_path / "pal"
    write(pal / "images" / "a.png", rgb(H, W))
    im = Image.fromarray(labs["c0"], mode="P")
    im.putpalette(palette.ravel().tolist())
    (pal / "masks").mkdir()
    im.save(pal / "masks" / "a.png")
    convert(pal, tmp_path / "pcoco", mask_mode="index")
    assert np.array_equal(coco_masks(tmp_path / "pcoco")["images/a.png"], labs["c0"])


def test_lossy_jpeg_masks_thresholded_with_counted_warning(tmp_path):
    m = (blobs(H, W, 3) > 0).astype(np.uint8) * 255
    src = _folder(tmp_path / "src", {"a": m}, ext=".jpg")
    stored = _read(src / "masks" / "a.jpg")
    grey = int(((stored != 0) & (stored != 255)).sum())
    assert grey > 0
    rep = convert(src, tmp_path / "coco")
    assert rep.counts["jpeg_grey_pixels"] == grey
    assert any("lossy JPEG" in w for w in rep.warnings)
    assert np.array_equal(coco_masks(tmp_path / "coco")["images/a.png"] > 0, stored >= 128)


def test_real_kvasir_jpeg_masks_match_shipped_png(tmp_path):
    """Kvasir-SEG's JPEG masks thresholded here equal the PNG masks derived in ../shared/data (gray > 127)."""
    data = shared("kvasir_seg_256")
    src = tmp_path / "kv"
    (src / "masks").mkdir(parents=True)
    (src / "images").symlink_to(data / "images")
    for p in sorted((data / "masks_original").iterdir())[:4]:
        (src / "masks" / p.name).symlink_to(p)
    for p in sorted((data / "images").iterdir())[4:]:
        (src / "masks" / p.name).symlink_to(data / "masks_original" / p.name)
    rep = convert(src, tmp_path / "coco")
    assert rep.counts["jpeg_grey_pixels"] > 0
    for name, lab in coco_masks(tmp_path / "coco").items():
        stem = name.split("/")[-1].rsplit(".", 1)[0]
        assert np.array_equal(lab > 0, _read(data / "masks" / f"{stem}.png") > 0), name


def test_bad_inputs(tmp_path, bad_input):
    ok = (blobs(H, W, 0) > 0).astype(np.uint8) * 255
    # missing mask for an image
    src = _folder(tmp_path / "miss", {"a": ok, "b": ok})
    (src / "masks" / "b.png").unlink()
    bad_input(["convert", src, tmp_path / "o1"], tmp_path / "o1", "b.png")
    # mask size mismatch
    src = _folder(tmp_path / "size", {"a": ok})
    write(src / "masks" / "a.png", np.zeros((H + 1, W), np.uint8))
    bad_input(["convert", src, tmp_path / "o2"], tmp_path / "o2", "a.png: mask size 25x32 differs")
    # unknown color
    src = _folder(tmp_path / "color", {"a": np.zeros((H, W, 3), np.uint8)})
    m = np.zeros((H, W, 3), np.uint8)
    m[2:5, 2:5] = (9, 8, 7)
    write(src / "masks" / "a.png", m)
    (tmp_path / "t.json").write_text(json.dumps({"x": [0, 255, 0]}))
    bad_input(
        ["convert", src, tmp_path / "o3", f"classes={tmp_path / 't.json'}"],
        tmp_path / "o3",
        "unknown color (9, 8, 7)",
    )
    # empty folder
    (tmp_path / "empty").mkdir()
    bad_input(
        ["convert", tmp_path / "empty", tmp_path / "o4", "from=mask-folder"],
        tmp_path / "o4",
        "no image/mask pairs",
    )
    # corrupt mask (after a good pair: the partial output must vanish)
    src = _folder(tmp_path / "corrupt", {"a": ok, "b": ok})
    (src / "masks" / "b.png").write_bytes(b"\x89PNG not really")
    bad_input(["convert", src, tmp_path / "o5"], tmp_path / "o5", "b.png")
    # non-binary values in a binary data set
    src = _folder(tmp_path / "mixed", {"a": ok, "b": blobs(H, W, 1)})
    bad_input(["convert", src, tmp_path / "o6"], tmp_path / "o6", "not binary")
