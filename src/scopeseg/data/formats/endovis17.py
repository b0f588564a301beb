"""EndoVis 2017 Robotic Instrument Segmentation: per-instrument ground-truth folders per sequence.

Layout (challenge data page, and ``prepare_data.py`` of ternaus/robot-surgery-segmentation)::

    instrument_dataset_N/left_frames/frame000.png
    instrument_dataset_N/ground_truth/<Side_Instrument_Type>_labels/frame000.png   (0, 10 shaft, 20 wrist, 30 claspers)

Label sets: ``binary`` (every non-"Other" instrument), ``parts`` (shaft/wrist/claspers, "Other" skipped as
the challenge does) and ``type`` (7 instrument types, the challenge's type ids). Each instrument folder is
one instance (``instrument`` keeps the folder name). ``crop`` cuts 1920x1080 frames to the challenge's
1280x1024 at (x=320, y=28).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConfigError, DataError
from ...io import read_image
from ._base import (
    ConversionReport,
    apply_mapping,
    check_size,
    frame_size,
    iter_with_progress,
    last_number,
    link_or_copy,
    list_images,
    load_coco,
    load_mapping,
    natural_key,
    open_export,
    open_output,
    read_mask,
    require_dir,
    value_counts,
    write_png,
)

NAME = "endovis2017"
ALIASES = ("endovis17",)
DESCRIPTION = "EndoVis 2017 instrument segmentation: instrument_dataset_N/{left_frames,ground_truth/*_labels}"
#: folder-name key -> (type id, name): the challenge's type_mapping as used by its reference scripts
TYPES = (
    ("Bipolar_Forceps", 1, "Bipolar Forceps"),
    ("Prograsp_Forceps", 2, "Prograsp Forceps"),
    ("Large_Needle_Driver", 3, "Large Needle Driver"),
    ("Vessel_Sealer", 4, "Vessel Sealer"),
    ("Grasping_Retractor", 5, "Grasping Retractor"),
    ("Monopolar_Curved_Scissors", 6, "Monopolar Curved Scissors"),
    ("Other", 7, "Other"),
)
#: part code in the ground truth -> (category id, name)
PARTS = {10: (1, "shaft"), 20: (2, "wrist"), 30: (3, "claspers")}
CROP = (28, 320, 1024, 1280)  # y, x, height, width of the challenge crop from 1080x1920 frames
FULL = (1080, 1920)
LABEL_SETS = ("binary", "parts", "type")


def _instrument_type(folder: Path) -> tuple[int, str]:
    for key, tid, name in TYPES:
        if key.lower() in folder.name.lower():
            return tid, name
    raise DataError(f"unknown instrument type in folder name (known: {[t[0] for t in TYPES]})", folder)


def _sequences(src: Path) -> list[Path]:
    if (src / "left_frames").is_dir():
        return [src]
    seqs = sorted(
        (p for p in src.iterdir() if p.is_dir() and (p / "left_frames").is_dir()),
        key=lambda p: natural_key(p.name),
    )
    if not seqs:
        raise DataError("no EndoVis 2017 sequences (folders with left_frames/ and ground_truth/)", src)
    return seqs


def detect(src: Path) -> int:
    if not src.is_dir():
        return 0
    for seq in [src, *[p for p in src.iterdir() if p.is_dir()][:50]]:
        gt = seq / "ground_truth"
        if (
            (seq / "left_frames").is_dir()
            and gt.is_dir()
            and any(p.name.endswith("_labels") for p in gt.iterdir())
        ):
            return 3
    return 0


def _crop(arr: np.ndarray, path: Path, report: ConversionReport) -> np.ndarray:
    y, x, h, w = CROP
    if arr.shape[:2] == FULL:
        return arr[y : y + h, x : x + w]
    if arr.shape[:2] == (h, w):
        report.warn("frame is already 1280x1024: not cropped", path)
        return arr
    raise DataError(f"cannot crop a {arr.shape[0]}x{arr.shape[1]} frame (crop needs 1080x1920)", path)


def to_coco(
    src: str | Path,
    dst: str | Path,
    *,
    labels: str = "type",
    crop: bool = False,
    mapping: Any = None,
    overwrite: bool = False,
) -> ConversionReport:
    """Convert EndoVis 2017 sequences into a canonical data set (one video per sequence)."""
    if labels not in LABEL_SETS:
        raise ConfigError(f"EndoVis 2017 labels must be one of {LABEL_SETS}, got {labels!r}")
    report = ConversionReport(NAME, "to_coco", str(src), str(dst))
    seqs = _sequences(require_dir(src, "EndoVis 2017 folder"))
    jobs = []
    for seq in seqs:
        frames = list_images(seq / "left_frames")
        if not frames:
            raise DataError("no frames in left_frames/", seq / "left_frames")
        gt = seq / "ground_truth"
        folders = sorted((p for p in gt.iterdir() if p.is_dir()), key=lambda p: p.name) if gt.is_dir() else []
        if not folders:
            raise DataError("no ground_truth/<instrument>_labels folders", gt)
        types = {f: _instrument_type(f) for f in folders}
        jobs += [(seq, frame, folders, types) for frame in frames]
    with open_output(dst, report, mapping, overwrite) as w:
        if labels == "binary":
            w.add_category(1, "instrument")
        elif labels == "parts":
            for code, (cid, name) in PARTS.items():
                w.add_category(cid, name, code=code)
        else:
            for _key, tid, name in TYPES:
                w.add_category(tid, name)
        w.info["endovis2017"] = {"labels": labels, "crop": bool(crop)}
        for seq, frame, folders, types in iter_with_progress(jobs, "EndoVis 2017"):
            vid = w.add_video(seq.name)
            rel = f"{seq.name}/left_frames/{frame.name}"
            if crop:
                img = _crop(read_image(frame), frame, report)
                rel = str(Path(rel).with_suffix(".png"))
                w.save_image(img, rel)
                size = img.shape[:2]
            else:
                size = frame_size(frame)
                w.place_image(frame, rel)
            iid = w.add_image(rel, size[0], size[1], video_id=vid, frame_num=last_number(frame.stem) or 0)
            for folder in folders:
                mpath = _mask_path(folder, frame)
                mask = read_mask(mpath)
                if mask.ndim == 3:
                    mask = mask[..., 0]
                if crop:
                    mask = _crop(mask, mpath, report)
                check_size(mask, size, mpath, "frame")
                _add_instrument(w, iid, mask, folder, types[folder], labels, mpath)
    return report


def _mask_path(folder: Path, frame: Path) -> Path:
    for ext in (frame.suffix, ".png", ".jpg"):
        p = folder / f"{frame.stem}{ext}"
        if p.is_file():
            return p
    raise DataError(f"no mask for frame {frame.name} in this instrument folder", folder)


def _add_instrument(
    w, iid: int, mask: np.ndarray, folder: Path, tid_name: tuple[int, str], labels: str, path: Path
) -> None:
    is_other = tid_name[0] == 7
    if labels == "type":
        if mask.any():
            w.add_annotation(iid, tid_name[0], mask > 0, instrument=folder.name)
        return
    if is_other:
        return  # the challenge excludes "Other" from binary and parts labels
    if labels == "binary":
        if mask.any():
            w.add_annotation(iid, 1, mask > 0, instrument=folder.name)
        return
    counts = value_counts(mask)
    bad = [v for v in np.flatnonzero(counts) if v and int(v) not in PARTS]
    if bad:
        raise DataError(
            f"unknown part value {int(bad[0])} ({int(counts[bad[0]])} pixels); part codes are "
            f"10 shaft, 20 wrist, 30 claspers",
            path,
        )
    for code, (cid, _name) in PARTS.items():
        if counts[code]:
            w.add_annotation(iid, cid, mask == code, instrument=folder.name)


def from_coco(
    src: str | Path, dst: str | Path, *, mapping: Any = None, overwrite: bool = False
) -> ConversionReport:
    """Write EndoVis 2017 layout: frames in left_frames/, one mask per instrument folder and frame.

    Part categories (with ``code``) are written as their codes 10/20/30; any other category as 255 (the
    part codes of binary/type data sets are not known: documented loss).
    """
    report = ConversionReport(NAME, "from_coco", str(src), str(dst))
    ds = apply_mapping(load_coco(src), load_mapping(mapping), report)
    code_of = {cid: int(c.get("code", 255)) for cid, c in ds.categories.items()}
    instruments: dict[Any, set[str]] = {}
    for a in ds.annotations.values():
        vid = ds.images.get(a["image_id"], {}).get("video_id")
        instruments.setdefault(vid, set()).add(a.get("instrument") or "Instrument_labels")
    with open_export(dst, overwrite) as root:
        for iid in iter_with_progress(list(ds.images), "EndoVis 2017"):
            im = ds.images[iid]
            seq = ds.videos.get(im.get("video_id"), {}).get("name", "instrument_dataset_1")
            name = Path(im["file_name"]).name
            link_or_copy(ds.image_path(iid), root / seq / "left_frames" / name)
            h, w = int(im["height"]), int(im["width"])
            per = {k: np.zeros((h, w), np.uint8) for k in sorted(instruments.get(im.get("video_id"), ()))}
            for a in ds.image_anns(iid):
                per[a.get("instrument") or "Instrument_labels"][ds.mask(a)] = code_of.get(
                    a["category_id"], 255
                )
            for folder, m in per.items():
                write_png(root / seq / "ground_truth" / folder / f"{Path(name).stem}.png", m)
                report.count("masks")
            report.count("images")
    return report
