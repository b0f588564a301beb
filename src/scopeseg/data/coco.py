"""The canonical record set: COCO JSON with RLE masks, extended for video.

Images may carry ``video_id`` (into a top-level ``videos`` table) and ``frame_index`` (0-based order).
On import ``order_in_video`` becomes the index (shifted to start at 0 per video), ``frame_num`` /
``frame_id`` are ranked into an index (sparse frame numbers are normal), and string ``video_name`` /
``video_id`` values are mapped to ids. Polygons and uncompressed RLE become compressed RLE on load, but
masks are never decoded at load time (a 20k-annotation file loads faster than ``pycocotools.COCO``).
"""

from __future__ import annotations

import bisect
import contextlib
import copy
import gc
import logging
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..io import check_inside, read_image, write_json
from . import rle as rle_utils

log = logging.getLogger(__name__)

ANNOTATION_FILE = "annotations.json"
FRAME_KEYS_AS_INDEX = ("frame_index", "order_in_video")
FRAME_KEYS_RANKED = ("frame_num", "frame_id")
TABLES = ("videos", "categories", "images", "annotations")
_KIND = {"videos": "video", "categories": "category", "images": "image", "annotations": "annotation"}

#: distinct, colour-blind-friendly-ish palette for categories without a colour
PALETTE = [
    (0, 255, 0), (255, 64, 64), (64, 128, 255), (255, 200, 0), (200, 0, 255), (0, 230, 230),
    (255, 128, 0), (128, 255, 128), (255, 0, 128), (160, 100, 40), (100, 160, 255), (230, 230, 230),
    (0, 128, 64), (128, 0, 0), (0, 0, 160), (128, 128, 0),
]  # fmt: skip


def _loads(data: bytes) -> Any:
    try:
        import orjson

        return orjson.loads(data)
    except ImportError:  # pragma: no cover - orjson is a dependency
        import json

        return json.loads(data)


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


def _is_rle_str(seg: Any) -> bool:
    return type(seg) is dict and type(seg.get("counts")) is str


def _id_key(v: Any) -> tuple:
    """Sort key for ids of mixed types: ints numerically first, then anything else by text."""
    return (0, v, "") if isinstance(v, int) else (1, 0, str(v))


def _rank_dense(values: list[Any]) -> dict[Any, int]:
    """value -> 0-based rank among the distinct values (ties share a rank so duplicates stay visible)."""
    try:
        distinct = sorted(set(values))
    except TypeError:  # mixed types: order by text
        distinct = sorted(set(values), key=str)
    return {v: i for i, v in enumerate(distinct)}


class CocoDataset:
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
        ranked: dict[Any, dict[str, list[tuple[Any, Any]]]] = defaultdict(lambda: defaultdict(list))
        for iid, im in self.images.items():
            vid = im.get("video_id")
            if vid is None and im.get("video_name") is not None:
                vid = im["video_name"]
            if isinstance(vid, str):
                if vid not in name_to_vid:
                    new_id = self._new_id("videos")
                    self.videos[new_id] = {"id": new_id, "name": vid}
                    name_to_vid[vid] = new_id
                vid = name_to_vid[vid]
            if vid is not None:
                im["video_id"] = vid
                if vid not in self.videos:
                    self.videos[vid] = {"id": vid, "name": str(vid)}
            if "frame_index" not in im and vid is not None:
                for key in ("order_in_video", *FRAME_KEYS_RANKED):
                    if im.get(key) is not None:
                        ranked[vid][key].append((im[key], iid))
                        break
        for _vid, by_key in ranked.items():
            for key, items in by_key.items():
                values = [v for v, _ in items]
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
            if _is_rle_str(seg):
                continue
            if isinstance(seg, list):
                self._convert_polygons(aid, a, seg)
            elif isinstance(seg, dict) and "counts" in seg and "size" in seg:
                try:
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
        bad = [p for p in rings if len(p) < 6]
        iid = a.get("image_id")
        if bad or len(rings) != len(seg):
            self.load_problems.append(
                (
                    "polygon_too_few_points",
                    f"annotation {aid}: {len(bad) + len(seg) - len(rings)} polygon ring(s) with < 3 points dropped",
                    {"annotation_id": aid, "image_id": iid, "rings": len(bad) + len(seg) - len(rings)},
                )
            )
        im = self.images.get(iid)
        try:
            h, w = int(im["height"]), int(im["width"])  # type: ignore[index]
        except (TypeError, KeyError, ValueError):
            return  # unknown image or no size: kept as polygons; validate reports it
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

    def _new_id(self, table: str) -> int:
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
        cls, data: dict, root: str | Path | None = None, path: str | Path | None = None
    ) -> CocoDataset:
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
    def load(cls, path: str | Path, root: str | Path | None = None) -> CocoDataset:
        """Load a COCO(-video) JSON file or a data folder with ``annotations.json``."""
        json_path, default_root = resolve_data_path(path)
        with _gc_paused():  # parsing allocates ~10 objects per record and creates no cycles
            try:
                data = _loads(json_path.read_bytes())
            except (ValueError, UnicodeDecodeError) as e:
                raise DataError(f"malformed JSON ({str(e).splitlines()[0]})", json_path) from None
            except OSError as e:
                raise DataError(f"cannot read ({e.strerror or e.__class__.__name__})", json_path) from None
            return cls.from_dict(data, root=root if root is not None else default_root, path=json_path)

    def to_dict(self) -> dict:
        """Plain COCO dict with every segmentation as compressed RLE (records shared, not copied)."""
        anns = [a if _is_rle_str(a.get("segmentation")) or "segmentation" not in a else self._rle_record(a)
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

    def copy(self) -> CocoDataset:
        """Deep copy (tables, duplicates and load problems)."""
        out = CocoDataset.from_dict(copy.deepcopy(self.to_dict()), root=self.root, path=self.path)
        seen = {(c, m) for c, m, _ in out.load_problems}
        out.load_problems += [copy.deepcopy(p) for p in self.load_problems if (p[0], p[1]) not in seen]
        return out

    def relocate(self, root: str | Path) -> None:
        """Rewrite every ``file_name`` relative to a new root folder (images are not moved).

        Used before writing a copy elsewhere; raises ``DataError`` when an image would lie outside ``root``
        (file names may not escape their data root), so write such copies in a folder above the images.
        """
        root = Path(root).resolve()
        if self.root is None or Path(self.root).resolve() == root:
            self.root = root
            return
        old = Path(self.root).resolve()
        new_names = {}
        for iid, im in self.images.items():
            full = (old / str(im.get("file_name", ""))).resolve()
            if not full.is_relative_to(root):
                raise DataError(
                    f"image {iid} ({full}) is outside {root}; write the output in a folder that contains the images",
                    self.path,
                )
            new_names[iid] = full.relative_to(root).as_posix()
        for iid, name in new_names.items():
            self.images[iid]["file_name"] = name
        self.root = root

    # ------------------------------------------------------------------ adding records
    def add_category(self, name: str, id: int | None = None, color: Sequence[int] | None = None, **kw) -> int:
        """Add a category (id: next free one); ``color`` is RGB 0-255, stored as a list."""
        cid = id if id is not None else self._new_id("categories")
        rec = {"id": cid, "name": name, **kw}
        if color is not None:
            rec["color"] = [int(c) for c in color]
        self.categories[cid] = rec
        return cid

    def add_video(self, name: str, id: int | None = None, **kw) -> int:
        """Add a row to the ``videos`` table (id: next free one)."""
        vid = id if id is not None else self._new_id("videos")
        self.videos[vid] = {"id": vid, "name": name, **kw}
        return vid

    def add_image(self, file_name: str, height: int, width: int, id: int | None = None, **kw) -> int:
        """Add an image record (``file_name`` relative to the root); video frames are kept in order."""
        iid = id if id is not None else self._new_id("images")
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
        aid = id if id is not None else self._new_id("annotations")
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
        if _is_rle_str(seg):
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
        """uint8 RGB HxWx3 of an image."""
        return read_image(self.image_path(image_id))

    # ------------------------------------------------------------------ categories
    def category_color(self, cid: int) -> tuple[int, int, int]:
        """RGB colour of a category: its ``color`` field, else a palette entry by sorted id."""
        c = self.categories.get(cid, {})
        if isinstance(c.get("color"), (list, tuple)) and len(c["color"]) >= 3:
            return tuple(int(v) for v in c["color"][:3])  # type: ignore[return-value]
        idx = sorted(self.categories).index(cid) if cid in self.categories else int(cid)
        return PALETTE[idx % len(PALETTE)]

    def category_id(self, name: str) -> int:
        """Id of the category named ``name``; ``DataError`` listing the names otherwise."""
        for cid, c in self.categories.items():
            if c.get("name") == name:
                return cid
        names = [c.get("name") for c in self.categories.values()]
        raise DataError(f"unknown category {name!r}; categories: {names}", self.path)

    # ------------------------------------------------------------------ video
    def video_frames(self, video_id: int) -> list[int]:
        """Image ids of a video in frame order."""
        if video_id not in self.videos and video_id not in self.frames_by_video:
            raise DataError(f"unknown video id {video_id}", self.path)
        return list(self.frames_by_video.get(video_id, []))

    def iter_video(self, video_id: int) -> Iterator[dict]:
        """Image records of a video in frame order."""
        for iid in self.video_frames(video_id):
            yield self.images[iid]

    def iter_videos(self) -> Iterator[tuple[int, list[int]]]:
        """(video id, image ids in frame order) for every video."""
        for vid in self.videos:
            yield vid, self.video_frames(vid)

    def clips(
        self, length: int, stride: int | None = None, video_ids: Iterable[int] | None = None
    ) -> list[list[int]]:
        """Fixed-length windows of consecutive frames (image ids), per video; short videos are skipped."""
        if length < 1:
            raise DataError(f"clip length must be >= 1, got {length}")
        stride = stride or length
        if stride < 1:
            raise DataError(f"clip stride must be >= 1, got {stride}")
        out = []
        for vid in video_ids if video_ids is not None else self.videos:
            frames = self.video_frames(vid)
            for start in range(0, len(frames) - length + 1, stride):
                out.append(frames[start : start + length])
        return out

    # ------------------------------------------------------------------ subsets
    def subset(self, image_ids: Iterable[int]) -> CocoDataset:
        """A new data set with only these images, their annotations and videos; categories kept."""
        keep = list(dict.fromkeys(i for i in image_ids if i in self.images))
        images = [copy.deepcopy(self.images[i]) for i in keep]
        anns = [copy.deepcopy(self.annotations[a]) for i in keep for a in self.anns_by_image.get(i, [])]
        vids = {im.get("video_id") for im in images} - {None}
        videos = [copy.deepcopy(v) for vid, v in self.videos.items() if vid in vids]
        return CocoDataset(
            images, anns, copy.deepcopy(list(self.categories.values())), videos, info=self.info,
            licenses=self.licenses, root=self.root, path=self.path, extra=copy.deepcopy(self.extra),
        )  # fmt: skip

    def filter(
        self,
        image_ids: Iterable[int] | None = None,
        category_ids: Iterable[int] | None = None,
        video_ids: Iterable[int] | None = None,
        split: str | None = None,
        keep_empty: bool = True,
        category_names: Iterable[str] | None = None,
    ) -> CocoDataset:
        """Subset by images / videos / split; ``category_ids`` (or names) drops other categories' annotations.

        ``keep_empty=False`` also drops images left without annotations by the category filter.
        """
        ids = list(self.images)
        if image_ids is not None:
            s = set(image_ids)
            ids = [i for i in ids if i in s]
        if video_ids is not None:
            s = set(video_ids)
            unknown = s - set(self.videos)
            if unknown:
                raise DataError(
                    f"unknown video ids {sorted(unknown, key=str)}; videos: {sorted(self.videos)}", self.path
                )
            ids = [i for i in ids if self.images[i].get("video_id") in s]
        if split is not None:
            if split not in self.splits():
                raise DataError(f"no images in split {split!r}; splits: {sorted(self.splits())}", self.path)
            ids = [i for i in ids if self.images[i].get("split", "all") == split]
        out = self.subset(ids)
        if category_names is not None:
            category_ids = [*(category_ids or []), *(self.category_id(n) for n in category_names)]
        if category_ids is not None:
            cats = set(category_ids)
            unknown = cats - set(self.categories)
            if unknown:
                raise DataError(f"unknown category ids {sorted(unknown)}", self.path)
            out.annotations = {k: a for k, a in out.annotations.items() if a.get("category_id") in cats}
            out.categories = {k: c for k, c in out.categories.items() if k in cats}
            if not keep_empty:
                has = {a.get("image_id") for a in out.annotations.values()}
                out.images = {k: im for k, im in out.images.items() if k in has}
                used = {im.get("video_id") for im in out.images.values()}
                out.videos = {k: v for k, v in out.videos.items() if k in used}
            out.reindex()
        return out

    def splits(self) -> dict[str, list[int]]:
        """split name -> image ids (images without ``split`` are under ``"all"``)."""
        out: dict[str, list[int]] = defaultdict(list)
        for iid, im in self.images.items():
            out[im.get("split", "all")].append(iid)
        return dict(out)

    def assign_splits(self, fractions: dict[str, float], seed: int = 0) -> dict[str, list[int]]:
        """Write ``split`` on every image, grouping by video so no video crosses splits.

        Images without a video are their own group. Groups are shuffled with ``seed`` (same seed, same
        split) and each goes to the split furthest below its target share of frames, so every split with a
        positive fraction gets at least one group when there are enough groups.
        """
        if not fractions or any(f < 0 for f in fractions.values()) or sum(fractions.values()) <= 0:
            raise DataError(f"split fractions must be >= 0 and sum to > 0, got {fractions}")
        total_frac = sum(fractions.values())
        groups: dict[Any, list[int]] = defaultdict(list)
        for iid, im in self.images.items():
            vid = im.get("video_id")
            groups[("v", vid) if vid is not None else ("i", iid)].append(iid)
        keys = sorted(groups, key=lambda k: (k[0], *_id_key(k[1])))
        random.Random(seed).shuffle(keys)
        names = [n for n in fractions if fractions[n] > 0]
        target = {n: fractions[n] / total_frac * len(self.images) for n in names}
        got = dict.fromkeys(names, 0)
        out: dict[str, list[int]] = {n: [] for n in fractions}
        for k in keys:
            # an empty split first (in the order given), then the one furthest below its target
            empty = [n for n in names if got[n] == 0]
            name = empty[0] if empty else max(names, key=lambda n: (target[n] - got[n]) / target[n])
            for iid in groups[k]:
                self.images[iid]["split"] = name
            out[name].extend(groups[k])
            got[name] += len(groups[k])
        return out

    def split(self, fractions: dict[str, float], seed: int = 0) -> dict[str, CocoDataset]:
        """Split by video into separate data sets (see ``assign_splits``); images carry ``split``."""
        whole = self.copy()
        parts = whole.assign_splits(fractions, seed)
        return {name: whole.subset(ids) for name, ids in parts.items()}

    # ------------------------------------------------------------------ merge
    @staticmethod
    def merge(datasets: Sequence[CocoDataset], root: str | Path | None = None) -> CocoDataset:
        """Concatenate data sets: categories unified by name (first one's ids kept when free), images,
        annotations and videos renumbered (videos are never unified: equal names from different sets are
        different videos); ``file_name`` made relative to ``root`` when given (see ``relocate``)."""
        out = CocoDataset(root=root)
        name_to_cid: dict[str, int] = {}
        images: dict[int, dict] = {}
        anns: dict[int, dict] = {}
        for ds in datasets:
            ds = ds.copy()
            if root is not None and ds.root is not None:
                ds.relocate(root)
            cmap: dict[Any, int] = {}
            for cid, c in ds.categories.items():
                name = c.get("name", str(cid))
                if name not in name_to_cid:
                    new = (
                        cid
                        if isinstance(cid, int) and cid not in out.categories
                        else out._new_id("categories")
                    )
                    out.categories[new] = {**c, "id": new}
                    name_to_cid[name] = new
                cmap[cid] = name_to_cid[name]
            vmap = {
                vid: out.add_video(**{**v, "name": v.get("name", str(vid)), "id": None})
                for vid, v in ds.videos.items()
            }
            imap = {}
            for iid, im in ds.images.items():
                new = len(images) + 1
                rec = {**im, "id": new}
                if rec.get("video_id") is not None:
                    rec["video_id"] = vmap[rec["video_id"]]
                images[new] = rec
                imap[iid] = new
            for aid, a in ds.annotations.items():
                if a.get("category_id") not in cmap:
                    raise DataError(
                        f"annotation {aid} has unknown category id {a.get('category_id')}", ds.path
                    )
                if a.get("image_id") not in imap:
                    raise DataError(f"annotation {aid} is on unknown image {a.get('image_id')}", ds.path)
                new = len(anns) + 1
                anns[new] = {
                    **a,
                    "id": new,
                    "image_id": imap[a["image_id"]],
                    "category_id": cmap[a["category_id"]],
                }
        out.images, out.annotations = images, anns
        out.reindex()
        return out

    # ------------------------------------------------------------------ summary
    def summary(self) -> dict[str, Any]:
        """Counts per split / category / video, image sizes and a mask-area histogram (no mask decoding).

        Areas come from the RLE run lengths (pycocotools ``area``); histogram bins are powers of 4 pixels.
        """
        cats = {
            cid: {"id": cid, "name": c.get("name"), "annotations": 0, "images": 0}
            for cid, c in self.categories.items()
        }
        for cid, iids in self.images_by_category.items():
            if cid in cats:
                cats[cid]["images"] = len(iids)
        per_cat = Counter(a.get("category_id") for a in self.annotations.values())
        for cid, n in per_cat.items():
            if cid in cats:
                cats[cid]["annotations"] = n
        splits = {}
        for name, iids in sorted(self.splits().items()):
            splits[name] = {
                "images": len(iids),
                "annotations": sum(len(self.anns_by_image.get(i, ())) for i in iids),
                "videos": len({self.images[i].get("video_id") for i in iids} - {None}),
            }
        videos = []
        for vid, v in self.videos.items():
            frames = self.frames_by_video.get(vid, [])
            vsplits = sorted({str(self.images[i].get("split", "all")) for i in frames})
            videos.append(
                {
                    "id": vid,
                    "name": v.get("name"),
                    "frames": len(frames),
                    "annotations": sum(len(self.anns_by_image.get(i, ())) for i in frames),
                    "split": ",".join(vsplits),
                }
            )
        sizes = Counter(f"{im.get('height')}x{im.get('width')}" for im in self.images.values())
        rles = [s for s in (a.get("segmentation") for a in self.annotations.values()) if _is_rle_str(s)]
        areas = rle_utils.areas(rles)
        top = int(areas.max()) if areas.size else 1
        edges = [0, 1]
        while edges[-1] <= top:
            edges.append(edges[-1] * 4)
        counts = np.histogram(areas, bins=edges)[0] if areas.size else np.zeros(len(edges) - 1, int)
        return {
            "path": str(self.path) if self.path else None,
            "images": len(self.images),
            "annotations": len(self.annotations),
            "categories": list(cats.values()),
            "videos": videos,
            "splits": splits,
            "image_sizes": dict(sizes.most_common()),
            "mask_area": {
                "bin_edges": edges,
                "counts": [int(c) for c in counts],
                "min": int(areas.min()) if areas.size else None,
                "median": float(np.median(areas)) if areas.size else None,
                "max": int(areas.max()) if areas.size else None,
                "empty": int((areas == 0).sum()),
            },
        }

    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        return (
            f"CocoDataset(images={len(self.images)}, annotations={len(self.annotations)}, "
            f"categories={len(self.categories)}, videos={len(self.videos)}, root={self.root})"
        )


def load_dataset(path: str | Path, split: str | None = None, root: str | Path | None = None) -> CocoDataset:
    """Load the canonical data set at ``path`` (JSON or folder), optionally one split of it."""
    ds = CocoDataset.load(path, root=root)
    if split is not None:
        ds = ds.filter(split=split)
    return ds


def write_relocated(ds: CocoDataset, out: str | Path) -> Path:
    """Save a data set at ``out`` (JSON path or folder) with ``file_name`` rewritten relative to it.

    Changes ``ds`` in place (see ``relocate``); images are not copied, so ``out`` must lie above them.
    """
    out_json = output_json_path(out)
    ds.relocate(out_json.parent)
    return ds.save(out_json)
