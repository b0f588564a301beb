"""MedSAM ``.npz`` files: ``imgs``, ``gts`` (label map), ``boxes``, ``spacing``; predictions as ``segs``.

Layout (CVPR 2024 "Segment Anything in Medical Images on Laptop" challenge data and MedSAM-Lite code):
2D files hold ``imgs`` H×W×3 uint8, ``gts`` H×W (label values = objects), ``boxes`` N×4 ``[x0, y0, x1, y1]``;
3D files hold ``imgs`` D×H×W, ``gts`` D×H×W, ``boxes`` N×6 ``[x0, y0, z0, x1, y1, z1]``, ``spacing`` (3,).
A 2D file becomes one image; a 3D file one video of D slices (``frame_index`` = z). Label value k is
category k (``label_k``). ``boxes``/``spacing``/dtypes are kept so export restores the file exactly.
Arrays are read with ``allow_pickle=False``.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConfigError, DataError
from ...io import atomic_path, read_image
from ._base import (
    ConversionReport,
    apply_mapping,
    iter_with_progress,
    load_coco,
    load_mapping,
    natural_key,
    open_export,
    open_output,
    semantic_label_map,
    write_png,
)

NAME = "medsam-npz"
ALIASES = ("npz",)
DESCRIPTION = "MedSAM .npz (imgs, gts|segs, boxes, spacing), 2D and 3D"
KEYS = ("gts", "segs")


def _files(src: Path) -> list[Path]:
    if src.is_file():
        return [src]
    if not src.is_dir():
        raise DataError("npz file or folder not found", src)
    files = sorted(src.rglob("*.npz"), key=lambda p: natural_key(str(p)))
    if not files:
        raise DataError("no .npz files found", src)
    return files


def detect(src: Path) -> int:
    if src.is_file():
        return 2 if src.suffix.lower() == ".npz" else 0
    return 2 if src.is_dir() and next(src.glob("*.npz"), None) is not None else 0


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """All arrays of an npz (no pickles); ``DataError`` naming the file when it is corrupt."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(
            f"cannot read npz ({e.__class__.__name__}: {str(e).splitlines()[0] if str(e) else ''})", path
        ) from None


def _label_key(data: dict, key: str, path: Path) -> str:
    if key == "auto":
        key = "gts" if "gts" in data else "segs"
    if key not in KEYS:
        raise ConfigError(f"npz mask key must be one of {KEYS} or 'auto', got {key!r}")
    if key not in data:
        raise DataError(f"npz has no {key!r} array (arrays: {sorted(data)})", path)
    return key


def to_coco(
    src: str | Path, dst: str | Path, *, key: str = "auto", mapping: Any = None, overwrite: bool = False
) -> ConversionReport:
    """Convert npz files (2D images or 3D volumes) into a canonical data set."""
    report = ConversionReport(NAME, "to_coco", str(src), str(dst))
    files = _files(Path(src))
    with open_output(dst, report, mapping, overwrite) as w:
        declared: set[int] = set()
        for path in iter_with_progress(files, "npz"):
            data = load_npz(path)
            k = _label_key(data, key, path)
            if "imgs" not in data:
                raise DataError(f"npz has no 'imgs' array (arrays: {sorted(data)})", path)
            imgs, labels = data["imgs"], data[k]
            ndim = 3 if imgs.ndim == 3 and labels.ndim == 3 else 2
            if ndim == 2 and imgs.shape[:2] != labels.shape:
                raise DataError(f"{k} shape {labels.shape} differs from imgs shape {imgs.shape[:2]}", path)
            if ndim == 3 and imgs.shape != labels.shape:
                raise DataError(f"{k} shape {labels.shape} differs from imgs shape {imgs.shape}", path)
            if labels.dtype.kind not in "ui" or (labels.size and labels.min() < 0):
                raise DataError(f"{k} must hold non-negative integer labels, got {labels.dtype}", path)
            values = [int(v) for v in np.unique(labels) if v != 0]
            for v in values:
                if v not in declared:
                    w.add_category(v, f"label_{v}")
                    declared.add(v)
            meta = {
                "npz": path.name,
                "key": k,
                "ndim": ndim,
                "label_dtype": str(labels.dtype),
                "img_dtype": str(imgs.dtype),
                "img_ndim": int(imgs.ndim),
                "arrays": sorted(data),
            }
            for extra in ("boxes", "spacing"):
                if extra in data:
                    meta[extra] = data[extra].tolist()
            value_to_cat = {v: v for v in values}
            if ndim == 2:
                rel = f"images/{path.stem}.png"
                w.save_image(imgs, rel)
                iid = w.add_image(rel, labels.shape[0], labels.shape[1], medsam=meta)
                w.add_label_map(iid, labels, value_to_cat, ignore=(0,), path=path)
            else:
                vid = w.add_video(path.stem, medsam=meta)
                for z in range(labels.shape[0]):
                    rel = f"images/{path.stem}/{z:04d}.png"
                    write_png(w.root / rel, imgs[z])
                    iid = w.add_image(rel, labels.shape[1], labels.shape[2], video_id=vid, frame_index=z)
                    w.add_label_map(iid, labels[z], value_to_cat, ignore=(0,), path=path)
    return report


def _boxes(labels: np.ndarray, values: list[int]) -> np.ndarray:
    rows = []
    for v in values:
        idx = np.nonzero(labels == v)
        lo = [int(i.min()) for i in idx]
        hi = [int(i.max()) for i in idx]
        if labels.ndim == 2:
            rows.append([lo[1], lo[0], hi[1], hi[0]])
        else:
            rows.append([lo[2], lo[1], lo[0], hi[2], hi[1], hi[0]])
    return np.asarray(rows, dtype=np.int64).reshape(-1, 4 if labels.ndim == 2 else 6)


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)


def from_coco(
    src: str | Path, dst: str | Path, *, key: str = "gts", mapping: Any = None, overwrite: bool = False
) -> ConversionReport:
    """Write one npz per 2D image / per video (3D) with imgs, ``key`` (gts or segs), boxes and spacing.

    Label value = category id; boxes and spacing come from the import when kept, else boxes are computed
    from the masks and spacing is 1.
    """
    if key not in KEYS:
        raise ConfigError(f"npz mask key must be one of {KEYS}, got {key!r}")
    report = ConversionReport(NAME, "from_coco", str(src), str(dst))
    ds = apply_mapping(load_coco(src), load_mapping(mapping), report)
    if ds.categories and max(ds.categories) > 65535:
        raise DataError("category ids above 65535 cannot be npz label values", ds.path)
    groups: list[tuple[str, list[int], dict]] = []
    in_video = set()
    for vid, frames in ds.iter_videos():
        v = ds.videos[vid]
        meta = v.get("medsam", {})
        if meta.get("ndim", 3) == 3:
            groups.append((Path(meta.get("npz", f"{v['name']}.npz")).stem, frames, meta))
            in_video.update(frames)
    for iid, im in ds.images.items():
        if iid not in in_video:
            meta = im.get("medsam", {})
            groups.append(
                (Path(meta.get("npz", Path(im["file_name"]).stem)).stem, [iid], {"ndim": 2, **meta})
            )
    default_dtype = "uint8" if not ds.categories or max(ds.categories) < 256 else "uint16"
    with open_export(dst, overwrite) as root:
        for stem, iids, meta in iter_with_progress(groups, "npz"):
            ldtype = np.dtype(meta.get("label_dtype", default_dtype))
            labs = [_label_map(ds, i, ldtype) for i in iids]
            if meta.get("ndim") == 2:
                imgs = _grey(ds, iids[0]) if meta.get("img_ndim") == 2 else ds.load_image(iids[0])
                labels = labs[0]
            else:
                imgs = np.stack([_grey(ds, i) for i in iids])
                labels = np.stack(labs)
            if "img_dtype" in meta:
                imgs = imgs.astype(meta["img_dtype"], copy=False)
            values = [int(v) for v in np.unique(labels) if v != 0]
            arrays = {"imgs": imgs, key: labels}
            arrays["boxes"] = np.asarray(meta["boxes"]) if "boxes" in meta else _boxes(labels, values)
            if meta.get("ndim") == 3 or "spacing" in meta:
                arrays["spacing"] = np.asarray(meta.get("spacing", [1.0, 1.0, 1.0]))
            _save_npz(root / f"{stem}.npz", arrays)
            report.count("npz_files")
            report.count("images", len(iids))
    return report


def _label_map(ds, image_id: int, dtype: np.dtype) -> np.ndarray:
    return semantic_label_map(ds, image_id, {c: c for c in ds.categories}, dtype=dtype)


def _grey(ds, image_id: int) -> np.ndarray:
    img = read_image(ds.image_path(image_id), mode="unchanged")
    return img[..., 0] if img.ndim == 3 else img
