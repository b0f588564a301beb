"""The canonical record set: COCO JSON with RLE masks, extended for video.

Images may carry ``video_id`` (into a top-level ``videos`` table) and ``frame_index`` (0-based order);
``order_in_video`` is taken as the index, ``frame_num`` / ``frame_id`` are kept and ranked into an index,
string ``video_name`` values are mapped to ids. Polygons are accepted and become RLE when a mask is asked
for; masks are never decoded at load time (a 20k-annotation file loads as fast as ``pycocotools.COCO``).
"""

from __future__ import annotations

import copy
import logging
import random
from collections import defaultdict
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

#: distinct, colour-blind-friendly-ish palette for categories without a colour
PALETTE = [
    (0, 255, 0), (255, 64, 64), (64, 128, 255), (255, 200, 0), (200, 0, 255), (0, 230, 230),
    (255, 128, 0), (128, 255, 128), (255, 0, 128), (160, 100, 40), (100, 160, 255), (230, 230, 230),
    (0, 128, 64), (128, 0, 0), (0, 0, 160), (128, 128, 0),
]


def _loads(data: bytes) -> Any:
    try:
        import orjson

        return orjson.loads(data)
    except ImportError:  # pragma: no cover - orjson is a dependency
        import json

        return json.loads(data)


def resolve_data_path(path: str | Path) -> tuple[Path, Path]:
    """A data set path (JSON file, or folder holding ``annotations.json``) -> (json path, image root)."""
    path = Path(path)
    if path.is_dir():
        path = path / ANNOTATION_FILE
    if not path.exists():
        raise DataError("data set not found (expected a COCO JSON file or a folder with annotations.json)", path)
    return path, path.parent


class CocoDataset:
    """In-memory COCO record set with indices by image, category and video.

    ``images`` / ``annotations`` / ``categories`` / ``videos`` are dicts keyed by id, in file order.
    Mask-bearing methods decode lazily from RLE (or polygons) on each call.
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
        self.images: dict[int, dict] = {}
        self.annotations: dict[int, dict] = {}
        self.categories: dict[int, dict] = {}
        self.videos: dict[int, dict] = {}
        #: problems found while indexing (duplicate ids ...), kept for ``validate``
        self.load_problems: list[tuple[str, str, dict]] = []
        for v in videos:
            self._put(self.videos, v, "video")
        for c in categories:
            self._put(self.categories, c, "category")
        for im in images:
            self._put(self.images, im, "image")
        for a in annotations:
            self._put(self.annotations, a, "annotation")
        self._normalise_video_fields()
        self._index()

    # ------------------------------------------------------------------ construction
    def _put(self, table: dict[int, dict], rec: dict, kind: str) -> None:
        if "id" not in rec:
            self.load_problems.append(("missing_id", f"{kind} without an id", {"kind": kind}))
            rec = dict(rec, id=max(table, default=0) + 1)
        rid = rec["id"]
        if rid in table:
            self.load_problems.append(("duplicate_id", f"duplicate {kind} id {rid}", {"kind": kind, "id": rid}))
            return
        table[rid] = rec

    def _normalise_video_fields(self) -> None:
        name_to_vid = {v.get("name"): vid for vid, v in self.videos.items()}
        ranked: dict[Any, list[tuple[Any, int]]] = defaultdict(list)
        for iid, im in self.images.items():
            vid = im.get("video_id")
            if vid is None and im.get("video_name") is not None:
                vid = im["video_name"]
            if isinstance(vid, str):
                if vid not in name_to_vid:
                    new_id = max(self.videos, default=0) + 1
                    self.videos[new_id] = {"id": new_id, "name": vid}
                    name_to_vid[vid] = new_id
                vid = name_to_vid[vid]
            if vid is not None:
                im["video_id"] = vid
                if vid not in self.videos:
                    self.videos[vid] = {"id": vid, "name": str(vid)}
            if "frame_index" not in im:
                if "order_in_video" in im:
                    im["frame_index"] = int(im["order_in_video"])
                else:
                    for key in FRAME_KEYS_RANKED:
                        if key in im and vid is not None:
                            ranked[vid].append((im[key], iid))
                            break
        for _vid, items in ranked.items():
            for rank, (_value, iid) in enumerate(sorted(items, key=lambda t: (t[0], t[1]))):
                self.images[iid]["frame_index"] = rank

    def _index(self) -> None:
        self.anns_by_image: dict[int, list[int]] = defaultdict(list)
        self.images_by_category: dict[int, set[int]] = defaultdict(set)
        self.frames_by_video: dict[int, list[int]] = defaultdict(list)
        for aid, a in self.annotations.items():
            iid = a.get("image_id")
            self.anns_by_image[iid].append(aid)
            self.images_by_category[a.get("category_id")].add(iid)
        for iid, im in self.images.items():
            vid = im.get("video_id")
            if vid is not None:
                self.frames_by_video[vid].append(iid)
        for vid, iids in self.frames_by_video.items():
            iids.sort(key=lambda i: (self.images[i].get("frame_index", 0), i))

    def reindex(self) -> None:
        """Rebuild indices after editing the tables directly."""
        self._index()

    @classmethod
    def from_dict(cls, data: dict, root: str | Path | None = None, path: str | Path | None = None) -> CocoDataset:
        if not isinstance(data, dict):
            raise DataError("COCO JSON must be an object with images/annotations/categories", path)
        for key in ("images", "annotations", "categories", "videos"):
            if key in data and not isinstance(data[key], list):
                raise DataError(f"'{key}' must be a list", path)
        if "images" not in data:
            raise DataError("COCO JSON has no 'images' list", path)
        known = {"images", "annotations", "categories", "videos", "info", "licenses"}
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
        try:
            data = _loads(json_path.read_bytes())
        except (ValueError, UnicodeDecodeError) as e:
            raise DataError(f"malformed JSON ({str(e).splitlines()[0]})", json_path) from None
        return cls.from_dict(data, root=root if root is not None else default_root, path=json_path)

    def to_dict(self) -> dict:
        """Plain COCO dict with every segmentation as compressed RLE."""
        anns = []
        for a in self.annotations.values():
            a = dict(a)
            if "segmentation" in a:
                a["segmentation"] = self.rle(a)
            anns.append(a)
        out: dict[str, Any] = {}
        if self.info:
            out["info"] = self.info
        if self.licenses:
            out["licenses"] = self.licenses
        out.update(self.extra)
        if self.videos:
            out["videos"] = list(self.videos.values())
        out["images"] = list(self.images.values())
        out["annotations"] = anns
        out["categories"] = list(self.categories.values())
        return out

    def save(self, path: str | Path, indent: int | None = None) -> Path:
        """Write atomically; a folder path gets ``annotations.json`` inside."""
        path = Path(path)
        if path.suffix.lower() != ".json":
            path = path / ANNOTATION_FILE
        return write_json(path, self.to_dict(), indent=indent)

    def copy(self) -> CocoDataset:
        return CocoDataset.from_dict(copy.deepcopy(self.to_dict()), root=self.root, path=self.path)

    # ------------------------------------------------------------------ adding records
    def add_category(self, name: str, id: int | None = None, color: Sequence[int] | None = None, **kw) -> int:
        cid = id if id is not None else max(self.categories, default=0) + 1
        rec = {"id": cid, "name": name, **kw}
        if color is not None:
            rec["color"] = [int(c) for c in color]
        self.categories[cid] = rec
        return cid

    def add_video(self, name: str, id: int | None = None, **kw) -> int:
        vid = id if id is not None else max(self.videos, default=0) + 1
        self.videos[vid] = {"id": vid, "name": name, **kw}
        return vid

    def add_image(self, file_name: str, height: int, width: int, id: int | None = None, **kw) -> int:
        iid = id if id is not None else max(self.images, default=0) + 1
        self.images[iid] = {"id": iid, "file_name": file_name, "height": int(height), "width": int(width), **kw}
        vid = kw.get("video_id")
        if vid is not None:
            frames = self.frames_by_video[vid]
            frames.append(iid)
            frames.sort(key=lambda i: (self.images[i].get("frame_index", 0), i))
        return iid

    def add_annotation(
        self, image_id: int, category_id: int, mask: np.ndarray | dict, id: int | None = None, **kw
    ) -> int:
        """Add an instance from a bool mask or an RLE; area and bbox are computed from the mask."""
        aid = id if id is not None else max(self.annotations, default=0) + 1
        rle = rle_utils.encode(mask) if isinstance(mask, np.ndarray) else rle_utils.compress(mask)
        rec = {
            "id": aid, "image_id": image_id, "category_id": category_id, "segmentation": rle,
            "area": rle_utils.area(rle), "bbox": rle_utils.bbox(rle), "iscrowd": 0, **kw,
        }
        self.annotations[aid] = rec
        self.anns_by_image[image_id].append(aid)
        self.images_by_category[category_id].add(image_id)
        return aid

    # ------------------------------------------------------------------ masks
    def rle(self, ann: int | dict) -> dict:
        """Compressed RLE of an annotation (polygons rasterised at the image's size)."""
        a = self.annotations[ann] if isinstance(ann, int) else ann
        seg = a.get("segmentation")
        if isinstance(seg, list):
            im = self.images.get(a.get("image_id"), {})
            return rle_utils.polygons_to_rle(seg, int(im["height"]), int(im["width"]))
        if isinstance(seg, dict) and "counts" in seg:
            return seg if isinstance(seg["counts"], str) else rle_utils.compress(seg)
        raise DataError(f"annotation {a.get('id')} has no segmentation", self.path)

    def mask(self, ann: int | dict) -> np.ndarray:
        return rle_utils.decode(self.rle(ann))

    def image_anns(self, image_id: int) -> list[dict]:
        return [self.annotations[a] for a in self.anns_by_image.get(image_id, [])]

    def instance_masks(self, image_id: int) -> tuple[np.ndarray, list[int], list[int]]:
        """(N×H×W bool masks, category ids, annotation ids) of an image, in annotation order."""
        im = self.images[image_id]
        anns = self.image_anns(image_id)
        h, w = int(im["height"]), int(im["width"])
        masks = np.zeros((len(anns), h, w), dtype=bool)
        for i, a in enumerate(anns):
            masks[i] = self.mask(a)
        return masks, [a["category_id"] for a in anns], [a["id"] for a in anns]

    def class_map(self) -> dict[int, int]:
        """Category id -> class index (1..K, 0 = background), by sorted category id."""
        return {cid: i + 1 for i, cid in enumerate(sorted(self.categories))}

    def semantic_mask(self, image_id: int, class_map: dict[int, int] | None = None) -> np.ndarray:
        """uint8 label map; overlapping instances: later annotations win (DESIGN contract)."""
        class_map = self.class_map() if class_map is None else class_map
        im = self.images[image_id]
        out = np.zeros((int(im["height"]), int(im["width"])), dtype=np.uint8)
        for a in self.image_anns(image_id):
            cls_idx = class_map.get(a["category_id"])
            if cls_idx is None:
                continue
            out[self.mask(a)] = cls_idx
        return out

    # ------------------------------------------------------------------ images
    def image_path(self, image_id: int) -> Path:
        im = self.images[image_id]
        if self.root is None:
            raise DataError(f"image {image_id}: data set has no image root", self.path)
        return check_inside(self.root, im["file_name"])

    def load_image(self, image_id: int) -> np.ndarray:
        """uint8 RGB HxWx3 of an image."""
        return read_image(self.image_path(image_id))

    # ------------------------------------------------------------------ categories
    def category_color(self, cid: int) -> tuple[int, int, int]:
        c = self.categories.get(cid, {})
        if "color" in c:
            return tuple(int(v) for v in c["color"][:3])  # type: ignore[return-value]
        idx = sorted(self.categories).index(cid) if cid in self.categories else cid
        return PALETTE[idx % len(PALETTE)]

    def category_id(self, name: str) -> int:
        for cid, c in self.categories.items():
            if c.get("name") == name:
                return cid
        raise DataError(f"unknown category {name!r}; categories: {[c.get('name') for c in self.categories.values()]}", self.path)

    # ------------------------------------------------------------------ video
    def video_frames(self, video_id: int) -> list[int]:
        """Image ids of a video in frame order."""
        if video_id not in self.videos and video_id not in self.frames_by_video:
            raise DataError(f"unknown video id {video_id}", self.path)
        return list(self.frames_by_video.get(video_id, []))

    def iter_videos(self) -> Iterator[tuple[int, list[int]]]:
        for vid in self.videos:
            yield vid, self.video_frames(vid)

    def clips(self, length: int, stride: int | None = None, video_ids: Iterable[int] | None = None) -> list[list[int]]:
        """Fixed-length windows of consecutive frames (image ids), per video; short videos are skipped."""
        if length < 1:
            raise DataError(f"clip length must be >= 1, got {length}")
        stride = stride or length
        out = []
        for vid in video_ids if video_ids is not None else self.videos:
            frames = self.video_frames(vid)
            for start in range(0, len(frames) - length + 1, stride):
                out.append(frames[start : start + length])
        return out

    # ------------------------------------------------------------------ subsets
    def subset(self, image_ids: Iterable[int]) -> CocoDataset:
        """A new data set with only these images, their annotations and videos; categories kept."""
        keep = [i for i in image_ids if i in self.images]
        keep_set = set(keep)
        images = [copy.deepcopy(self.images[i]) for i in keep]
        anns = [copy.deepcopy(self.annotations[a]) for i in keep for a in self.anns_by_image.get(i, [])]
        vids = {im.get("video_id") for im in images} - {None}
        videos = [copy.deepcopy(v) for vid, v in self.videos.items() if vid in vids]
        del keep_set
        return CocoDataset(images, anns, copy.deepcopy(list(self.categories.values())), videos,
                           info=self.info, licenses=self.licenses, root=self.root, path=self.path)

    def filter(
        self,
        image_ids: Iterable[int] | None = None,
        category_ids: Iterable[int] | None = None,
        video_ids: Iterable[int] | None = None,
        split: str | None = None,
        keep_empty: bool = True,
    ) -> CocoDataset:
        """Subset by images / videos / split; ``category_ids`` drops other categories' annotations."""
        ids = list(self.images)
        if image_ids is not None:
            s = set(image_ids)
            ids = [i for i in ids if i in s]
        if video_ids is not None:
            s = set(video_ids)
            ids = [i for i in ids if self.images[i].get("video_id") in s]
        if split is not None:
            ids = [i for i in ids if self.images[i].get("split") == split]
        out = self.subset(ids)
        if category_ids is not None:
            cats = set(category_ids)
            unknown = cats - set(self.categories)
            if unknown:
                raise DataError(f"unknown category ids {sorted(unknown)}", self.path)
            out.annotations = {k: a for k, a in out.annotations.items() if a["category_id"] in cats}
            out.categories = {k: c for k, c in out.categories.items() if k in cats}
            if not keep_empty:
                has = {a["image_id"] for a in out.annotations.values()}
                out.images = {k: im for k, im in out.images.items() if k in has}
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

        Images without a video are their own group. Groups are shuffled with ``seed`` and dealt to splits
        by cumulative frame count, so each split gets close to its fraction of frames.
        """
        total_frac = sum(fractions.values())
        if total_frac <= 0:
            raise DataError("split fractions must sum to > 0")
        groups: dict[Any, list[int]] = defaultdict(list)
        for iid, im in self.images.items():
            vid = im.get("video_id")
            groups[("v", vid) if vid is not None else ("i", iid)].append(iid)
        keys = sorted(groups, key=str)
        random.Random(seed).shuffle(keys)
        names = list(fractions)
        targets = np.cumsum([fractions[n] / total_frac for n in names]) * len(self.images)
        out: dict[str, list[int]] = {n: [] for n in names}
        done = 0
        si = 0
        for k in keys:
            # move to the next split once this one is filled (keep at least one group per split when possible)
            while si < len(names) - 1 and done >= targets[si] - 1e-9 and out[names[si]]:
                si += 1
            for iid in groups[k]:
                self.images[iid]["split"] = names[si]
            out[names[si]].extend(groups[k])
            done += len(groups[k])
        return out

    def split(self, fractions: dict[str, float], seed: int = 0) -> dict[str, CocoDataset]:
        """Split by video into separate data sets (see ``assign_splits``)."""
        parts = self.copy().assign_splits(fractions, seed)
        return {name: self.subset(ids) for name, ids in parts.items()}

    # ------------------------------------------------------------------ merge
    @staticmethod
    def merge(datasets: Sequence[CocoDataset], root: str | Path | None = None) -> CocoDataset:
        """Concatenate data sets: categories unified by name (first one's ids kept when free),
        images/annotations/videos renumbered; ``file_name`` made relative to ``root`` when given."""
        out = CocoDataset(root=root)
        name_to_cid: dict[str, int] = {}
        for ds in datasets:
            cmap: dict[int, int] = {}
            for cid, c in ds.categories.items():
                name = c.get("name", str(cid))
                if name not in name_to_cid:
                    new = cid if cid not in out.categories else max(out.categories) + 1
                    out.categories[new] = {**copy.deepcopy(c), "id": new}
                    name_to_cid[name] = new
                cmap[cid] = name_to_cid[name]
            vmap = {}
            for vid, v in ds.videos.items():
                vmap[vid] = out.add_video(v.get("name", str(vid)), **{k: x for k, x in v.items() if k not in ("id", "name")})
            imap = {}
            for iid, im in ds.images.items():
                rec = copy.deepcopy(im)
                rec.pop("id")
                if rec.get("video_id") is not None:
                    rec["video_id"] = vmap[rec["video_id"]]
                if root is not None and ds.root is not None:
                    import os

                    rec["file_name"] = os.path.relpath(Path(ds.root) / im["file_name"], root)
                imap[iid] = out.add_image(**rec)
            for _aid, a in ds.annotations.items():
                rec = copy.deepcopy(a)
                if a.get("category_id") not in cmap:
                    raise DataError(f"annotation {a.get('id')} has unknown category id {a.get('category_id')}", ds.path)
                rec.pop("id")
                new_id = max(out.annotations, default=0) + 1
                rec["id"] = new_id
                rec["image_id"] = imap[a["image_id"]]
                rec["category_id"] = cmap[a["category_id"]]
                out.annotations[new_id] = rec
        out.reindex()
        return out

    # ------------------------------------------------------------------ summary
    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        return (f"CocoDataset(images={len(self.images)}, annotations={len(self.annotations)}, "
                f"categories={len(self.categories)}, videos={len(self.videos)}, root={self.root})")


def load_dataset(path: str | Path, split: str | None = None, root: str | Path | None = None) -> CocoDataset:
    """Load the canonical data set at ``path`` (JSON or folder), optionally one split of it."""
    ds = CocoDataset.load(path, root=root)
    if split is not None:
        if split not in ds.splits():
            raise DataError(f"no images in split {split!r}; splits: {sorted(ds.splits())}", ds.path)
        ds = ds.filter(split=split)
    return ds
