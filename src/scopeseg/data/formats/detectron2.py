"""detectron2 semantic-segmentation data set dicts (JSON list) <-> the canonical data set.

Layout (detectron2 docs, "Use Custom Datasets" / standard dataset dicts): a JSON list of
``{"file_name", "sem_seg_file_name", "height", "width", "image_id"}``; ``sem_seg_file_name`` is a
single-channel PNG of class indices 0..K-1 (``stuff_classes`` order) with 255 = ignore. Class index v is
category id v+1 (``sem_seg_value`` keeps v); ignored pixels stay unlabelled and are written back as 255.
Relative paths are resolved against the JSON's folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...errors import DataError
from ...io import read_json, write_json
from ._base import (
    ConversionReport,
    apply_mapping,
    check_size,
    frame_size,
    iter_with_progress,
    link_or_copy,
    load_class_table,
    load_coco,
    load_mapping,
    open_export,
    open_output,
    read_mask,
    semantic_label_map,
    value_counts,
    write_png,
)

NAME = "detectron2-semseg"
ALIASES = ("detectron2",)
DESCRIPTION = "detectron2 semantic-seg dicts: JSON list of file_name + sem_seg_file_name (255 = ignore)"
IGNORE = 255


def _json(src: Path) -> Path:
    if src.is_dir():
        if (src / "dataset.json").is_file():
            return src / "dataset.json"
        cands = sorted(p for p in src.glob("*.json") if p.name != "stuff_classes.json")
        if len(cands) != 1:
            raise DataError("expected one detectron2 JSON list in this folder", src)
        return cands[0]
    return src


def detect(src: Path) -> int:
    try:
        path = _json(src)
        if path.suffix.lower() != ".json" or path.stat().st_size > 500_000_000:
            return 0
        data = read_json(path)
    except (DataError, OSError):
        return 0
    return (
        3
        if isinstance(data, list) and data and isinstance(data[0], dict) and "sem_seg_file_name" in data[0]
        else 0
    )


def _resolve(base: Path, name: str) -> Path:
    p = Path(name)
    return p if p.is_absolute() else base / p


def to_coco(
    src: str | Path, dst: str | Path, *, classes: Any = None, mapping: Any = None, overwrite: bool = False
) -> ConversionReport:
    """Convert a detectron2 sem-seg JSON list (``classes``: stuff_classes names / table) into COCO."""
    report = ConversionReport(NAME, "to_coco", str(src), str(dst))
    path = _json(Path(src))
    records = read_json(path)
    if not isinstance(records, list) or not records:
        raise DataError("expected a non-empty JSON list of {file_name, sem_seg_file_name}", path)
    if classes is None and (path.parent / "stuff_classes.json").is_file():
        classes = path.parent / "stuff_classes.json"
    table = classes
    if isinstance(classes, (str, Path)):
        table = read_json(classes)
    if isinstance(table, list) and table and all(isinstance(n, str) for n in table):
        table = [{"id": i + 1, "name": n} for i, n in enumerate(table) if n]  # stuff_classes list
    table = load_class_table(table)
    base = path.parent
    with open_output(dst, report, mapping, overwrite) as w:
        declared: set[int] = set()
        if table:
            for c in table:
                w.add_category(c["id"], c["name"], c.get("color"), sem_seg_value=c["id"] - 1)
                declared.add(c["id"])
        for i, rec in enumerate(iter_with_progress(records, "detectron2")):
            if not isinstance(rec, dict) or "file_name" not in rec or "sem_seg_file_name" not in rec:
                raise DataError(f"record {i} lacks file_name / sem_seg_file_name", path)
            img = _resolve(base, rec["file_name"])
            seg_path = _resolve(base, rec["sem_seg_file_name"])
            size = frame_size(img)
            if "height" in rec and (int(rec["height"]), int(rec.get("width", size[1]))) != size:
                raise DataError(
                    f"record {i}: height/width {rec['height']}x{rec.get('width')} differ from the "
                    f"image's {size[0]}x{size[1]}",
                    img,
                )
            lab = read_mask(seg_path)
            if lab.ndim != 2:
                raise DataError("sem_seg file must be single-channel class indices", seg_path)
            check_size(lab, size, seg_path)
            counts = value_counts(lab)
            report.count("ignored_pixels", int(counts[IGNORE]) if len(counts) > IGNORE else 0)
            for v in np.flatnonzero(counts):
                if int(v) != IGNORE and int(v) + 1 not in declared:
                    if table:
                        raise DataError(
                            f"class index {int(v)} ({int(counts[v])} pixels) is not in the class table "
                            f"({len(table)} classes)",
                            seg_path,
                        )
                    w.add_category(int(v) + 1, f"class_{int(v)}", sem_seg_value=int(v))
                    declared.add(int(v) + 1)
            rel = f"images/{img.name}"
            extra = {"source_id": rec["image_id"]} if "image_id" in rec else {}
            iid = w.add_image(rel, size[0], size[1], **extra)
            lab_ids = lab.astype(np.uint16) + 1
            w.add_label_map(iid, lab_ids, {c: c for c in declared}, ignore=(IGNORE + 1,), path=seg_path)
            w.place_image(img, rel)
    return report


def from_coco(
    src: str | Path, dst: str | Path, *, mapping: Any = None, overwrite: bool = False
) -> ConversionReport:
    """Write ``images/``, ``sem_seg/`` PNGs (index = sem_seg_value or id-1, 255 = unlabelled) and ``dataset.json``."""
    report = ConversionReport(NAME, "from_coco", str(src), str(dst))
    ds = apply_mapping(load_coco(src), load_mapping(mapping), report)
    value_of = {cid: int(c.get("sem_seg_value", cid - 1)) for cid, c in ds.categories.items()}
    bad = {c: v for c, v in value_of.items() if not 0 <= v < IGNORE}
    if bad:
        raise DataError(f"categories {sorted(bad)} cannot be class indices 0..254", ds.path)
    records = []
    with open_export(dst, overwrite) as root:
        for iid in iter_with_progress(list(ds.images), "detectron2"):
            im = ds.images[iid]
            name = Path(im["file_name"]).name
            link_or_copy(ds.image_path(iid), root / "images" / name)
            lab = semantic_label_map(ds, iid, value_of, fill=IGNORE)
            write_png(root / "sem_seg" / f"{Path(name).stem}.png", lab)
            records.append(
                {
                    "file_name": f"images/{name}",
                    "sem_seg_file_name": f"sem_seg/{Path(name).stem}.png",
                    "height": int(im["height"]),
                    "width": int(im["width"]),
                    "image_id": im.get("source_id", iid),
                }
            )
            report.count("images")
        write_json(root / "dataset.json", records, indent=1)
        names = [""] * (max(value_of.values(), default=-1) + 1)
        for cid, v in value_of.items():
            names[v] = ds.categories[cid]["name"]
        write_json(root / "stuff_classes.json", names)
    return report
