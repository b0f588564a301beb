"""Image + mask folders: ``images/`` beside ``masks/`` (same stem), or ``X.png`` beside ``X_seg.png``.

Masks may be binary (0/255 or 0/1), class-index (value = class id; palette PNGs give their indices) or RGB
color-coded with a class table. Lossy JPEG binary masks (Kvasir-SEG, the MONAI bundle's data) are thresholded
at 128 with a warning counting the pixels that were neither 0 nor 255. Subfolders of ``images/`` are videos.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConfigError, DataError
from ...io import is_image, read_image
from .. import rle as rle_utils
from ._base import (
    ConversionReport,
    apply_mapping,
    check_size,
    color_to_label_map,
    frame_size,
    iter_with_progress,
    label_map_rles,
    last_number,
    link_or_copy,
    list_images,
    load_class_table,
    load_coco,
    load_mapping,
    natural_key,
    open_export,
    open_output,
    png_header,
    prefetch,
    require_dir,
    semantic_label_map,
    value_counts,
    write_png,
)

NAME = "mask-folder"
DESCRIPTION = "images/ + masks/ folders or X.png + X_seg.png pairs; binary, class-index or RGB color masks"
IMAGE_DIRS = ("images", "image", "imgs", "img", "frames")
MASK_DIRS = ("masks", "mask", "labels", "label", "gts", "gt", "ground_truth")
PAIR_SUFFIXES = ("_seg", "_mask", "_gt", "_label")
MODES = ("auto", "binary", "index", "color")
LOSSY = {".jpg", ".jpeg"}
JPEG_WARNING = "lossy JPEG masks thresholded at 128"


# ---------------------------------------------------------------------------------------------- pairing
def _find_dirs(src: Path) -> tuple[Path, Path] | None:
    names = {p.name.lower(): p for p in src.iterdir() if p.is_dir()}
    img = next((names[n] for n in IMAGE_DIRS if n in names), None)
    msk = next((names[n] for n in MASK_DIRS if n in names), None)
    return (img, msk) if img and msk else None


def _mask_candidates(folder: Path, stem: str, suffixes: tuple[str, ...]) -> Path | None:
    for suffix in suffixes:
        for ext in (".png", ".tif", ".tiff", ".bmp", ".jpg", ".jpeg", ".gif"):
            p = folder / f"{stem}{suffix}{ext}"
            if p.is_file():
                return p
    return None


def find_pairs(src: str | Path) -> list[tuple[Path, Path, str | None, str]]:
    """``(image, mask, video name or None, relative image name)`` for every image, in natural order.

    An image without a mask raises ``DataError`` naming the image and where the mask was looked for.
    """
    src = require_dir(src, "mask folder")
    dirs = _find_dirs(src)
    pairs = []
    if dirs:
        img_dir, mask_dir = dirs
        for img in list_images(img_dir, recursive=True):
            rel = img.relative_to(img_dir)
            folder = mask_dir / rel.parent
            mask = _mask_candidates(folder, img.stem, ("",) + PAIR_SUFFIXES)
            if mask is None:
                raise DataError(
                    f"no mask for this image (looked for {folder}/{img.stem}.png and other suffixes)", img
                )
            video = rel.parent.as_posix() if rel.parent != Path(".") else None
            pairs.append((img, mask, video, rel.as_posix()))
    else:
        files = list_images(src, recursive=True)
        stems = {(p.parent, p.stem) for p in files}
        for img in files:
            if any(
                img.stem.endswith(s) and (img.parent, img.stem[: -len(s)]) in stems for s in PAIR_SUFFIXES
            ):
                continue  # a mask
            mask = _mask_candidates(img.parent, img.stem, PAIR_SUFFIXES)
            if mask is None:
                raise DataError(
                    f"no mask for this image (looked for {img.stem}_seg.png / _mask / _gt / _label)", img
                )
            rel = img.relative_to(src)
            video = rel.parent.as_posix() if rel.parent != Path(".") else None
            pairs.append((img, mask, video, rel.as_posix()))
    if not pairs:
        raise DataError("no image/mask pairs found (expected images/ + masks/ or X.png + X_seg.png)", src)
    return pairs


def detect(src: Path) -> int:
    if not src.is_dir():
        return 0
    if _find_dirs(src):
        return 1
    names = [p.stem for p in src.iterdir() if p.is_file() and is_image(p)]
    return 1 if any(n.endswith(s) for n in names[:2000] for s in PAIR_SUFFIXES) else 0


# ---------------------------------------------------------------------------------------------- reading
def read_mask_values(path: Path) -> np.ndarray:
    """A mask as stored: palette PNGs as their indices, grey as ``H×W``, colour as ``H×W×3`` RGB."""
    hdr = png_header(path)
    if hdr is not None and hdr[2] == 3:  # PNG color type 3: palette
        from PIL import Image

        try:
            with Image.open(path) as im:
                return np.asarray(im)
        except OSError:
            raise DataError("cannot decode mask (corrupt or unsupported format)", path) from None
    m = read_image(path, mode="unchanged")
    if m.ndim == 3 and m.shape[2] == 4:
        m = m[..., :3]
    if m.ndim == 3 and (m[..., 0] == m[..., 1]).all() and (m[..., 1] == m[..., 2]).all():
        m = m[..., 0]  # grey stored as RGB
    return m


def _guess_mode(mask: np.ndarray, path: Path, table: list[dict] | None) -> str:
    if mask.ndim == 3:
        return "color"
    if path.suffix.lower() in LOSSY:
        return "binary"
    if table is not None and len(table) > 1:
        return "index"
    vals = set(np.flatnonzero(value_counts(mask)).tolist())
    if vals <= {0, 255} or vals <= {0, 1}:
        return "binary"
    return "index"


class _Encoder:
    """Turns one mask file into annotations; the mode is fixed by the first mask unless given."""

    def __init__(self, mode: str, table: list[dict] | None, ignore_value: int | None, writer, report):
        if mode not in MODES:
            raise ConfigError(f"mask mode must be one of {MODES}, got {mode!r}")
        self.mode, self.table, self.ignore, self.writer, self.report = (
            mode,
            table,
            ignore_value,
            writer,
            report,
        )
        self.binary_value: int | None = None
        self._declared: set[int] = set()

    def _declare(self) -> None:
        if self.mode == "binary":
            c = (self.table or [{"id": 1, "name": "foreground"}])[0]
            self.writer.add_category(c["id"], c["name"], c.get("color"))
            self.fg_id = c["id"]
        elif self.mode == "color":
            if not self.table or not all("color" in c for c in self.table):
                raise ConfigError(
                    "RGB color-coded masks need a class table with a color per class (classes=FILE)"
                )
            self.colors = {tuple(c["color"]): c["id"] for c in self.table}
            for c in self.table:
                if c["id"] != 0:
                    self.writer.add_category(c["id"], c["name"], c["color"])
            self.colors = {k: v for k, v in self.colors.items() if v != 0}
            self.background = [tuple(c["color"]) for c in self.table if c["id"] == 0] or [(0, 0, 0)]
        elif self.table:
            for c in self.table:
                if c["id"] != 0:
                    self.writer.add_category(c["id"], c["name"], c.get("color"))
                    self._declared.add(c["id"])
        self.writer.info["mask_encoding"] = {"format": NAME, "mode": self.mode}

    def encode(
        self, image_id: int, mask: np.ndarray, path: Path, size: tuple[int, int], rles: dict | None = None
    ) -> None:
        """Annotations of one mask; ``rles`` (``label_map_rles`` of a single-channel mask) saves re-encoding."""
        check_size(mask, size, path)
        if self.mode == "auto":
            self.mode = _guess_mode(mask, path, self.table)
            self._declare()
        if self.mode == "color":
            if mask.ndim != 3:
                mask = np.repeat(mask[..., None], 3, axis=2)
            lab = color_to_label_map(mask, self.colors, path, ignore_colors=self.background)
            self.writer.add_label_map(
                image_id, lab, {v: v for v in self.colors.values()}, ignore=(65535,), path=path
            )
            return
        if mask.ndim == 3:
            raise DataError(
                f"RGB mask in a folder of {self.mode} masks (pass mask_mode=color and classes=FILE)", path
            )
        if self.mode == "binary" and path.suffix.lower() in LOSSY:
            self._jpeg(image_id, mask, path)
            return
        if rles is None:
            rles = label_map_rles(mask if mask.dtype in (np.uint8, np.uint16) else mask.astype(np.int64))
        if self.mode == "binary":
            self._binary(image_id, rles, path)
        else:
            self._index(image_id, rles, path)

    def _jpeg(self, image_id: int, mask: np.ndarray, path: Path) -> None:
        counts = value_counts(mask)
        n_grey = int(counts[1:255].sum())
        if n_grey:
            self.report.warn(JPEG_WARNING, path)
            self.report.count("jpeg_grey_pixels", n_grey)
        if counts[128:].any():
            self.writer.add_label_map(image_id, (mask >= 128).view(np.uint8), {1: self.fg_id}, ignore=(0,))

    def _binary(self, image_id: int, rles: dict[int, dict], path: Path) -> None:
        vals = set(rles)
        extra = vals - {0}
        if len(extra) > 1 or (extra and self.binary_value is not None and extra != {self.binary_value}):
            raise DataError(
                f"mask values {sorted(vals)} are not binary (0/255 or 0/1); pass mask_mode=index for "
                f"class-index masks",
                path,
            )
        if extra and self.binary_value is None:
            self.binary_value = extra.pop()
            self.writer.info["mask_encoding"]["binary_value"] = self.binary_value
        if self.binary_value is not None:
            self.writer.add_value_rles(
                image_id, rles, {self.binary_value: self.fg_id}, ignore=(0,), path=path
            )

    def _index(self, image_id: int, rles: dict[int, dict], path: Path) -> None:
        ignore = {0} | ({self.ignore} if self.ignore is not None else set())
        if self.ignore in rles:
            self.report.count("ignored_pixels", rle_utils.area(rles[self.ignore]))
        if not self.table:
            for v in rles:
                if v not in ignore and v not in self._declared:
                    self.writer.add_category(v, f"class_{v}")
                    self._declared.add(v)
        self.writer.add_value_rles(image_id, rles, {v: v for v in self._declared}, ignore=ignore, path=path)


# ---------------------------------------------------------------------------------------------- import
def to_coco(
    src: str | Path,
    dst: str | Path,
    *,
    mask_mode: str = "auto",
    classes: Any = None,
    ignore_value: int | None = None,
    mapping: Any = None,
    overwrite: bool = False,
) -> ConversionReport:
    """Convert an image + mask folder into a canonical data set at ``dst``."""
    report = ConversionReport(NAME, "to_coco", str(src), str(dst))
    pairs = find_pairs(src)
    table = load_class_table(classes)
    with open_output(dst, report, mapping, overwrite) as w:
        enc = _Encoder(mask_mode, table, ignore_value, w, report)
        if mask_mode != "auto":
            enc._declare()

        def load(pair: tuple) -> tuple[tuple[int, int], np.ndarray, dict | None]:
            mask = read_mask_values(pair[1])
            single = (
                mask.ndim == 2 and mask.dtype in (np.uint8, np.uint16) and pair[1].suffix.lower() not in LOSSY
            )
            return frame_size(pair[0]), mask, label_map_rles(mask) if single else None

        for (img, mask_path, video, rel), ((h, w_), mask, rles) in iter_with_progress(
            prefetch(load, pairs), "mask folder", total=len(pairs)
        ):
            kw: dict[str, Any] = {}
            if video is not None:
                kw["video_id"] = w.add_video(video)
                kw["frame_num"] = last_number(img.stem) if last_number(img.stem) is not None else 0
            file_name = f"images/{rel}"
            iid = w.add_image(file_name, h, w_, **kw)
            enc.encode(iid, mask, mask_path, (h, w_), rles)
            w.place_image(img, file_name)
        if enc.mode == "auto":
            raise DataError("no masks found", src)
        if JPEG_WARNING in report.warnings:  # one line with the total count of rounded pixels
            files = report.warnings.pop(JPEG_WARNING)
            n = report.counts["jpeg_grey_pixels"]
            report.warnings[f"{JPEG_WARNING}: {n} pixels were neither 0 nor 255"] = files
    return report


# ---------------------------------------------------------------------------------------------- export
def from_coco(
    src: str | Path, dst: str | Path, *, mask_mode: str = "auto", mapping: Any = None, overwrite: bool = False
) -> ConversionReport:
    """Write ``images/`` + ``masks/`` (PNG) from a canonical data set; overlapping instances: later wins."""
    report = ConversionReport(NAME, "from_coco", str(src), str(dst))
    ds = apply_mapping(load_coco(src), load_mapping(mapping), report)
    enc_info = (
        ds.info.get("mask_encoding", {}) if ds.info.get("mask_encoding", {}).get("format") == NAME else {}
    )
    mode = (
        mask_mode
        if mask_mode != "auto"
        else enc_info.get("mode") or ("binary" if len(ds.categories) == 1 else "index")
    )
    if mode not in MODES[1:]:
        raise ConfigError(f"mask mode must be one of {MODES[1:]}, got {mode!r}")
    if mode == "index" and ds.categories and max(ds.categories) > 65535:
        raise DataError("category ids above 65535 cannot be written as class-index masks", ds.path)
    if mode == "binary":
        value = int(enc_info.get("binary_value", 255))
        value_of = {cid: value for cid in ds.categories}
    elif mode == "index":
        value_of = {cid: cid for cid in ds.categories}
    else:
        value_of = {cid: i + 1 for i, cid in enumerate(sorted(ds.categories))}
        palette = np.zeros((len(value_of) + 1, 3), dtype=np.uint8)
        for cid, i in value_of.items():
            palette[i] = ds.category_color(cid)
    dtype = np.uint16 if mode == "index" and ds.categories and max(ds.categories) > 255 else np.uint8
    with open_export(dst, overwrite) as root:
        for iid in iter_with_progress(
            sorted(ds.images, key=lambda i: natural_key(ds.images[i]["file_name"])), "mask folder"
        ):
            im = ds.images[iid]
            rel = Path(im["file_name"])
            rel = Path(*rel.parts[1:]) if len(rel.parts) > 1 and rel.parts[0] in IMAGE_DIRS else rel
            lab = semantic_label_map(ds, iid, value_of, dtype=dtype)
            out = palette[lab] if mode == "color" else lab
            write_png(root / "masks" / rel.with_suffix(".png"), out)
            link_or_copy(ds.image_path(iid), root / "images" / rel)
            report.count("images")
            report.count("masks")
    return report
