"""Generate the bad-input corpus: broken (and a few valid but unusual) inputs of every kind a command reads.

Nothing binary is committed: ``build_corpus(root)`` writes every case into ``root`` from code, in about a
second. Each case names its kind (what commands take it), whether it is valid, and what is wrong with it.
Run ``python tests/badinput/corpus.py OUT`` to look at the files.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

H, W = 32, 48

#: kinds of input and the commands that read them (the runner maps these to command lines)
KINDS = (
    "dataset",
    "results",
    "tapis",
    "image",
    "prompts",
    "video",
    "npz",
    "checkpoint",
    "masks",
    "coco_video",
    "track_prompts",
)


@dataclass
class Case:
    """One corpus input: ``path`` is what a command is given; ``valid`` cases must be accepted."""

    kind: str
    name: str
    path: Path
    valid: bool
    problem: str


def _disk_mask(cy: int, cx: int, r: int) -> np.ndarray:
    yy, xx = np.mgrid[:H, :W]
    return ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r).astype(np.uint8)


def _rle(mask: np.ndarray) -> dict:
    from scopeseg.data import rle

    return rle.encode(mask.astype(bool))


def _image(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((H, W, 3), 90, np.uint8)
    img[..., 0] = 150
    return np.clip(img.astype(int) + rng.integers(-20, 20, (H, W, 3)), 0, 255).astype(np.uint8)


def _write_png(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), rgb[..., ::-1] if rgb.ndim == 3 and rgb.shape[2] == 3 else rgb)
    return path


def valid_coco(n_images: int = 3, video: bool = True) -> dict:
    """A small valid canonical data set (two categories, one object per image, frames of one video)."""
    images, anns = [], []
    for i in range(n_images):
        img = {"id": i + 1, "file_name": f"images/f{i:03d}.png", "height": H, "width": W}
        if video:
            img.update(video_id=1, frame_index=i)
        images.append(img)
        m = _disk_mask(16, 14 + 8 * i, 6)
        ys, xs = np.nonzero(m)
        anns.append(
            {
                "id": i + 1,
                "image_id": i + 1,
                "category_id": 1 + i % 2,
                "segmentation": _rle(m),
                "area": int(m.sum()),
                "bbox": [int(xs.min()), int(ys.min()), int(np.ptp(xs) + 1), int(np.ptp(ys) + 1)],
                "iscrowd": 0,
            }
        )
    out = {
        "images": images,
        "annotations": anns,
        "categories": [
            {"id": 1, "name": "grasper", "supercategory": "instrument"},
            {"id": 2, "name": "hook", "supercategory": "instrument"},
        ],
    }
    if video:
        out["videos"] = [{"id": 1, "name": "vid000"}]
    return out


def _write_dataset(
    folder: Path, coco: dict | None = None, images: bool = True, raw: bytes | None = None
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    coco = valid_coco() if coco is None else coco
    if images:  # the frames of the valid set (a mutated JSON may point elsewhere or hold junk)
        for i, img in enumerate(valid_coco()["images"]):
            _write_png(folder / img["file_name"], _image(i))
        for i, img in enumerate(coco.get("images") if isinstance(coco.get("images"), list) else []):
            fn = img.get("file_name") if isinstance(img, dict) else None
            if isinstance(fn, str) and fn.endswith(".jpg"):
                _write_png(folder / fn, _image(i))
    (folder / "annotations.json").write_bytes(raw if raw is not None else json.dumps(coco).encode())
    return folder


def _png_header(path: Path, h: int, w: int) -> Path:
    """A PNG whose header claims ``h`` x ``w`` pixels with a tiny (truncated) body: a decompression bomb."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    body = zlib.compress(b"\x00" * 1024)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


# ----------------------------------------------------------------------------------------------- data sets
def _dataset_cases(root: Path) -> list[Case]:
    cases: list[Case] = []
    base = root / "dataset"

    def add(name: str, problem: str, mutate: Callable[[dict], None] | None = None, valid: bool = False, **kw):
        coco = valid_coco()
        if mutate is not None:
            mutate(coco)
        folder = _write_dataset(base / name, coco, **kw)
        cases.append(Case("dataset", name, folder, valid, problem))
        return folder

    add("valid", "none: a valid data set", valid=True)
    add(
        "valid_polygons",
        "none: polygon segmentations instead of RLE",
        lambda c: c["annotations"][0].update(segmentation=[[8.0, 10.0, 20.0, 10.0, 20.0, 22.0, 8.0, 22.0]]),
        valid=True,
    )
    add(
        "string_image_ids",
        "image ids are strings",
        lambda c: (
            [img.update(id=str(img["id"])) for img in c["images"]]
            and [a.update(image_id=str(a["image_id"])) for a in c["annotations"]]
        ),
    )
    add("duplicate_image_ids", "two images share id 1", lambda c: c["images"][1].update(id=1))
    add("duplicate_annotation_ids", "two annotations share id 1", lambda c: c["annotations"][1].update(id=1))
    add(
        "orphan_annotation",
        "annotation refers to image 99",
        lambda c: c["annotations"][0].update(image_id=99),
    )
    add("unknown_category", "annotation has category 7", lambda c: c["annotations"][0].update(category_id=7))
    add(
        "polygon_two_points",
        "polygon with 2 points",
        lambda c: c["annotations"][0].update(segmentation=[[1.0, 1.0, 10.0, 10.0]]),
    )
    add(
        "polygon_odd_coords",
        "polygon with an odd number of coordinates",
        lambda c: c["annotations"][0].update(segmentation=[[1.0, 1.0, 10.0, 10.0, 5.0]]),
    )
    add("negative_box", "bbox with negative width", lambda c: c["annotations"][0].update(bbox=[5, 5, -3, 4]))
    add("nan_box", "bbox holds NaN", lambda c: c["annotations"][0].update(bbox=[5, 5, float("nan"), 4]))
    add(
        "duplicate_frame_index",
        "two frames of one video share frame_index 0",
        lambda c: c["images"][1].update(frame_index=0),
    )
    add("negative_frame_index", "frame_index -1", lambda c: c["images"][0].update(frame_index=-1))
    add("unknown_video", "image refers to video 5", lambda c: c["images"][0].update(video_id=5))
    add(
        "bad_rle_counts",
        "RLE counts are not a valid COCO string",
        lambda c: c["annotations"][0].update(segmentation={"size": [H, W], "counts": "\x01\x02###not-rle"}),
    )
    add(
        "rle_size_mismatch",
        "RLE size differs from the image",
        lambda c: c["annotations"][0].update(segmentation=_rle(np.ones((H + 8, W), np.uint8))),
    )
    add(
        "rle_counts_overflow",
        "RLE counts sum past the image",
        lambda c: c["annotations"][0].update(segmentation={"size": [H, W], "counts": [0, H * W + 500]}),
    )
    add(
        "missing_segmentation",
        "annotation without segmentation",
        lambda c: c["annotations"][0].pop("segmentation"),
    )
    add(
        "image_size_differs", "JSON says 64x48, the file is 32x48", lambda c: c["images"][0].update(height=64)
    )
    add(
        "huge_dimensions_json",
        "JSON claims 10^9 x 10^9 pixels",
        lambda c: c["images"][0].update(height=10**9, width=10**9),
    )
    add("zero_dimensions", "image height 0", lambda c: c["images"][0].update(height=0))
    add(
        "file_name_escapes_root",
        "file_name ../../etc/passwd",
        lambda c: c["images"][0].update(file_name="../../etc/passwd"),
    )
    add(
        "absolute_file_name", "absolute file_name", lambda c: c["images"][0].update(file_name="/etc/hostname")
    )
    add("no_images_key", "JSON has no 'images'", lambda c: c.pop("images"))
    add("images_not_a_list", "'images' is an object", lambda c: c.update(images={"1": "x"}))
    add("category_without_name", "category has no name", lambda c: c["categories"][0].pop("name"))
    add("duplicate_category_ids", "two categories share id 1", lambda c: c["categories"][1].update(id=1))
    add("empty_dataset", "no images at all", lambda c: c.update(images=[], annotations=[], videos=[]))

    f = add("missing_image_file", "an image file is missing")
    (f / "images" / "f001.png").unlink()
    f = add("zero_byte_image", "an image file is empty")
    (f / "images" / "f001.png").write_bytes(b"")
    f = add("truncated_image", "an image file is cut in half")
    p = f / "images" / "f001.png"
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    f = add("text_as_image", "an image file holds text")
    (f / "images" / "f001.png").write_text("this is not a picture\n")
    f = add("decompression_bomb", "an image header claims 60000x60000 pixels")
    _png_header(f / "images" / "f001.png", 60000, 60000)
    f = add("symlink_out_of_root", "an image is a symlink out of the data root")
    outside = _write_png(root / "outside" / "secret.png", _image(7))
    (f / "images" / "f001.png").unlink()
    os.symlink(outside, f / "images" / "f001.png")
    f = add("image_is_a_folder", "an image path is a folder")
    (f / "images" / "f001.png").unlink()
    (f / "images" / "f001.png").mkdir()

    # valid but unusual pixels: must be accepted
    f = add("grey_16bit_images", "none: 16-bit grey PNG frames", valid=True)
    cv2.imwrite(str(f / "images" / "f001.png"), (np.arange(H * W, dtype=np.uint16).reshape(H, W) * 20))
    f = add("rgba_image", "none: an RGBA PNG frame", valid=True)
    cv2.imwrite(str(f / "images" / "f001.png"), np.dstack([_image(1), np.full((H, W), 200, np.uint8)]))
    f = add("cmyk_jpeg", "none: a CMYK JPEG frame", valid=True)
    c = valid_coco()
    c["images"][1]["file_name"] = "images/f001.jpg"
    _write_dataset(f, c)
    from PIL import Image

    Image.fromarray(_image(1)).convert("CMYK").save(f / "images" / "f001.jpg")

    for name, raw, problem in (
        ("malformed_json", b'{"images": [', "JSON is cut off"),
        ("non_utf8_json", b'{"images": [], "info": {"x": "\xff\xfe\xfa"}}', "JSON is not UTF-8"),
        ("deeply_nested_json", b"[" * 100000 + b"]" * 100000, "JSON nested 100000 deep"),
        ("json_is_a_list", b"[1, 2, 3]", "top level is a list"),
        ("zero_byte_json", b"", "annotations.json is empty"),
    ):
        folder = _write_dataset(base / name, valid_coco(), raw=raw)
        cases.append(Case("dataset", name, folder, False, problem))
    empty = base / "empty_folder"
    empty.mkdir(parents=True)
    cases.append(Case("dataset", "empty_folder", empty, False, "folder without annotations.json"))
    cases.append(Case("dataset", "does_not_exist", base / "nowhere", False, "path does not exist"))
    return cases


# ----------------------------------------------------------------------------------------- predictions
def _results_cases(root: Path, gt: Path) -> list[Case]:
    """COCO results files scored against the valid data set ``gt``."""
    base = root / "results"
    base.mkdir(parents=True, exist_ok=True)
    coco = valid_coco()
    good = [
        {
            "image_id": a["image_id"],
            "category_id": a["category_id"],
            "segmentation": a["segmentation"],
            "bbox": a["bbox"],
            "score": 0.9,
        }
        for a in coco["annotations"]
    ]
    cases = []

    def add(name: str, problem: str, data, valid: bool = False, raw: bytes | None = None):
        p = base / f"{name}.json"
        p.write_bytes(raw if raw is not None else json.dumps(data).encode())
        cases.append(Case("results", name, p, valid, problem))

    add("valid", "none: valid COCO results", good, valid=True)
    add("empty_list", "none: no detections", [], valid=True)
    add("no_score", "a detection has no score", [{k: v for k, v in d.items() if k != "score"} for d in good])
    add("nan_score", "a detection's score is NaN", [{**d, "score": float("nan")} for d in good])
    add(
        "rle_bigger_than_image",
        "RLE of 64x96 for a 32x48 image",
        [{**good[0], "segmentation": _rle(np.ones((2 * H, 2 * W), np.uint8))}, *good[1:]],
    )
    add("unknown_category", "category_id 9 is no GT category", [{**d, "category_id": 9} for d in good])
    add("unknown_image", "image_id 99 is no GT image", [{**good[0], "image_id": 99}, *good[1:]])
    add("string_image_id", "image_id is a string", [{**d, "image_id": str(d["image_id"])} for d in good])
    add(
        "no_segmentation",
        "a detection has no segmentation",
        [{k: v for k, v in d.items() if k != "segmentation"} for d in good],
    )
    add("not_a_list", "top level is an object", {"annotations": good})
    add("malformed", "JSON is cut off", None, raw=b'[{"image_id": 1,')
    add("detection_is_a_number", "a list element is a number", [1, 2, 3])
    # a data set folder as predictions (valid): the GT itself
    cases.append(
        Case("results", "dataset_folder", gt, True, "none: a canonical data set folder as predictions")
    )
    return cases


# ------------------------------------------------------------------------------------- images and videos
def _image_cases(root: Path) -> list[Case]:
    base = root / "image"
    base.mkdir(parents=True, exist_ok=True)
    cases = [Case("image", "valid", _write_png(base / "valid.png", _image(0)), True, "none: an RGB PNG")]
    p = base / "grey16.png"
    cv2.imwrite(str(p), (np.arange(H * W, dtype=np.uint16).reshape(H, W) * 20))
    cases.append(Case("image", "grey16", p, True, "none: a 16-bit grey PNG"))
    p = base / "rgba.png"
    cv2.imwrite(str(p), np.dstack([_image(1), np.full((H, W), 200, np.uint8)]))
    cases.append(Case("image", "rgba", p, True, "none: an RGBA PNG"))
    for name, data, problem in (
        ("zero_byte.png", b"", "empty file"),
        ("text.png", b"hello, I am text\n", "text with an image suffix"),
    ):
        (base / name).write_bytes(data)
        cases.append(Case("image", Path(name).stem, base / name, False, problem))
    p = _write_png(base / "truncated.png", _image(2))
    p.write_bytes(p.read_bytes()[:40])
    cases.append(Case("image", "truncated", p, False, "PNG cut after 40 bytes"))
    cases.append(
        Case("image", "bomb", _png_header(base / "bomb.png", 60000, 60000), False, "60000x60000 header")
    )
    cases.append(Case("image", "missing", base / "nowhere.png", False, "file does not exist"))
    return cases


def _video_cases(root: Path) -> list[Case]:
    base = root / "video"
    base.mkdir(parents=True, exist_ok=True)
    from scopeseg.video_io import VideoWriter

    good = base / "valid.mp4"
    w = VideoWriter(good, fps=10.0)
    for i in range(6):
        w.write(np.ascontiguousarray(np.broadcast_to(_image(i), (H, W, 3))))
    w.close()
    cases = [Case("video", "valid", good, True, "none: a 6-frame mp4")]
    (base / "text.mp4").write_text("not a video\n")
    cases.append(Case("video", "text", base / "text.mp4", False, "text with a video suffix"))
    (base / "zero_byte.mp4").write_bytes(b"")
    cases.append(Case("video", "zero_byte", base / "zero_byte.mp4", False, "empty file"))
    data = good.read_bytes()
    (base / "cut_in_half.mp4").write_bytes(data[: len(data) // 2])
    cases.append(Case("video", "cut_in_half", base / "cut_in_half.mp4", False, "mp4 cut in half"))
    return cases


# ------------------------------------------------------------------------------------ track prompts JSON
def _track_prompt_cases(root: Path) -> list[Case]:
    """Prompts JSON files for ``track MODEL video/valid.mp4 OUT prompts=FILE`` (6 frames of 48x32)."""
    base = root / "track_prompts"
    base.mkdir(parents=True, exist_ok=True)
    cases = []

    def add(name: str, problem: str, data, valid: bool = False, raw: bytes | None = None):
        p = base / f"{name}.json"
        p.write_bytes(raw if raw is not None else json.dumps(data).encode())
        cases.append(Case("track_prompts", name, p, valid, problem))

    box = {"frame": 0, "object": 1, "box": [4, 4, 20, 20]}
    add("valid", "none: a box on frame 0", {"objects": {"1": "tool"}, "prompts": [box]}, valid=True)
    add("frame_out_of_range", "a prompt on frame 6 of a 6-frame video", {"prompts": [{**box, "frame": 6}]})
    add("negative_frame", "a prompt on frame -1", {"prompts": [{**box, "frame": -1}]})
    add("box_outside_frame", "a box beyond the 48x32 frame", {"prompts": [{**box, "box": [4, 4, 60, 20]}]})
    add(
        "point_outside_frame",
        "a point beyond the frame",
        {"prompts": [{"frame": 0, "object": 1, "points": [[99, 5, 1]]}]},
    )
    add(
        "unknown_object",
        "a prompt names object 2, objects lists only 1",
        {"objects": {"1": "tool"}, "prompts": [box, {**box, "object": 2}]},
    )
    add("object_zero", "object id 0", {"prompts": [{**box, "object": 0}]})
    add("no_prompts", "an empty prompt list", {"prompts": []})
    add("malformed", "JSON is cut off", None, raw=b'{"prompts": [')
    return cases


# ------------------------------------------------------------------------------------------------- npz
def _npz_cases(root: Path) -> list[Case]:
    cases = []

    def add(name: str, problem: str, valid: bool = False, raw: bytes | None = None, **arrays):
        folder = root / "npz" / name
        folder.mkdir(parents=True, exist_ok=True)
        p = folder / f"2DBox_{name}.npz"
        if raw is not None:
            p.write_bytes(raw)
        else:
            np.savez_compressed(p, **arrays)
        cases.append(Case("npz", name, folder, valid, problem))

    img = _image(0)
    box = np.array([[10, 8, 30, 24]])
    add("valid", "none: a 2D case", True, imgs=img, boxes=box)
    add("object_array", "imgs is an object array", imgs=np.array([img, None], dtype=object), boxes=box)
    add("wrong_keys", "keys image/box instead of imgs/boxes", image=img, box=box)
    add("box_outside_image", "box beyond the image", imgs=img, boxes=np.array([[10, 8, 300, 240]]))
    add("degenerate_box", "box with x0 > x1", imgs=img, boxes=np.array([[30, 8, 10, 24]]))
    add("nan_box", "box holds NaN", imgs=img, boxes=np.array([[np.nan, 8, 30, 24]]))
    add("boxes_wrong_shape", "boxes of shape (1, 3)", imgs=img, boxes=np.array([[1, 2, 3]]))
    add("imgs_4d", "imgs of 4 dimensions", imgs=img[None, None], boxes=box)
    add("empty_npz", "no arrays at all")
    add("text_file", "text with an npz suffix", raw=b"not a zip file\n")
    add("truncated", "zip cut in half", raw=b"PK\x03\x04" + b"\x00" * 20)
    empty = root / "npz" / "empty_folder"
    empty.mkdir(parents=True)
    cases.append(Case("npz", "empty_folder", empty, False, "no npz files"))
    return cases


# ------------------------------------------------------------------------------------------ checkpoints
def _checkpoint_cases(root: Path) -> list[Case]:
    base = root / "checkpoint"
    cases = []

    def add(name: str, problem: str, files: dict[str, bytes | str]):
        folder = base / name
        folder.mkdir(parents=True, exist_ok=True)
        for fn, data in files.items():
            (folder / fn).write_bytes(data if isinstance(data, bytes) else data.encode())
        cases.append(Case("checkpoint", name, folder, False, problem))

    from scopeseg.models import create_model
    from scopeseg.models.checkpoints import save_pretrained
    from scopeseg.models.sam.model import TINY_ARCH

    unet = create_model("unet-effb0", pretrained=False, classes=["grasper"])
    save_pretrained(unet, base / "valid_unet")
    cases.append(Case("checkpoint", "valid_unet", base / "valid_unet", True, "none: a tiny semantic model"))
    sam = create_model("litemedsam", pretrained=False, **TINY_ARCH)
    save_pretrained(sam, base / "valid_sam")
    cases.append(Case("checkpoint", "valid_sam", base / "valid_sam", True, "none: a tiny LiteMedSAM"))
    cfg = json.dumps({"name": "unet-lite0", "classes": ["instrument"], "pretrained": False})
    add("missing_config", "no config.json", {"model.safetensors": b"\x00" * 16})
    add("missing_weights", "no model.safetensors", {"config.json": cfg})
    add("malformed_config", "config.json is cut off", {"config.json": '{"name": ', "model.safetensors": b"x"})
    add(
        "unknown_model",
        "config names model 'unet-nope'",
        {"config.json": json.dumps({"name": "unet-nope"}), "model.safetensors": b"x"},
    )
    add(
        "corrupt_weights",
        "model.safetensors is garbage",
        {"config.json": cfg, "model.safetensors": b"\x00garbage"},
    )
    add(
        "pickle_weights",
        "a pickle renamed to model.safetensors",
        {"config.json": cfg, "model.safetensors": b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00}\x94."},
    )
    add("config_is_a_list", "config.json holds a list", {"config.json": "[1, 2]", "model.safetensors": b"x"})
    add(
        "config_bad_argument",
        "config.json gives classes as a number",
        {"config.json": json.dumps({"name": "unet-effb0", "classes": 3}), "model.safetensors": b"x"},
    )
    mismatch = base / "weights_mismatch"
    shutil.copytree(base / "valid_unet", mismatch)
    conf = json.loads((mismatch / "config.json").read_text())
    (mismatch / "config.json").write_text(json.dumps({**conf, "classes": ["a", "b", "c"]}))
    cases.append(Case("checkpoint", "weights_mismatch", mismatch, False, "weights of 1 class, config of 3"))
    cases.append(Case("checkpoint", "does_not_exist", base / "nowhere", False, "folder does not exist"))
    return cases


# ------------------------------------------------------------------------------------------ mask folders
def _mask_cases(root: Path) -> list[Case]:
    base = root / "masks"
    cases = []

    def add(name: str, problem: str, masks: dict[str, np.ndarray], valid: bool = False):
        folder = base / name
        folder.mkdir(parents=True, exist_ok=True)
        for fn, m in masks.items():
            if fn.endswith(".npy"):
                np.save(folder / fn, m)
            else:
                cv2.imwrite(str(folder / fn), m)
        cases.append(Case("masks", name, folder, valid, problem))

    m = _disk_mask(16, 20, 6)
    add("valid", "none: 0/1 label maps", {"f000.png": m, "f001.png": m}, valid=True)
    add("colour_mask", "a mask with different channels", {"f000.png": np.dstack([m * 255, m * 0, m * 0])})
    add("float_npy", "probabilities stored as float", {"f000.npy": m.astype(np.float32) * 0.7})
    add("wrong_size", "a mask of 16x16", {"f000.png": np.zeros((16, 16), np.uint8)})
    empty = base / "empty_folder"
    empty.mkdir(parents=True)
    cases.append(Case("masks", "empty_folder", empty, False, "no masks"))
    return cases


def _mask_folder_cases(root: Path) -> list[Case]:
    """``images/`` + ``masks/`` folders for ``convert from=mask-folder``."""
    cases = []
    m = _disk_mask(16, 20, 6)

    def add(name: str, problem: str, masks: dict[str, np.ndarray | bytes], valid: bool = False) -> Path:
        folder = root / "mask_folder" / name
        for i in range(2):
            _write_png(folder / "images" / f"f{i:03d}.png", _image(i))
        (folder / "masks").mkdir(parents=True, exist_ok=True)
        for fn, data in masks.items():
            if isinstance(data, bytes):
                (folder / "masks" / fn).write_bytes(data)
            else:
                cv2.imwrite(str(folder / "masks" / fn), data)
        cases.append(Case("mask_folder", name, folder, valid, problem))
        return folder

    add("valid", "none: binary 0/255 masks", {"f000.png": m * 255, "f001.png": m * 255}, valid=True)
    add("missing_mask", "an image without a mask", {"f000.png": m * 255})
    add("wrong_size", "a mask of 16x16", {"f000.png": m * 255, "f001.png": np.zeros((16, 16), np.uint8)})
    add("text_mask", "a mask file holds text", {"f000.png": m * 255, "f001.png": b"not a mask\n"})
    add("bomb_mask", "a mask header claims 60000x60000", {"f000.png": m * 255})
    _png_header(root / "mask_folder" / "bomb_mask" / "masks" / "f001.png", 60000, 60000)
    f = add("text_image", "an image file holds text", {"f000.png": m * 255, "f001.png": m * 255})
    (f / "images" / "f001.png").write_text("not an image\n")
    return cases


# ------------------------------------------------------------------------------------------ prompts JSON
def _prompt_cases(root: Path) -> list[Case]:
    """Prompts JSON files for ``segment IMAGE_FOLDER OUT prompts=FILE`` over the image cases' folder."""
    base = root / "prompts"
    base.mkdir(parents=True, exist_ok=True)
    cases = []

    def add(name: str, problem: str, data, valid: bool = False, raw: bytes | None = None):
        p = base / f"{name}.json"
        p.write_bytes(raw if raw is not None else json.dumps(data).encode())
        cases.append(Case("prompts", name, p, valid, problem))

    ok = {"file_name": "valid.png", "boxes": [[10, 8, 30, 24]]}
    add("valid", "none: one box on one image", [ok], valid=True)
    add("valid_points", "none: a positive point", [{"file_name": "valid.png", "points": [[20, 16, 1]]}], True)
    add("not_a_list", "top level is an object", ok)
    add("no_file_name", "an entry has no file_name", [{"boxes": [[10, 8, 30, 24]]}])
    add("box_three_numbers", "a box of 3 numbers", [{**ok, "boxes": [[10, 8, 30]]}])
    add("box_outside_image", "a box beyond the image", [{**ok, "boxes": [[10, 8, 300, 240]]}])
    add("box_nan", "a box holds NaN", [{**ok, "boxes": [[float("nan"), 8, 30, 24]]}])
    add("box_strings", "a box of strings", [{**ok, "boxes": [["a", "b", "c", "d"]]}])
    add("missing_image", "file_name names no file", [{**ok, "file_name": "nowhere.png"}])
    add("text_image", "file_name names a text file", [{**ok, "file_name": "text.png"}])
    add(
        "escapes_root",
        "file_name leaves the folder",
        [{**ok, "file_name": "../dataset/valid/images/f000.png"}],
    )
    add("point_bad_label", "a point labelled 7", [{"file_name": "valid.png", "points": [[20, 16, 7]]}])
    add("malformed", "JSON is cut off", None, raw=b'[{"file_name": ')
    return cases


# --------------------------------------------------------------------------------- COCO-video JSON files
def _coco_video_cases(root: Path) -> list[Case]:
    """COCO-video JSON (SAM2 ``order_in_video`` / TAPIS ``video_name`` + ``frame_num``) for ``convert``."""
    cases = []

    def sam2(c: dict) -> None:
        for im in c["images"]:
            im["order_in_video"] = im.pop("frame_index")

    def tapis(c: dict) -> None:
        for im in c["images"]:
            im["frame_num"] = im.pop("frame_index")
            im["video_name"] = "vid000"
            im.pop("video_id")
        c.pop("videos")

    def add(name: str, problem: str, flavour, mutate=None, valid: bool = False):
        coco = valid_coco()
        flavour(coco)
        if mutate is not None:
            mutate(coco)
        folder = _write_dataset(root / "coco_video" / name, coco)
        cases.append(Case("coco_video", name, folder, valid, problem))

    add("valid_sam2", "none: SAM2 order_in_video", sam2, valid=True)
    add("valid_tapis", "none: TAPIS video_name + frame_num", tapis, valid=True)
    add("string_frame_num", "frame_num is a word", tapis, lambda c: c["images"][0].update(frame_num="first"))
    add(
        "duplicate_order",
        "two frames share order_in_video 0",
        sam2,
        lambda c: c["images"][1].update(order_in_video=0),
    )
    add(
        "string_image_ids",
        "image ids are strings",
        sam2,
        lambda c: (
            [im.update(id=f"im{im['id']}") for im in c["images"]]
            and [a.update(image_id=f"im{a['image_id']}") for a in c["annotations"]]
        ),
    )
    add("unknown_video", "image refers to video 5", sam2, lambda c: c["images"][0].update(video_id=5))
    return cases


# -------------------------------------------------------------------------------------- TAPIS predictions
def _tapis_cases(root: Path) -> list[Case]:
    """TAPIS prediction JSON ``{file_name: {instances: [...]}}`` against the valid data set."""
    base = root / "tapis"
    base.mkdir(parents=True, exist_ok=True)
    coco = valid_coco()
    good = {}
    for im in coco["images"]:
        a = next(a for a in coco["annotations"] if a["image_id"] == im["id"])
        dist = [0.9, 0.1] if a["category_id"] == 1 else [0.1, 0.9]
        good[im["file_name"]] = {
            "instances": [{"bbox": None, "instruments_score_dist": dist, "segment": a["segmentation"]}]
        }
    cases = []
    first = next(iter(good))

    def add(name: str, problem: str, data, valid: bool = False):
        p = base / f"{name}.json"
        p.write_text(json.dumps(data))
        cases.append(Case("tapis", name, p, valid, problem))

    def inst(**kw):
        return {**good, first: {"instances": [{**good[first]["instances"][0], **kw}]}}

    add("valid", "none: TAPIS predictions of every frame", good, valid=True)
    add(
        "unknown_file_name",
        "a prediction for an image the GT lacks",
        {**good, "images/nope.png": good[first]},
    )
    add(
        "dist_too_short", "score distribution of 1 class for 2 categories", inst(instruments_score_dist=[1.0])
    )
    add(
        "segment_bigger",
        "segment of 64x96 for a 32x48 image",
        inst(segment=_rle(np.ones((2 * H, 2 * W), np.uint8))),
    )
    add("instances_not_a_list", "instances is a number", {**good, first: {"instances": 5}})
    add("instance_is_a_string", "an instance is a string", {**good, first: {"instances": ["x"]}})
    add("nan_score", "a class score is NaN", inst(instruments_score_dist=[float("nan"), 0.1]))
    return cases


def build_corpus(root: str | Path) -> list[Case]:
    """Write every case under ``root``; returns the cases (the valid data set first)."""
    root = Path(root)
    data = _dataset_cases(root)
    gt = data[0].path
    return (
        data
        + _results_cases(root, gt)
        + _tapis_cases(root)
        + _image_cases(root)
        + _prompt_cases(root)
        + _video_cases(root)
        + _track_prompt_cases(root)
        + _npz_cases(root)
        + _checkpoint_cases(root)
        + _mask_cases(root)
        + _mask_folder_cases(root)
        + _coco_video_cases(root)
    )


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "badinput-corpus")
    cases = build_corpus(out)
    for c in cases:
        print(f"{c.kind:10s} {c.name:28s} {'valid' if c.valid else 'bad':5s} {c.problem}")
    print(f"{len(cases)} cases in {out}")
