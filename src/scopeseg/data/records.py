"""The canonical record set: COCO JSON with RLE masks, extended for video (tables, indexes, load/save, masks).

Images may carry ``video_id`` (into a top-level ``videos`` table) and ``frame_index`` (0-based order).
On import ``order_in_video`` becomes the index (shifted to start at 0 per video), ``frame_num`` /
``frame_id`` are ranked into an index (sparse frame numbers are normal), and string ``video_name`` /
``video_id`` values are mapped to ids. Polygons and uncompressed RLE become compressed RLE on load, but
masks are never decoded at load time (a 20k-annotation file loads faster than ``pycocotools.COCO``).
Operations over a record set live beside it: ``video`` (frames, clips), ``ops`` (subset, filter, split,
merge, relocate), ``stats`` (summary); ``coco.CocoDataset`` gathers them as methods.
"""

from __future__ import annotations

import bisect
import contextlib
import copy
import gc
import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ..errors import DataError
from ..io import check_inside, max_image_pixels, read_image, read_json, write_json
from ..viz import palette_color
from . import rle as rle_utils

log = logging.getLogger(__name__)

ANNOTATION_FILE = "annotations.json"
FRAME_KEYS_AS_INDEX = ("frame_index", "order_in_video")
FRAME_KEYS_RANKED = ("frame_num", "frame_id")
TABLES = ("videos", "categories", "images", "annotations")
#: a record set of any subclass (loaders and copies return the class they are called on)
R = TypeVar("R", bound="RecordSet")
_KIND = {"videos": "video", "categories": "category", "images": "image", "annotations": "annotation"}


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector around bulk allocation of acyclic records.

    Loading a 20k-annotation file allocates ~10^6 dicts/lists/strs; each allocation burst triggers
    collections that rescan every live object (other loaded data sets included). Reference counting still
    frees everything; the collector is restored (not forced) afterwards.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def resolve_data_path(path: str | Path) -> tuple[Path, Path]:
    """A data set path (JSON file, or folder holding ``annotations.json``) -> (json path, image root)."""
    path = Path(path)
    if path.is_dir():
        path = path / ANNOTATION_FILE
    if not path.exists():
        raise DataError(
            "data set not found (expected a COCO JSON file or a folder with annotations.json)", path
        )
    return path, path.parent


def output_json_path(path: str | Path) -> Path:
    """Where ``save(path)`` writes: ``path`` itself when it ends in ``.json``, else ``path/annotations.json``."""
    path = Path(path)
    return path if path.suffix.lower() == ".json" else path / ANNOTATION_FILE


def is_rle_str(seg: Any) -> bool:
    """True for a compressed RLE with text counts (the canonical segmentation)."""
    return type(seg) is dict and type(seg.get("counts")) is str


def _positive_int(v: Any) -> bool:
    return type(v) is int and v > 0


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_uncompressed(seg: dict) -> None:
    """Refuse an uncompressed RLE whose runs are not non-negative integers summing to height x width."""
    counts, size = seg["counts"], seg["size"]
    if not isinstance(counts, list):
        return
    if not (isinstance(size, list) and len(size) == 2 and all(_positive_int(v) for v in size)):
        raise ValueError(f"size {size!r} is not [height, width]")
    if not all(type(v) is int and v >= 0 for v in counts):
        raise ValueError("counts are not non-negative integers")
    if sum(counts) != size[0] * size[1]:
        raise ValueError(
            f"run lengths sum to {sum(counts)}, size {size[0]}x{size[1]} needs {size[0] * size[1]}"
        )


def _rank_dense(values: list[Any]) -> dict[Any, int]:
    """value -> 0-based rank among the distinct values (ties share a rank so duplicates stay visible)."""
    try:
        distinct = sorted(set(values))
    except TypeError:  # mixed types: order by text
        distinct = sorted(set(values), key=str)
    return {v: i for i, v in enumerate(distinct)}


class RecordSet:
    """In-memory COCO record set with indices by image, category and video.

    ``images`` / ``annotations`` / ``categories`` / ``videos`` are dicts keyed by id, in file order; every
    segmentation is compressed RLE after construction (polygons converted). Masks decode lazily per call.
    Records repeating an id are kept aside in ``duplicates`` (re-emitted by ``to_dict``) and reported in
    ``load_problems`` as ``(code, message, details)`` for ``validate``.
    """

    def __init__(
        self,
        images: Iterable[dict] = (),
        annotations: Iterable[dict] = (),
        categories: Iterable[dict] = (),
        videos: Iterable[dict] = (),
        info: dict | None = None,
        licenses: list | None = None,
        root: str | Path | None = None,
        path: str | Path | None = None,
        extra: dict | None = None,
    ):
        self.root = Path(root) if root is not None else None
        self.path = Path(path) if path is not None else None
        self.info = dict(info or {})
        self.licenses = list(licenses or [])
        self.extra = dict(extra or {})
        #: problems found while indexing (duplicate ids, degenerate polygons ...), kept for ``validate``
        self.load_problems: list[tuple[str, str, dict]] = []
        #: table name -> records whose id repeats an earlier record's id (kept so nothing is lost silently)
        self.duplicates: dict[str, list[dict]] = {}
        #: actions taken by ``validate.fix`` on this copy ({code, image_id, annotation_id, action})
        self.fix_log: list[dict] = []
        self._next_id: dict[str, int] = {}
        self.videos: dict[int, dict] = self._table(videos, "videos")
        self.categories: dict[int, dict] = self._table(categories, "categories")
        self.images: dict[int, dict] = self._table(images, "images")
        self.annotations: dict[int, dict] = self._table(annotations, "annotations")
        self._normalise_video_fields()
        self._normalise_segmentations()
        self._index()

    # ------------------------------------------------------------------ construction
    def _table(self, records: Iterable[dict], name: str) -> dict[Any, dict]:
        recs = records if isinstance(records, list) else list(records)
        try:
            table = {r["id"]: r for r in recs}
            if len(table) == len(recs):
                return table
        except (KeyError, TypeError, IndexError):
            pass
        return self._table_slow(recs, name)

    def _table_slow(self, recs: list, name: str) -> dict[Any, dict]:
        kind = _KIND[name]
        table: dict[Any, dict] = {}
        no_id: list[int] = []
        for i, rec in enumerate(recs):
            if not isinstance(rec, dict):
                raise DataError(f"{name}[{i}] is not an object (got {type(rec).__name__})", self.path)
            rid = rec.get("id")
            if rid is None:
                no_id.append(i)
                continue
            try:
                hash(rid)
            except TypeError:
                raise DataError(f"{name}[{i}] has an unusable id {rid!r}", self.path) from None
            if rid in table:
                same = rec == table[rid]
                self.duplicates.setdefault(name, []).append(rec)
                how = "an exact copy" if same else "a different record"
                self.load_problems.append(
                    (
                        "duplicate_id",
                        f"duplicate {kind} id {rid} ({how})",
                        {"kind": kind, "id": rid, "identical": same, "image_id": rec.get("image_id")},
                    )
                )
                continue
            table[rid] = rec
        for i in no_id:
            new = max((k for k in table if isinstance(k, int)), default=0) + 1
            table[new] = dict(recs[i], id=new)
            self.load_problems.append(
                (
                    "missing_id",
                    f"{name}[{i}] has no id; assigned {new}",
                    {"kind": kind, "id": new, "index": i, "image_id": recs[i].get("image_id")},
                )
            )
        return table

    def _normalise_video_fields(self) -> None:
        images = self.images.values()
        if not self.videos and not any(
            "video_id" in im
            or "video_name" in im
            or "order_in_video" in im
            or "frame_num" in im
            or "frame_id" in im
            for im in images
        ):
            return
        name_to_vid = {v.get("name"): vid for vid, v in self.videos.items()}
        listed = bool(self.videos)  # a file with a videos table: ids outside it are broken references
        ranked: dict[Any, dict[str, list[tuple[Any, Any]]]] = defaultdict(lambda: defaultdict(list))
        for iid, im in self.images.items():
            vid = im.get("video_id")
            if vid is None and im.get("video_name") is not None:
                vid = im["video_name"]
            if isinstance(vid, str):
                if vid not in name_to_vid:
                    new_id = self.new_id("videos")
                    self.videos[new_id] = {"id": new_id, "name": vid}
                    name_to_vid[vid] = new_id
                vid = name_to_vid[vid]
            if vid is not None:
                im["video_id"] = vid
                if vid not in self.videos:
                    if listed:
                        self.load_problems.append(
                            (
                                "unknown_video",
                                f"video id {vid!r} is not in the videos table",
                                {"image_id": iid, "video_id": vid},
                            )
                        )
                    self.videos[vid] = {"id": vid, "name": str(vid)}
            if "frame_index" not in im and vid is not None:
                for key in ("order_in_video", *FRAME_KEYS_RANKED):
                    if im.get(key) is not None:
                        ranked[vid][key].append((im[key], iid))
                        break
        for _vid, by_key in ranked.items():
            for key, items in by_key.items():
                values = [v for v, _ in items]
                for value, iid in items:
                    if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
                        self.load_problems.append(
                            (
                                "frame_index_invalid",
                                f"{key} {value!r} of video {_vid} is not a number",
                                {"image_id": iid, "video_id": _vid},
                            )
                        )
                if key == "order_in_video" and all(isinstance(v, int) for v in values):
                    lo = min(
                        values
                    )  # taken as the index, shifted so each video starts at 0 (gaps stay visible)
                    index = {v: v - lo for v in values}
                else:
                    index = _rank_dense(values)
                for value, iid in items:
                    self.images[iid]["frame_index"] = index[value]

    def _normalise_segmentations(self) -> None:
        """Polygons / uncompressed RLE / bytes counts -> compressed RLE with str counts (no mask decoding)."""
        for aid, a in self.annotations.items():
            seg = a.get("segmentation")
            if is_rle_str(seg):
                continue
            if isinstance(seg, list):
                self._convert_polygons(aid, a, seg)
            elif isinstance(seg, dict) and "counts" in seg and "size" in seg:
                try:
                    _check_uncompressed(seg)
                    a["segmentation"] = rle_utils.compress(seg)
                except Exception as e:  # malformed RLE: leave it for validate to report
                    self.load_problems.append(
                        (
                            "rle_invalid",
                            f"annotation {aid}: cannot read RLE ({e})",
                            {"annotation_id": aid, "image_id": a.get("image_id")},
                        )
                    )

    def _convert_polygons(self, aid: Any, a: dict, seg: list) -> None:
        if seg and all(isinstance(v, (int, float)) for v in seg):
            seg = [seg]  # a single flat ring
        rings = [p for p in seg if isinstance(p, list)]
        odd = [p for p in rings if len(p) % 2]
        bad = [p for p in rings if len(p) < 6 and not len(p) % 2]
        iid = a.get("image_id")
        unreal = [p for p in rings if not all(_finite(v) for v in p)]
        if odd or unreal:
            what = "an odd number of coordinates" if odd else "coordinates that are not finite numbers"
            self.load_problems.append(
                (
                    "polygon_invalid",
                    f"annotation {aid}: cannot rasterise polygon (a ring with {what})",
                    {"annotation_id": aid, "image_id": iid},
                )
            )
            return  # kept as polygons: nothing sound to rasterise
        if bad or len(rings) != len(seg):
            self.load_problems.append(
                (
                    "polygon_too_few_points",
                    f"annotation {aid}: {len(bad) + len(seg) - len(rings)} polygon ring(s) with < 3 points dropped",
                    {"annotation_id": aid, "image_id": iid, "rings": len(bad) + len(seg) - len(rings)},
                )
            )
        im = self.images.get(iid)
        h, w = (im or {}).get("height"), (im or {}).get("width")
        if not (_positive_int(h) and _positive_int(w)) or h * w > max_image_pixels():  # type: ignore[operator]
            return  # unknown image, no size or an absurd one: kept as polygons; validate reports it
        try:
            a["segmentation"] = rle_utils.polygons_to_rle([p for p in rings if len(p) >= 6], h, w)
        except Exception as e:  # non-numeric coordinates
            self.load_problems.append(
                (
                    "polygon_invalid",
                    f"annotation {aid}: cannot rasterise polygon ({e})",
                    {"annotation_id": aid, "image_id": iid},
                )
            )

    def _index(self) -> None:
        self.anns_by_image: dict[int, list[int]] = defaultdict(list)
        self.images_by_category: dict[int, set[int]] = defaultdict(set)
        self.frames_by_video: dict[int, list[int]] = defaultdict(list)
        by_image = self.anns_by_image
        by_cat = self.images_by_category
        for aid, a in self.annotations.items():
            iid = a.get("image_id")
            by_image[iid].append(aid)
            by_cat[a.get("category_id")].add(iid)
        for iid, im in self.images.items():
            vid = im.get("video_id")
            if vid is not None:
                self.frames_by_video[vid].append(iid)
        for iids in self.frames_by_video.values():
            iids.sort(key=self._frame_key)

    def _frame_key(self, iid: Any) -> tuple:
        fi = self.images[iid].get("frame_index")
        return (fi if isinstance(fi, (int, float)) else float("inf"), str(iid))

    def new_id(self, table: str) -> int:
        """A fresh id for ``table`` (amortised O(1); still unique after direct edits of the table)."""
        tab = getattr(self, table)
        nid = self._next_id.get(table, 0)
        if nid <= 0 or nid in tab:
            nid = max((k for k in tab if isinstance(k, int)), default=0) + 1
        self._next_id[table] = nid + 1
        return nid

    def reindex(self) -> None:
        """Rebuild indices after editing the tables directly."""
        self._index()

    @classmethod
    def from_dict(
        cls: type[R], data: dict, root: str | Path | None = None, path: str | Path | None = None
    ) -> R:
        """Build from a parsed COCO dict (the dicts are used in place, not copied)."""
        if not isinstance(data, dict):
            raise DataError("COCO JSON must be an object with images/annotations/categories", path)
        for key in TABLES:
            if key in data and not isinstance(data[key], list):
                raise DataError(f"'{key}' must be a list", path)
        if "images" not in data:
            raise DataError("COCO JSON has no 'images' list", path)
        known = {*TABLES, "info", "licenses"}
        return cls(
            images=data.get("images", []),
            annotations=data.get("annotations", []),
            categories=data.get("categories", []),
            videos=data.get("videos", []),
            info=data.get("info"),
            licenses=data.get("licenses"),
            root=root,
            path=path,
            extra={k: v for k, v in data.items() if k not in known},
        )

    @classmethod
    def load(cls: type[R], path: str | Path, root: str | Path | None = None) -> R:
        """Load a COCO(-video) JSON file or a data folder with ``annotations.json``."""
        json_path, default_root = resolve_data_path(path)
        with _gc_paused():  # parsing allocates ~10 objects per record and creates no cycles
            data = read_json(json_path)
            return cls.from_dict(data, root=root if root is not None else default_root, path=json_path)

    def to_dict(self) -> dict:
        """Plain COCO dict with every segmentation as compressed RLE (records shared, not copied)."""
        anns = [a if is_rle_str(a.get("segmentation")) or "segmentation" not in a else self._rle_record(a)
                for a in self.annotations.values()]  # fmt: skip
        out: dict[str, Any] = {}
        if self.info:
            out["info"] = self.info
        if self.licenses:
            out["licenses"] = self.licenses
        out.update(self.extra)
        dups = self.duplicates
        if self.videos or dups.get("videos"):
            out["videos"] = list(self.videos.values()) + dups.get("videos", [])
        out["images"] = list(self.images.values()) + dups.get("images", [])
        out["annotations"] = anns + dups.get("annotations", [])
        out["categories"] = list(self.categories.values()) + dups.get("categories", [])
        return out

    def _rle_record(self, a: dict) -> dict:
        try:
            return {**a, "segmentation": self.rle(a)}
        except Exception:  # unconvertible (unknown image, malformed RLE): written as given
            return a

    def save(self, path: str | Path, indent: int | None = None) -> Path:
        """Write atomically; a folder path gets ``annotations.json`` inside."""
        return write_json(output_json_path(path), self.to_dict(), indent=indent)

    def copy(self: R) -> R:
        """Deep copy (tables, duplicates and load problems), of the same class."""
        out = type(self).from_dict(copy.deepcopy(self.to_dict()), root=self.root, path=self.path)
        seen = {(c, m) for c, m, _ in out.load_problems}
        out.load_problems += [copy.deepcopy(p) for p in self.load_problems if (p[0], p[1]) not in seen]
        return out

    # ------------------------------------------------------------------ adding records
    def add_category(self, name: str, id: int | None = None, color: Sequence[int] | None = None, **kw) -> int:
        """Add a category (id: next free one); ``color`` is RGB 0-255, stored as a list."""
        cid = id if id is not None else self.new_id("categories")
        rec = {"id": cid, "name": name, **kw}
        if color is not None:
            rec["color"] = [int(c) for c in color]
        self.categories[cid] = rec
        return cid

    def add_video(self, name: str, id: int | None = None, **kw) -> int:
        """Add a row to the ``videos`` table (id: next free one)."""
        vid = id if id is not None else self.new_id("videos")
        self.videos[vid] = {"id": vid, "name": name, **kw}
        return vid

    def add_image(self, file_name: str, height: int, width: int, id: int | None = None, **kw) -> int:
        """Add an image record (``file_name`` relative to the root); video frames are kept in order."""
        iid = id if id is not None else self.new_id("images")
        self.images[iid] = {
            "id": iid,
            "file_name": file_name,
            "height": int(height),
            "width": int(width),
            **kw,
        }
        vid = kw.get("video_id")
        if vid is not None:
            if vid not in self.videos:
                self.videos[vid] = {"id": vid, "name": str(vid)}
            frames = self.frames_by_video[vid]
            bisect.insort(frames, iid, key=self._frame_key)
        return iid

    def add_annotation(
        self, image_id: int, category_id: int, mask: np.ndarray | dict | list, id: int | None = None, **kw
    ) -> int:
        """Add an instance from a bool mask, an RLE or COCO polygons; area and bbox come from the mask."""
        aid = id if id is not None else self.new_id("annotations")
        if isinstance(mask, np.ndarray):
            rle = rle_utils.encode(mask)
        elif isinstance(mask, list):
            im = self.images.get(image_id)
            if im is None:
                raise DataError(
                    f"annotation {aid}: polygons need a known image (image {image_id} unknown)", self.path
                )
            rle = rle_utils.polygons_to_rle(mask, int(im["height"]), int(im["width"]))
        else:
            rle = rle_utils.compress(mask)
        rec = {
            "id": aid, "image_id": image_id, "category_id": category_id, "segmentation": rle,
            "area": rle_utils.area(rle), "bbox": rle_utils.bbox(rle), "iscrowd": 0, **kw,
        }  # fmt: skip
        self.annotations[aid] = rec
        self.anns_by_image[image_id].append(aid)
        self.images_by_category[category_id].add(image_id)
        return aid

    # ------------------------------------------------------------------ masks
    def rle(self, ann: int | dict) -> dict:
        """Compressed RLE of an annotation (polygons rasterised at the image's size)."""
        a = self.annotations[ann] if not isinstance(ann, dict) else ann
        seg = a.get("segmentation")
        if is_rle_str(seg):
            return seg
        if isinstance(seg, list):
            im = self.images.get(a.get("image_id"))
            if im is None or "height" not in im or "width" not in im:
                raise DataError(
                    f"annotation {a.get('id')}: polygon on image {a.get('image_id')} of unknown size",
                    self.path,
                )
            return rle_utils.polygons_to_rle(seg, int(im["height"]), int(im["width"]))
        if isinstance(seg, dict) and "counts" in seg:
            return rle_utils.compress(seg)
        raise DataError(f"annotation {a.get('id')} has no segmentation", self.path)

    def mask(self, ann: int | dict) -> np.ndarray:
        """bool ``HxW`` mask of an annotation (decoded now, not cached)."""
        r = self.rle(ann)
        try:
            return rle_utils.decode(r)
        except (ValueError, TypeError) as e:  # pycocotools refuses malformed counts
            a = self.annotations[ann] if not isinstance(ann, dict) else ann
            raise DataError(f"annotation {a.get('id')}: malformed RLE ({e})", self.path) from None

    def image_anns(self, image_id: int) -> list[dict]:
        """Annotation records of an image, in file order."""
        return [self.annotations[a] for a in self.anns_by_image.get(image_id, [])]

    def _image_hw(self, image_id: int) -> tuple[int, int]:
        im = self.images[image_id]
        try:
            return int(im["height"]), int(im["width"])
        except (KeyError, TypeError, ValueError):
            raise DataError(f"image {image_id} has no valid height/width", self.path) from None

    def _checked_mask(self, a: dict, hw: tuple[int, int]) -> np.ndarray:
        m = self.mask(a)
        if m.shape != hw:
            raise DataError(
                f"image {a.get('image_id')} annotation {a.get('id')}: RLE size {list(m.shape)} != image size {list(hw)}",
                self.path,
            )
        return m

    def instance_masks(self, image_id: int) -> tuple[np.ndarray, list[int], list[int]]:
        """(N×H×W bool masks, category ids, annotation ids) of an image, in annotation order."""
        hw = self._image_hw(image_id)
        anns = self.image_anns(image_id)
        masks = np.zeros((len(anns), *hw), dtype=bool)
        for i, a in enumerate(anns):
            masks[i] = self._checked_mask(a, hw)
        return masks, [a["category_id"] for a in anns], [a["id"] for a in anns]

    def class_map(self) -> dict[int, int]:
        """Category id -> class index (1..K, 0 = background), by sorted category id."""
        return {cid: i + 1 for i, cid in enumerate(sorted(self.categories))}

    def semantic_mask(self, image_id: int, class_map: dict[int, int] | None = None) -> np.ndarray:
        """uint8 label map; overlapping instances: later annotations win (DESIGN contract)."""
        class_map = self.class_map() if class_map is None else class_map
        hw = self._image_hw(image_id)
        out = np.zeros(hw, dtype=np.uint8)
        for a in self.image_anns(image_id):
            cls_idx = class_map.get(a["category_id"])
            if cls_idx is None:
                continue
            out[self._checked_mask(a, hw)] = cls_idx
        return out

    # ------------------------------------------------------------------ images
    def image_path(self, image_id: int) -> Path:
        """Absolute path of an image file; ``DataError`` when its file_name leaves the root."""
        im = self.images[image_id]
        if self.root is None:
            raise DataError(f"image {image_id}: data set has no image root", self.path)
        return check_inside(self.root, str(im.get("file_name", "")))

    def load_image(self, image_id: int) -> np.ndarray:
        """uint8 RGB HxWx3 of an image; ``DataError`` naming file and image id when it cannot be read or
        its size differs from the record's height/width (masks are drawn at the record's size)."""
        path = self.image_path(image_id)
        try:
            img = read_image(path)
        except DataError as e:
            raise DataError(f"image {image_id}: {str(e).removeprefix(f'{path}: ')}", path) from None
        im = self.images[image_id]
        if (im.get("height"), im.get("width")) != img.shape[:2]:
            raise DataError(
                f"image {image_id}: file is {img.shape[0]}x{img.shape[1]} (h x w), the JSON says "
                f"{im.get('height')}x{im.get('width')}",
                path,
            )
        return img

    # ------------------------------------------------------------------ categories
    def category_color(self, cid: int) -> tuple[int, int, int]:
        """RGB colour of a category: its ``color`` field, else a palette entry by sorted id."""
        c = self.categories.get(cid, {})
        if isinstance(c.get("color"), (list, tuple)) and len(c["color"]) >= 3:
            return tuple(int(v) for v in c["color"][:3])  # type: ignore[return-value]
        idx = sorted(self.categories).index(cid) if cid in self.categories else int(cid)
        return palette_color(idx)

    def category_id(self, name: str) -> int:
        """Id of the category named ``name``; ``DataError`` listing the names otherwise."""
        for cid, c in self.categories.items():
            if c.get("name") == name:
                return cid
        names = [c.get("name") for c in self.categories.values()]
        raise DataError(f"unknown category {name!r}; categories: {names}", self.path)

    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(images={len(self.images)}, annotations={len(self.annotations)}, "
            f"categories={len(self.categories)}, videos={len(self.videos)}, root={self.root})"
        )
