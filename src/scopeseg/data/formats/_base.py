"""Shared machinery of the format converters: a streaming COCO writer, a report, label-map encoding.

Every converter writes into a hidden temp sibling of its output (``io.output_dir``) through ``CocoWriter``, which encodes each mask
to RLE as soon as it is added and appends it to a line file, so memory stays bounded by one frame's masks
plus the (small) image table; a failure anywhere leaves nothing at the destination.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import struct
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import DataError
from ...io import _json_default as json_default
from ...io import check_output, image_size, is_image, output_dir, read_image, read_json, write_image
from ...io import link_or_copy as io_link_or_copy
from ...progress import track
from .. import rle as rle_utils
from ..coco import CocoDataset
from ..records import ANNOTATION_FILE
from ._labels import (  # noqa: F401 - re-exported for the format modules
    color_to_label_map,
    label_map_rles,
    semantic_label_map,
    value_counts,
)

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------- report
@dataclass
class ConversionReport:
    """What a conversion did: counts, every warning (grouped by message, with the files it concerns)."""

    format: str = ""
    direction: str = "to_coco"
    src: str = ""
    dst: str = ""
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    warnings: dict[str, list[str]] = field(default_factory=dict)

    def warn(self, message: str, path: str | Path | None = None) -> None:
        """Record a warning; the same message for many files is kept once with the list of files."""
        files = self.warnings.setdefault(message, [])
        if path is not None:
            files.append(str(path))
        log.debug("%s: %s", path, message)

    def count(self, key: str, n: int = 1) -> None:
        self.counts[key] += n

    def n_warnings(self) -> int:
        return sum(max(1, len(f)) for f in self.warnings.values())

    def lines(self, max_files: int = 3) -> list[str]:
        """Human summary: one line of counts, then one line per distinct warning."""
        arrow = f"{self.format} -> coco" if self.direction == "to_coco" else f"coco -> {self.format}"
        parts = [f"{k}={v}" for k, v in sorted(self.counts.items()) if v]
        out = [f"converted {arrow}: {self.src} -> {self.dst}", "  " + (", ".join(parts) or "nothing")]
        for msg, files in self.warnings.items():
            where = ""
            if files:
                shown = ", ".join(files[:max_files])
                more = f" (+{len(files) - max_files} more)" if len(files) > max_files else ""
                where = f" [{len(files)} file(s): {shown}{more}]"
            out.append(f"  warning: {msg}{where}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "direction": self.direction,
            "src": self.src,
            "dst": self.dst,
            "counts": dict(self.counts),
            "warnings": {m: list(f) for m, f in self.warnings.items()},
        }


# ---------------------------------------------------------------------------------------------- mapping
def load_mapping(mapping: str | Path | dict | None) -> dict[str, str | None] | None:
    """A class mapping: JSON object ``{"source name": "new name" | null}`` (null drops the class)."""
    if mapping is None or isinstance(mapping, dict):
        return mapping
    data = read_json(mapping)
    if not isinstance(data, dict) or not all(isinstance(v, (str, type(None))) for v in data.values()):
        raise DataError('mapping must be a JSON object {"source class name": "new name" or null}', mapping)
    return data


def apply_mapping(
    ds: CocoDataset, mapping: dict[str, str | None] | None, report: ConversionReport
) -> CocoDataset:
    """Rename / merge / drop categories of a loaded data set by name (first id of a merged name is kept)."""
    if not mapping:
        return ds
    names = {c.get("name") for c in ds.categories.values()}
    for missing in sorted(set(mapping) - names):
        report.warn(f"mapping names class {missing!r}, which the data set does not have")
    new_cats: dict[int, dict] = {}
    by_name: dict[str, int] = {}
    remap: dict[int, int | None] = {}
    for cid, c in ds.categories.items():
        target = mapping.get(c.get("name"), c.get("name"))
        if target is None:
            remap[cid] = None
            continue
        if target in by_name:
            remap[cid] = by_name[target]
            continue
        new_cats[cid] = {**c, "name": target}
        by_name[target] = cid
        remap[cid] = cid
    anns = {}
    for aid, a in ds.annotations.items():
        new = remap.get(a.get("category_id"), a.get("category_id"))
        if new is None:
            report.count("dropped_annotations")
            continue
        anns[aid] = {**a, "category_id": new}
    ds.categories, ds.annotations = new_cats, anns
    ds.reindex()
    return ds


# ---------------------------------------------------------------------------------------------- writer
class CocoWriter:
    """Build a canonical data set folder (``annotations.json`` + images) frame by frame.

    Categories go through the class mapping as they are declared; annotations are RLE-encoded on arrival and
    streamed to disk. ``frame_index`` is filled at the end by ranking ``frame_num`` within each video.
    """

    def __init__(
        self,
        root: Path,
        report: ConversionReport,
        mapping: dict[str, str | None] | None = None,
        link_images: bool = True,
    ):
        self.root = Path(root)
        self.report = report
        self.mapping = mapping or {}
        self.link_images = link_images
        self.info: dict[str, Any] = {}
        self.extra: dict[str, Any] = {}
        self.categories: dict[int, dict] = {}
        self.videos: dict[int, dict] = {}
        self.images: dict[int, dict] = {}
        self._video_by_name: dict[str, int] = {}
        self._cat_remap: dict[int, int | None] = {}
        self._cat_by_name: dict[str, int] = {}
        self._used_mapping: set[str] = set()
        self._next_ann = 1
        self._ann_ids: set = set()
        self._next_image = 1
        self._ann_file = open(self.root / ".annotations.jsonl", "w", encoding="utf-8")  # noqa: SIM115

    # --------------------------------------------------------------- tables
    def add_category(self, id: int, name: str, color: Sequence[int] | None = None, **kw: Any) -> int | None:
        """Declare a source category; returns the id it has in the output (None when the mapping drops it)."""
        if name in self.mapping:
            self._used_mapping.add(name)
            target = self.mapping[name]
        else:
            target = name
        if target is None:
            self._cat_remap[id] = None
            return None
        if target in self._cat_by_name:
            self._cat_remap[id] = self._cat_by_name[target]
            return self._cat_remap[id]
        new_id = id if id not in self.categories else max(self.categories) + 1
        rec: dict[str, Any] = {"id": new_id, "name": target, **kw}
        if color is not None:
            rec["color"] = [int(c) for c in color]
        self.categories[new_id] = rec
        self._cat_by_name[target] = new_id
        self._cat_remap[id] = new_id
        return new_id

    def add_video(self, name: str, **kw: Any) -> int:
        """Id of the video called ``name`` (created on first use)."""
        if name not in self._video_by_name:
            vid = len(self.videos) + 1
            self.videos[vid] = {"id": vid, "name": name, **kw}
            self._video_by_name[name] = vid
            self.report.count("videos")
        return self._video_by_name[name]

    def add_image(self, file_name: str, height: int, width: int, **kw: Any) -> int:
        iid = kw.pop("id", None)
        if iid is None:
            iid = self._next_image
        self._next_image = max(self._next_image, int(iid) + 1)
        if iid in self.images:
            raise DataError(f"duplicate image id {iid}", file_name)
        self.images[iid] = {
            "id": iid,
            "file_name": file_name,
            "height": int(height),
            "width": int(width),
            **kw,
        }
        self.report.count("images")
        return iid

    # --------------------------------------------------------------- annotations
    def add_annotation(
        self, image_id: int, category_id: int, mask: np.ndarray | dict, **kw: Any
    ) -> int | None:
        """Encode and stream one instance (bool mask, or RLE); None when its class is dropped by the mapping."""
        if category_id not in self._cat_remap:
            raise DataError(
                f"image {self.images[image_id]['file_name']}: category {category_id} was never declared"
            )
        cid = self._cat_remap[category_id]
        if cid is None:
            self.report.count("dropped_annotations")
            return None
        rle = mask if isinstance(mask, dict) else rle_utils.encode(mask)
        if not isinstance(rle.get("counts"), str):
            rle = rle_utils.compress(rle)
        return self._write_ann(image_id, cid, rle, kw)

    def _write_ann(self, image_id: int, cid: int, rle: dict, extra: dict) -> int:
        aid = extra.pop("id", None)
        if aid is None:
            aid = self._next_ann
        if aid in self._ann_ids:
            raise DataError(f"duplicate annotation id {aid} (image {self.images[image_id]['file_name']})")
        self._ann_ids.add(aid)
        if isinstance(aid, int):
            self._next_ann = max(self._next_ann, aid + 1)
        rec = {
            "id": aid,
            "image_id": image_id,
            "category_id": cid,
            "segmentation": rle,
            "area": rle_utils.area(rle),
            "bbox": rle_utils.bbox(rle),
            "iscrowd": 0,
            **extra,
        }
        self._ann_file.write(json.dumps(rec, separators=(",", ":"), default=json_default) + "\n")
        self.report.count("annotations")
        return aid

    def add_label_map(
        self,
        image_id: int,
        label_map: np.ndarray,
        value_to_cat: dict[int, int],
        ignore: Iterable[int] = (),
        path: str | Path | None = None,
        **kw: Any,
    ) -> None:
        """One annotation per class value present in a label map (values in ``ignore`` stay unlabelled).

        All classes are encoded from one pass over the map's column-major runs (no per-class mask).
        Unknown values raise ``DataError`` naming the file, the value and its pixel count.
        """
        self.add_value_rles(image_id, label_map_rles(label_map), value_to_cat, ignore, path, **kw)

    def add_value_rles(
        self,
        image_id: int,
        rles: dict[int, dict],
        value_to_cat: dict[int, int],
        ignore: Iterable[int] = (),
        path: str | Path | None = None,
        **kw: Any,
    ) -> None:
        """``add_label_map`` for RLEs already split by value (``label_map_rles``, e.g. made in a worker)."""
        ignore = set(ignore)
        unknown = [v for v in rles if v not in ignore and v not in value_to_cat]
        if unknown:
            v = unknown[0]
            raise DataError(
                f"unknown class value {v} ({rle_utils.area(rles[v])} pixels); known values: {sorted(value_to_cat)}",
                path,
            )
        for v, rle in rles.items():
            if v not in ignore:
                self.add_annotation(image_id, value_to_cat[v], rle, **kw)

    # --------------------------------------------------------------- images
    def place_image(self, src: str | Path, rel: str) -> Path:
        """Put a source image file at ``rel`` under the output root (hard link when possible, else copy)."""
        return link_or_copy(src, self.root / rel, self.link_images)

    def save_image(self, img: np.ndarray, rel: str) -> Path:
        return write_image(self.root / rel, img)

    # --------------------------------------------------------------- finish
    def close(self) -> None:
        """Rank frames, write ``annotations.json`` (annotations streamed from the line file)."""
        for name in sorted(set(self.mapping) - self._used_mapping):
            self.report.warn(f"mapping names class {name!r}, which the source does not have")
        self._ann_file.close()
        _rank_frames(self.images)
        self.report.count("categories", len(self.categories))
        ann_path = self.root / ".annotations.jsonl"
        head: dict[str, Any] = {}
        if self.info:
            head["info"] = self.info
        head.update(self.extra)
        if self.videos:
            head["videos"] = list(self.videos.values())
        head["images"] = list(self.images.values())
        with open(self.root / ANNOTATION_FILE, "w", encoding="utf-8") as out:
            out.write(json.dumps(head, separators=(",", ":"), default=json_default)[:-1])
            out.write(',"annotations":[')
            with open(ann_path, encoding="utf-8") as lines:
                for i, line in enumerate(lines):
                    if i:
                        out.write(",")
                    out.write(line.rstrip("\n"))
            out.write('],"categories":')
            cats = [self.categories[k] for k in sorted(self.categories)]
            out.write(json.dumps(cats, separators=(",", ":"), default=json_default))
            out.write("}")
        ann_path.unlink()

    def abort(self) -> None:
        if not self._ann_file.closed:
            self._ann_file.close()


def link_or_copy(src: str | Path, dst: str | Path, link: bool = True) -> Path:
    """Hard-link ``src`` to ``dst`` (same file system), else copy it; missing source -> ``DataError``."""
    if not Path(src).is_file():
        raise DataError("image not found", src)
    return io_link_or_copy(src, dst, link)


def write_png(path: str | Path, arr: np.ndarray) -> Path:
    """Write a mask/label map/image losslessly (PNG; 16-bit when the array is uint16)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_image(path, arr)


def _rank_frames(images: dict[int, dict]) -> None:
    by_video: dict[Any, list[tuple[Any, str, int]]] = defaultdict(list)
    for iid, im in images.items():
        if im.get("video_id") is not None and "frame_index" not in im:
            by_video[im["video_id"]].append((im.get("frame_num", 0), im["file_name"], iid))
    for items in by_video.values():
        for rank, (_n, _f, iid) in enumerate(sorted(items)):
            images[iid]["frame_index"] = rank


@contextlib.contextmanager
def open_output(
    dst: str | Path,
    report: ConversionReport,
    mapping: Any = None,
    overwrite: bool = False,
    link_images: bool = True,
) -> Iterator[CocoWriter]:
    """Yield a ``CocoWriter`` over a temp folder that replaces ``dst`` only when the block succeeds."""
    mapping = load_mapping(mapping)
    with output_dir(dst, overwrite) as root:
        writer = CocoWriter(Path(root), report, mapping, link_images)
        try:
            yield writer
            writer.close()
        finally:
            writer.abort()


def check_destination(dst: str | Path, overwrite: bool) -> None:
    """Refuse to replace an existing non-empty output unless ``overwrite`` (the rule of ``io.check_output``)."""
    check_output(dst, overwrite)


# ---------------------------------------------------------------------------------------------- helpers
def natural_key(s: str) -> list:
    """Sort key that orders ``frame2`` before ``frame10``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def last_number(s: str) -> int | None:
    """The last integer in a name (``frame_0042`` -> 42), or None."""
    nums = re.findall(r"\d+", s)
    return int(nums[-1]) if nums else None


def list_images(folder: Path, recursive: bool = False) -> list[Path]:
    it = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(
        (p for p in it if p.is_file() and is_image(p) and not p.name.startswith(".")),
        key=lambda p: natural_key(str(p.relative_to(folder))),
    )


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_header(path: str | Path) -> tuple[int, int, int] | None:
    """(height, width, color type) from a PNG's IHDR chunk (26 bytes read); None for other files."""
    try:
        with open(path, "rb") as f:
            head = f.read(26)
    except OSError:
        return None
    if len(head) < 26 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return int(height), int(width), head[25]


def frame_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of an image file: PNG sizes straight from IHDR, other formats via ``io.image_size``."""
    hdr = png_header(path)
    return hdr[:2] if hdr else image_size(path)


def read_mask(path: str | Path) -> np.ndarray:
    """A mask file as stored (single channel, or RGB); ``DataError`` naming the file when unreadable."""
    return read_image(path, mode="unchanged")


def check_size(mask: np.ndarray, size: tuple[int, int], path: str | Path, what: str = "image") -> None:
    if tuple(mask.shape[:2]) != tuple(size):
        raise DataError(
            f"mask size {mask.shape[0]}x{mask.shape[1]} differs from its {what}'s "
            f"{size[0]}x{size[1]} (height x width)",
            path,
        )


def iter_with_progress(items: Iterable, description: str, total: int | None = None) -> Iterator:
    yield from track(items, description=description, total=len(items) if total is None else total)  # type: ignore[arg-type]


def prefetch(fn: Any, items: Sequence, workers: int = 2, depth: int = 4) -> Iterator[tuple[Any, Any]]:
    """Yield ``(item, fn(item))`` in order while up to ``depth`` later items are decoded in threads.

    Image decoding (OpenCV/PIL/zlib) releases the GIL, so reading the next masks overlaps encoding the
    current one; memory stays bounded by ``depth`` frames. An error surfaces when its item is reached.
    """
    if workers <= 1:
        for item in items:
            yield item, fn(item)
        return
    pool = ThreadPoolExecutor(max_workers=workers)
    pending: deque = deque()
    try:
        it = iter(items)
        for item in it:
            pending.append((item, pool.submit(fn, item)))
            if len(pending) >= depth:
                break
        while pending:
            item, fut = pending.popleft()
            nxt = next(it, _END)
            if nxt is not _END:
                pending.append((nxt, pool.submit(fn, nxt)))
            yield item, fut.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


_END = object()


def require_dir(src: str | Path, what: str) -> Path:
    src = Path(src)
    if not src.exists():
        raise DataError(f"{what} not found", src)
    if not src.is_dir():
        raise DataError(f"{what} must be a folder", src)
    return src


def load_coco(src: str | Path) -> CocoDataset:
    """The canonical data set to export (folder or JSON)."""
    return CocoDataset.load(src)


def open_export(dst: str | Path, overwrite: bool = False):
    """Atomic output folder for a ``from_coco`` export (checked like ``open_output``)."""
    return output_dir(dst, overwrite)


def load_class_table(spec: str | Path | list | dict | None) -> list[dict] | None:
    """A class table: ``[{"id", "name", "color"?}]`` (``classid`` accepted as id, EndoVis 2018 labels.json),
    ``{"name": [r, g, b]}`` (ids 1..K in order), ``{"name": id}``, or a COCO file's ``categories``."""
    if spec is None:
        return None
    src = spec
    if isinstance(spec, (str, Path)):
        spec = read_json(spec)
    if isinstance(spec, dict) and isinstance(spec.get("categories"), list):
        spec = spec["categories"]
    table: list[dict] = []
    try:
        if isinstance(spec, dict):
            for i, (name, v) in enumerate(spec.items()):
                if isinstance(v, int):
                    table.append({"id": v, "name": str(name)})
                else:
                    table.append({"id": i + 1, "name": str(name), "color": [int(c) for c in v][:3]})
        elif isinstance(spec, list):
            for i, c in enumerate(spec):
                cid = c.get("id", c.get("classid", i + 1))
                rec = {"id": int(cid), "name": str(c.get("name", f"class_{cid}"))}
                if c.get("color") is not None:
                    rec["color"] = [int(v) for v in c["color"]][:3]
                table.append(rec)
        else:
            raise TypeError
    except (TypeError, ValueError, AttributeError):
        raise DataError(
            'class table must be [{"id", "name", "color"}], {"name": [r,g,b]} or {"name": id}',
            src if isinstance(src, (str, Path)) else None,
        ) from None
    ids = [c["id"] for c in table]
    if len(set(ids)) != len(ids):
        raise DataError(f"class table has duplicate ids {ids}", src if isinstance(src, (str, Path)) else None)
    return table
