"""EndoVis 2018 Robotic Scene Segmentation: RGB color-coded class PNGs per frame, one folder per sequence.

Layout (challenge download page; mmsegmentation ``projects/medical/.../EndoVis2018RSS``; DKFZ MML's
``endovis18_rob_instr`` creator)::

    seq_N/left_frames/frame000.png
    seq_N/labels/frame000.png          RGB, one color per class (labels.json: name, color, classid)

Class ids and colors are the published ``labels.json`` table (read from the data when present). Class 0
(background-tissue) is the unlabelled rest of the frame: no annotation, kept in ``info["background"]``.
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
    prefetch,
    read_mask,
    require_dir,
    semantic_label_map,
    write_png,
)

NAME = "endovis2018"
ALIASES = ("endovis18",)
DESCRIPTION = (
    "EndoVis 2018 scene segmentation: seq_N/{left_frames,labels} RGB class PNGs (labels.json colors)"
)
#: the published labels.json of the challenge (name, color, classid)
LABELS = [
    {"name": "background-tissue", "color": [0, 0, 0], "classid": 0},
    {"name": "instrument-shaft", "color": [0, 255, 0], "classid": 1},
    {"name": "instrument-clasper", "color": [0, 255, 255], "classid": 2},
    {"name": "instrument-wrist", "color": [125, 255, 12], "classid": 3},
    {"name": "kidney-parenchyma", "color": [255, 55, 0], "classid": 4},
    {"name": "covered-kidney", "color": [24, 55, 125], "classid": 5},
    {"name": "thread", "color": [187, 155, 25], "classid": 6},
    {"name": "clamps", "color": [0, 255, 125], "classid": 7},
    {"name": "suturing-needle", "color": [255, 255, 125], "classid": 8},
    {"name": "suction-instrument", "color": [123, 15, 175], "classid": 9},
    {"name": "small-intestine", "color": [124, 155, 5], "classid": 10},
    {"name": "ultrasound-probe", "color": [12, 255, 141], "classid": 11},
]


def _sequences(src: Path) -> list[Path]:
    if (src / "left_frames").is_dir() and (src / "labels").is_dir():
        return [src]
    seqs = sorted(
        (
            p
            for p in src.rglob("*")
            if p.is_dir() and (p / "left_frames").is_dir() and (p / "labels").is_dir()
        ),
        key=lambda p: natural_key(str(p)),
    )
    if not seqs:
        raise DataError("no EndoVis 2018 sequences (folders with left_frames/ and labels/)", src)
    return seqs


def detect(src: Path) -> int:
    if not src.is_dir():
        return 0
    for seq in [src, *[p for p in src.iterdir() if p.is_dir()][:50]]:
        if (seq / "left_frames").is_dir() and (seq / "labels").is_dir():
            return 3
    return 0


def _table(src: Path, seqs: list[Path], classes: Any) -> list[dict]:
    if classes is not None:
        return load_class_table(classes)
    for folder in [src, *seqs]:
        p = folder / "labels.json"
        if p.is_file():
            return load_class_table(read_json(p)) or []
    return load_class_table(LABELS) or []


def to_coco(
    src: str | Path, dst: str | Path, *, classes: Any = None, mapping: Any = None, overwrite: bool = False
) -> ConversionReport:
    """Convert EndoVis 2018 sequences (one video each) into a canonical data set."""
    report = ConversionReport(NAME, "to_coco", str(src), str(dst))
    src = require_dir(src, "EndoVis 2018 folder")
    seqs = _sequences(src)
    table = _table(src, seqs, classes)
    if not all("color" in c for c in table):
        raise DataError("EndoVis 2018 class table needs a color for every class", src)
    colors = {tuple(c["color"]): c["id"] for c in table if c["id"] != 0}
    background = [tuple(c["color"]) for c in table if c["id"] == 0]
    jobs = []
    for seq in seqs:
        frames = list_images(seq / "left_frames")
        if not frames:
            raise DataError("no frames in left_frames/", seq / "left_frames")
        jobs += [(seq, f) for f in frames]
    with open_output(dst, report, mapping, overwrite) as w:
        for c in table:
            if c["id"] != 0:
                w.add_category(c["id"], c["name"], c["color"])
        bg = next((c for c in table if c["id"] == 0), None)
        if bg:
            w.info["background"] = {"id": 0, "name": bg["name"], "color": bg["color"]}
        rel_seq = {seq: (seq.relative_to(src).as_posix() if seq != src else seq.name) for seq in seqs}

        def load(job: tuple[Path, Path]) -> tuple[Path, tuple[int, int], np.ndarray]:
            seq, frame = job
            mpath = seq / "labels" / f"{frame.stem}.png"
            if not mpath.is_file():
                raise DataError(f"no label for frame {frame.name} (expected labels/{mpath.name})", frame)
            size = frame_size(frame)
            rgb = read_mask(mpath)
            check_size(rgb, size, mpath, "frame")
            return (
                mpath,
                size,
                label_map_rles(color_to_label_map(rgb, colors, mpath, ignore_colors=background)),
            )

        for (seq, frame), (mpath, size, rles) in iter_with_progress(
            prefetch(load, jobs), "EndoVis 2018", len(jobs)
        ):
            vid = w.add_video(rel_seq[seq])
            rel = f"{rel_seq[seq]}/left_frames/{frame.name}"
            iid = w.add_image(rel, size[0], size[1], video_id=vid, frame_num=last_number(frame.stem) or 0)
            w.add_value_rles(iid, rles, {v: v for v in colors.values()}, ignore=(65535,), path=mpath)
            w.place_image(frame, rel)
    return report


def from_coco(
    src: str | Path, dst: str | Path, *, mapping: Any = None, overwrite: bool = False
) -> ConversionReport:
    """Write seq folders with left_frames/, color labels/ and labels.json from a canonical data set."""
    report = ConversionReport(NAME, "from_coco", str(src), str(dst))
    ds = apply_mapping(load_coco(src), load_mapping(mapping), report)
    bg = ds.info.get("background") or {"id": 0, "name": "background-tissue", "color": [0, 0, 0]}
    order = sorted(ds.categories)
    value_of = {cid: i + 1 for i, cid in enumerate(order)}
    palette = np.zeros((len(order) + 1, 3), np.uint8)
    palette[0] = bg.get("color", [0, 0, 0])
    for cid in order:
        palette[value_of[cid]] = ds.category_color(cid)
    table = [
        {"name": bg.get("name", "background-tissue"), "color": [int(v) for v in palette[0]], "classid": 0}
    ]
    table += [
        {"name": ds.categories[c]["name"], "color": [int(v) for v in palette[value_of[c]]], "classid": c}
        for c in order
    ]
    with open_export(dst, overwrite) as root:
        write_json(root / "labels.json", table, indent=1)
        for iid in iter_with_progress(list(ds.images), "EndoVis 2018"):
            im = ds.images[iid]
            seq = ds.videos.get(im.get("video_id"), {}).get("name", "seq_1")
            name = Path(im["file_name"]).name
            link_or_copy(ds.image_path(iid), root / seq / "left_frames" / name)
            lab = semantic_label_map(ds, iid, value_of)
            write_png(root / seq / "labels" / f"{Path(name).stem}.png", palette[lab])
            report.count("images")
    return report
