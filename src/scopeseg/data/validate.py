"""Every check a canonical data set must pass, each problem named with file, image id and annotation id.

``validate(ds_or_path)`` returns a ``ValidationReport``; ``fix(ds, report)`` returns a repaired copy where
the repair is unambiguous (recompute bbox/area from the mask, drop empty masks, drop exact duplicate
records, renumber frames whose order is known ...) and records each action in ``fixed.fix_log``.
Masks are checked on their RLE (areas, boxes, overlaps via pycocotools) without decoding them.
The structural subset (ids, references, RLE form and size, polygons, boxes, frames, image sizes in the
JSON, file names and files present; dict/int work, no pixels, no RLE decoding) is ``check_structure``:
every load of a data set runs it (``CocoDataset.load(check=True)``) and ``require_sound`` refuses with the
first problems named.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterator
from dataclasses import asdict, dataclass, field
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from ..errors import DataError
from ..io import MAX_IMAGE_PIXELS_ENV, check_inside, image_size, max_image_pixels
from . import rle as rle_utils
from .records import TABLES, RecordSet

log = logging.getLogger(__name__)

ERROR, WARNING = "error", "warning"
BBOX_TOLERANCE_PX = 1.0
AREA_TOLERANCE = 0.01  # relative; and at least 1 pixel


@dataclass(frozen=True)
class Code:
    """What a problem code means: severity, description, and the repair ``fix`` applies ("" = none)."""

    severity: str
    description: str
    fixable: str = ""  # what ``fix`` does about it ("" = nothing, it needs a person)


#: problem code -> severity, meaning, and what ``fix`` does (registry; checks below emit these codes)
CODES: dict[str, Code] = {
    "missing_id": Code(ERROR, "record without an id", "keep the id assigned at load"),
    "id_not_integer": Code(ERROR, "id of an image/annotation/category/video is not an integer"),
    "duplicate_image_id": Code(ERROR, "two images share an id", "drop repeats that are exact copies"),
    "duplicate_annotation_id": Code(ERROR, "two annotations share an id", "drop repeats that are exact copies"),
    "duplicate_category_id": Code(ERROR, "two categories share an id", "drop repeats that are exact copies"),
    "duplicate_video_id": Code(ERROR, "two videos share an id", "drop repeats that are exact copies"),
    "duplicate_category_name": Code(WARNING, "two categories share a name"),
    "category_no_name": Code(ERROR, "category without a name"),
    "no_images": Code(ERROR, "the data set has no image at all"),
    "image_bad_size": Code(ERROR, "image height/width missing or not positive"),
    "too_many_pixels": Code(ERROR, f"image height x width beyond the pixel limit (${MAX_IMAGE_PIXELS_ENV})"),
    "image_no_file_name": Code(ERROR, "image without file_name"),
    "file_name_escapes_root": Code(ERROR, "file_name is absolute, leaves the data root (..) or links out of it"),
    "image_missing": Code(ERROR, "image file not found (or a folder)"),
    "image_unreadable": Code(ERROR, "image file cannot be read"),
    "image_size_mismatch": Code(ERROR, "image file size differs from JSON height/width", "take the file's size when all masks have it"),
    "annotation_unknown_image": Code(ERROR, "annotation refers to an image id that does not exist"),
    "unknown_category": Code(ERROR, "annotation category id not in categories"),
    "unknown_video": Code(ERROR, "image refers to a video id not in the videos table"),
    "segmentation_invalid": Code(ERROR, "segmentation missing or not RLE/polygons"),
    "rle_invalid": Code(ERROR, "RLE counts malformed (run lengths do not sum to h*w)"),
    "polygon_invalid": Code(ERROR, "polygon coordinates cannot be rasterised"),
    "polygon_too_few_points": Code(ERROR, "polygon ring with fewer than 3 points", "drop those rings"),
    "rle_size_mismatch": Code(ERROR, "RLE size differs from the image's height/width"),
    "empty_mask": Code(ERROR, "mask has no foreground pixel", "drop the annotation"),
    "bbox_invalid": Code(ERROR, "bbox is not 4 finite numbers with non-negative width and height", "recompute bbox from the mask"),
    "bbox_mismatch": Code(ERROR, "bbox differs from the mask's box by more than 1 px", "recompute bbox from the mask"),
    "area_mismatch": Code(WARNING, "area differs from the mask's pixel count by more than 1%", "recompute area from the mask"),
    "class_overlap": Code(WARNING, "masks of different categories overlap (later annotations win when rasterised)"),
    "frame_index_missing": Code(ERROR, "frame of a video without frame_index", "number frames by file name when that order is unambiguous"),
    "frame_index_invalid": Code(ERROR, "frame_index not a non-negative integer"),
    "frame_index_duplicate": Code(ERROR, "two frames of a video share a frame_index", "renumber by file name when that order is unambiguous"),
    "frame_index_gap": Code(WARNING, "frame indices of a video are not 0..n-1 (missing frames)", "renumber 0..n-1 in order"),
}  # fmt: skip


@dataclass
class Problem:
    """One problem: what (code), how bad (severity), where (file, image id, annotation id), and details."""

    code: str
    severity: str
    file: str
    image_id: Any
    annotation_id: Any
    message: str
    details: dict = field(default_factory=dict)

    def line(self) -> str:
        """One line: ``severity code file image=.. annotation=..: message``."""
        where = f" image={self.image_id}" if self.image_id is not None else ""
        where += f" annotation={self.annotation_id}" if self.annotation_id is not None else ""
        return f"{self.severity} {self.code} {self.file}{where}: {self.message}"

    def to_dict(self) -> dict:
        """JSON-ready dict of the problem."""
        return asdict(self)


@dataclass
class ValidationReport:
    """All problems of a data set; ``ok`` when there is no error (warnings allowed)."""

    path: str
    problems: list[Problem] = field(default_factory=list)
    checked_images: bool = True

    @property
    def errors(self) -> list[Problem]:
        """Problems of severity ``error`` (they make ``validate`` exit 2)."""
        return [p for p in self.problems if p.severity == ERROR]

    @property
    def warnings(self) -> list[Problem]:
        """Problems of severity ``warning`` (printed, exit 0)."""
        return [p for p in self.problems if p.severity == WARNING]

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return not self.errors

    def counts(self) -> dict[str, int]:
        """problem code -> number of problems, in registry order."""
        c = Counter(p.code for p in self.problems)
        return {code: c[code] for code in CODES if c[code]} | {k: v for k, v in c.items() if k not in CODES}

    def by_code(self, code: str) -> list[Problem]:
        """Problems with this code, in detection order."""
        return [p for p in self.problems if p.code == code]

    def to_dict(self) -> dict:
        """JSON-ready report: totals, counts per code and every problem."""
        return {
            "path": self.path,
            "ok": self.ok,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "checked_images": self.checked_images,
            "counts": self.counts(),
            "problems": [p.to_dict() for p in self.problems],
        }


class _Ctx:
    """What the checks share: the data set, file names for messages, and decoded-once RLE facts."""

    def __init__(self, ds: RecordSet, check_images: bool, files: bool | None = None):
        self.ds = ds
        self.check_images = check_images
        self.files = check_images if files is None else files  # look at the file system (no pixels)
        self.json_file = str(ds.path) if ds.path is not None else "<memory>"
        self.problems: list[Problem] = []
        self.image_sizes: dict[Any, tuple[int, int]] = {}  # actual file sizes, when checked
        self.image_files: dict[Any, str] = {}  # image id -> path of a regular file inside the root
        #: (ann id, record, RLE bytes) of well-formed RLEs whose size agrees with their image (mask checks)
        self.good_rles: list[tuple[Any, dict, dict]] = []
        self.bad_boxes: set[Any] = set()  # annotations whose bbox is structurally invalid
        self.keep_rles = True  # the mask checks follow (validate), so keep ``good_rles``

    def add(
        self,
        code: str,
        message: str,
        image_id: Any = None,
        annotation_id: Any = None,
        file: str | None = None,
        **details: Any,
    ) -> None:
        self.problems.append(
            Problem(
                code, CODES[code].severity, file or self.json_file, image_id, annotation_id, message, details
            )
        )

    def json_hw(self, image_id: Any) -> tuple[int, int] | None:
        im = self.ds.images.get(image_id)
        if im is None:
            return None
        h, w = im.get("height"), im.get("width")
        if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0:
            return h, w
        return None


#: every check, in report order; STRUCTURAL: the cheap subset run on every load (no pixels, no RLE decoding)
CHECKS: list[Callable[[_Ctx], None]] = []
STRUCTURAL: list[Callable[[_Ctx], None]] = []


def _check(structural: bool = False) -> Callable[[Callable[[_Ctx], None]], Callable[[_Ctx], None]]:
    def deco(fn: Callable[[_Ctx], None]) -> Callable[[_Ctx], None]:
        CHECKS.append(fn)
        if structural:
            STRUCTURAL.append(fn)
        return fn

    return deco


@_check(structural=True)
def _load_problems(ctx: _Ctx) -> None:
    """Problems the loader found while indexing (ids, degenerate polygons, unreadable RLE)."""
    for code, message, d in ctx.ds.load_problems:
        kind = d.get("kind")
        if code == "duplicate_id":
            code = f"duplicate_{kind}_id"
        iid = d.get("image_id") if kind != "image" else d.get("id")
        aid = d.get("annotation_id") if kind != "annotation" else d.get("id")
        prefix = f"annotation {d.get('annotation_id')}: "
        message = message[len(prefix) :] if message.startswith(prefix) else message
        if code in CODES:
            ctx.add(
                code,
                message,
                iid,
                aid,
                **{k: v for k, v in d.items() if k not in ("image_id", "annotation_id")},
            )


@_check(structural=True)
def _ids(ctx: _Ctx) -> None:
    """Ids of every table are integers (strings, floats and booleans are refused)."""
    for name in TABLES:
        table = getattr(ctx.ds, name)
        if all(type(k) is int for k in table):
            continue
        kind = "category" if name == "categories" else name[:-1]
        for rid in table:
            if type(rid) is not int:
                iid = rid if kind == "image" else table[rid].get("image_id")
                ctx.add(
                    "id_not_integer",
                    f"{kind} id {rid!r} is a {type(rid).__name__}, not an integer",
                    iid,
                    rid if kind == "annotation" else None,
                    kind=kind,
                )


@_check(structural=True)
def _categories(ctx: _Ctx) -> None:
    names = defaultdict(list)
    for cid, c in ctx.ds.categories.items():
        if not isinstance(c.get("name"), str) or not c.get("name"):
            ctx.add(
                "category_no_name", f"category {cid!r} has no name (got {c.get('name')!r})", category_id=cid
            )
            continue
        names[c.get("name")].append(cid)
    for name, ids in names.items():
        if len(ids) > 1:
            ctx.add("duplicate_category_name", f"categories {ids} share the name {name!r}", ids=ids)


@_check(structural=True)
def _images(ctx: _Ctx) -> None:
    """Sizes in the JSON, file names inside the root and, with ``ctx.files``, each file present (lstat only)."""
    ds = ctx.ds
    if not ds.images:
        ctx.add("no_images", "the data set has no images (nothing to train on, show or score)")
    limit = max_image_pixels()
    inside = _InsideRoot(ds.root) if ds.root is not None else None
    for iid, im in ds.images.items():
        h, w = im.get("height"), im.get("width")
        if not (type(h) is int and type(w) is int and h > 0 and w > 0):
            ctx.add("image_bad_size", f"height/width {h!r}x{w!r} invalid", iid)
        elif h * w > limit:
            ctx.add("too_many_pixels", f"height x width {h}x{w} is more than {limit} pixels", iid)
        name = im.get("file_name")
        if not isinstance(name, str) or not name:
            ctx.add("image_no_file_name", "no file_name", iid)
            continue
        if inside is None:
            continue
        path = inside.path(name, ctx.files)
        if isinstance(path, DataError):
            ctx.add("file_name_escapes_root", str(path).split(": ", 1)[-1], iid)
            continue
        if not ctx.files:
            continue
        try:
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):  # a link: it must resolve inside the root (check_inside says why not)
                path = str(check_inside(inside.root, name))
                mode = os.stat(path).st_mode
        except DataError as e:
            ctx.add("file_name_escapes_root", str(e).split(": ", 1)[-1], iid)
            continue
        except OSError:
            ctx.add("image_missing", f"image file {name!r} not found", iid, file=path)
            continue
        if not stat.S_ISREG(mode):
            what = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
            ctx.add("image_missing", f"image file {name!r} is {what}", iid, file=path)
            continue
        ctx.image_files[iid] = path


class _InsideRoot:
    """``io.check_inside`` for many file names: the real path of each folder is resolved once.

    Why: resolving every file costs a system call per path component (too slow for a load of 10^4 frames).
    A relative name without ``..`` whose folder resolves inside the root is inside, unless the file itself
    is a link (the caller's ``lstat`` sends links to ``check_inside``). Anything else goes to
    ``check_inside``, which gives the verdict.
    """

    def __init__(self, root: Path):
        self.root = str(root)
        self.prefix = os.path.join(self.root, "")
        self.real = os.path.realpath(root)
        self.folders: dict[str, bool] = {}

    def path(self, name: str, files: bool) -> str | DataError:
        if ".." not in name and not os.path.isabs(name):
            if not files:
                return self.prefix + name
            folder = name.rpartition("/")[0]
            ok = self.folders.get(folder)
            if ok is None:
                real = os.path.realpath(self.prefix + folder)
                ok = self.folders[folder] = real == self.real or real.startswith(self.real + os.sep)
            if ok:
                return self.prefix + name
        try:
            return str(check_inside(self.root, name))
        except DataError as e:
            return e


@_check()
def _image_pixels(ctx: _Ctx) -> None:
    """Each present image file opens (header + integrity) and has the size the JSON gives."""
    if not ctx.check_images:
        return
    for iid, path in ctx.image_files.items():
        try:
            actual = _read_size(Path(path))
        except DataError as e:
            ctx.add("image_unreadable", f"cannot read image ({str(e).split(': ', 1)[-1]})", iid, file=path)
            continue
        ctx.image_sizes[iid] = actual
        hw = ctx.json_hw(iid)
        if hw is not None and actual != hw:
            ctx.add(
                "image_size_mismatch",
                f"file is {actual[0]}x{actual[1]} (h x w), JSON says {hw[0]}x{hw[1]}",
                iid,
                file=path,
                actual=list(actual),
                json=list(hw),
            )


def _read_size(path: Path) -> tuple[int, int]:
    """(h, w) from the header, after PIL's integrity check (catches truncated PNGs and non-images)."""
    from PIL import Image

    h, w = image_size(path)
    try:
        with Image.open(path) as im:
            im.verify()
    except Exception as e:
        raise DataError(f"corrupt image ({e.__class__.__name__})", path) from None
    return h, w


@_check(structural=True)
def _annotations(ctx: _Ctx) -> None:
    """References, segmentation form, RLE counts form and size against the image, boxes (no decoding)."""
    if _annotations_sound(ctx):
        return
    ds = ctx.ds
    images, cats = ds.images, ds.categories
    load_bad = {
        p[2].get("annotation_id") for p in ds.load_problems if p[0] in ("rle_invalid", "polygon_invalid")
    }
    rle_anns: list[tuple[Any, dict]] = []  # annotations whose segmentation has the form of an RLE
    for aid, a in ds.annotations.items():
        iid = a.get("image_id")
        known = _contains(images, iid)
        if not known:
            ctx.add("annotation_unknown_image", f"image id {iid!r} does not exist", iid, aid)
        if not _contains(cats, a.get("category_id")):
            ctx.add(
                "unknown_category",
                f"annotation {aid!r} has unknown category id {a.get('category_id')!r} "
                f"(categories: {sorted(cats, key=str)})",
                iid,
                aid,
            )
        seg = a.get("segmentation")
        if type(seg) is dict and type(seg.get("counts")) is str and _valid_size(seg.get("size")):
            rle_anns.append((aid, a))
        elif isinstance(seg, list):  # left as polygons by the loader: image unknown or without size
            if known and aid not in load_bad:
                ctx.add("segmentation_invalid", "polygons on an image without a valid size", iid, aid)
        elif aid not in load_bad:
            ctx.add(
                "segmentation_invalid",
                f"segmentation is not RLE or polygons ({type(seg).__name__})",
                iid,
                aid,
            )
        box = a.get("bbox")
        if box is not None and not _sound_box(box):
            ctx.bad_boxes.add(aid)
            ctx.add(
                "bbox_invalid",
                f"bbox {box!r} is not [x, y, width >= 0, height >= 0] of finite numbers",
                iid,
                aid,
            )
    sane = rle_utils.counts_look_valid([a["segmentation"]["counts"] for _, a in rle_anns])
    for (aid, a), ok in zip(rle_anns, sane.tolist()):
        iid, seg = a.get("image_id"), a["segmentation"]
        if not ok:
            ctx.add(
                "rle_invalid",
                "RLE counts unreadable (empty, a character outside COCO's alphabet or a value cut off)",
                iid,
                aid,
            )
            continue
        h, w = seg["size"]
        hw = ctx.json_hw(iid) if known else None
        if hw is not None and (h, w) != hw:
            ctx.add(
                "rle_size_mismatch",
                f"RLE size {h}x{w} != image size {hw[0]}x{hw[1]}",
                iid,
                aid,
                rle_size=[h, w],
            )
            continue
        ctx.good_rles.append((aid, a, {"size": [h, w], "counts": seg["counts"].encode("ascii")}))


@_check()
def _masks(ctx: _Ctx) -> None:
    """RLE run lengths sum to the size; masks not empty; bbox and area agree with the mask; class overlaps."""
    totals = rle_utils.counts_totals([r for _, _, r in ctx.good_rles])
    good: list[tuple[Any, dict, dict]] = []
    for (aid, a, r), total in zip(ctx.good_rles, totals.tolist()):
        h, w = r["size"]
        if total < 0:
            ctx.add(
                "rle_invalid",
                "RLE counts unreadable (bad character, truncated value or negative run)",
                a.get("image_id"),
                aid,
            )
        elif total != h * w:
            ctx.add(
                "rle_invalid",
                f"RLE run lengths sum to {total}, size {h}x{w} needs {h * w}",
                a.get("image_id"),
                aid,
            )
        else:
            good.append((aid, a, r))
    if not good:
        return
    rles = [g[2] for g in good]
    areas = rle_utils.areas(rles)
    boxes = rle_utils.bboxes(rles)
    given = np.array(
        [a.get("bbox") if _is_box(a.get("bbox")) else [np.nan] * 4 for _, a, _ in good], dtype=np.float64
    )
    corners = lambda b: np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)  # noqa: E731
    off = np.abs(corners(given) - corners(boxes)).max(axis=1)  # NaN where the bbox is malformed
    given_area = np.array(
        [a.get("area") if isinstance(a.get("area"), (int, float)) else np.nan for _, a, _ in good]
    )
    area_bad = ~(np.abs(given_area - areas) <= np.maximum(1.0, AREA_TOLERANCE * areas))
    box_bad = ~(off <= BBOX_TOLERANCE_PX)
    for n in np.flatnonzero((areas == 0) | box_bad | area_bad):
        aid, a, _ = good[n]
        iid, box = a.get("image_id"), boxes[n].tolist()
        if areas[n] == 0:
            ctx.add("empty_mask", "mask has no foreground pixel", iid, aid)
            continue
        if box_bad[n] and aid in ctx.bad_boxes:
            pass  # reported as bbox_invalid
        elif box_bad[n] and np.isnan(off[n]):
            ctx.add(
                "bbox_mismatch", f"bbox {a.get('bbox')!r} missing or malformed; mask box is {box}", iid, aid
            )
        elif box_bad[n]:
            ctx.add("bbox_mismatch", f"bbox {a['bbox']} vs mask box {box} (off by {off[n]:g} px)", iid, aid)
        if area_bad[n]:
            ctx.add("area_mismatch", f"area {a.get('area')!r} vs {int(areas[n])} mask pixels", iid, aid)
    _class_overlaps(ctx, good, areas, boxes)


#: the characters of COCO's compressed counts: "0" .. "o"
_RLE_FIRST, _RLE_LAST = 48, 111


def _annotations_sound(ctx: _Ctx) -> bool:
    """True when every annotation passes ``_annotations`` (then it has nothing to report), tested in bulk.

    Why: the load of every command runs this; C-level passes (``map``, ``set``, one ``translate`` over all
    counts) cost a fraction of a per-record loop. Anything unusual returns False and the per-record loop
    names the problems; ``ctx.good_rles`` is filled here only when the mask checks follow (``validate``).
    Counts are checked for their alphabet only: a wrong sum of runs is refused when a mask is decoded.
    """
    ds = ctx.ds
    anns = list(ds.annotations.values())
    if not anns:
        return True
    if any(p[0] in ("rle_invalid", "polygon_invalid") for p in ds.load_problems):
        return False
    sizes = {}
    for iid, im in ds.images.items():
        h, w = im.get("height"), im.get("width")
        if type(h) is int and type(w) is int and h > 0 and w > 0:
            sizes[iid] = [h, w]
    try:
        refs = list(map(itemgetter("image_id"), anns))
        if not (
            set(refs) <= sizes.keys() and set(map(itemgetter("category_id"), anns)) <= ds.categories.keys()
        ):
            return False
        segs = list(map(itemgetter("segmentation"), anns))  # polygons / None: TypeError below
        seg_sizes = list(map(itemgetter("size"), segs))
        one = next(iter(sizes.values()))
        if len(sizes) * [one] == list(sizes.values()):  # one image size (a video): count, no second list
            if seg_sizes.count(one) != len(seg_sizes):
                return False
        elif seg_sizes != list(map(sizes.__getitem__, refs)):
            return False
        joined = "".join(map(itemgetter("counts"), segs))  # uncompressed (list) counts: TypeError
        if not joined.isascii():
            return False
        chars = np.frombuffer(joined.encode("ascii"), dtype=np.uint8)
        if chars.size and (chars.min() < _RLE_FIRST or chars.max() > _RLE_LAST):
            return False
        boxes = list(map(itemgetter("bbox"), anns))  # a missing bbox (allowed): KeyError, checked one by one
        if set(map(len, boxes)) != {4}:  # also None (TypeError)
            return False
        flat = list(chain.from_iterable(boxes))
        total = sum(flat)  # strings, None, lists: TypeError
        if not (min(flat[2::4]) >= 0 and min(flat[3::4]) >= 0 and total - total == 0):
            return False
    except (KeyError, TypeError, IndexError):  # a missing key, an unhashable id, an empty counts string
        return False
    if ctx.keep_rles:
        ctx.good_rles = [
            (
                aid,
                a,
                {"size": a["segmentation"]["size"], "counts": a["segmentation"]["counts"].encode("ascii")},
            )
            for aid, a in ds.annotations.items()
        ]
    return True


def _contains(table: dict, key: Any) -> bool:
    try:
        return key in table
    except TypeError:  # an unhashable reference (a list, an object) names nothing
        return False


def _sound_box(box: Any) -> bool:
    """``[x, y, w, h]`` of finite numbers with ``w, h >= 0`` (cheap: no numpy per record)."""
    try:
        x, y, w, h = box
        total = x + y + w + h
        return bool(w >= 0 and h >= 0 and total - total == 0)  # NaN / inf fail the last test
    except (TypeError, ValueError):
        return False


def _class_overlaps(
    ctx: _Ctx, good: list[tuple[Any, dict, dict]], areas: np.ndarray, boxes: np.ndarray
) -> None:
    """Warn where masks of different categories overlap on an image (RLE intersections, no decoding).

    Category pairs whose bounding boxes do not intersect are skipped before any RLE work.
    """
    per_image: dict[Any, dict[Any, list[int]]] = defaultdict(lambda: defaultdict(list))
    for n, (_aid, a, _r) in enumerate(good):
        if areas[n] > 0:
            per_image[a.get("image_id")][a.get("category_id")].append(n)
    x0, y0 = boxes[:, 0], boxes[:, 1]
    x1, y1 = x0 + boxes[:, 2], y0 + boxes[:, 3]
    for iid, by_cat in per_image.items():
        if len(by_cat) < 2:
            continue
        cats = list(by_cat)
        ext = [(x0[m].min(), y0[m].min(), x1[m].max(), y1[m].max()) for m in (by_cat[c] for c in cats)]
        unions: dict[int, dict] = {}
        for i in range(len(cats)):
            for j in range(i + 1, len(cats)):
                a, b = ext[i], ext[j]
                if a[0] >= b[2] or b[0] >= a[2] or a[1] >= b[3] or b[1] >= a[3]:
                    continue
                for k in (i, j):
                    if k not in unions:
                        members = [good[n][2] for n in by_cat[cats[k]]]
                        unions[k] = mask_utils.merge(members) if len(members) > 1 else members[0]
                inter = int(mask_utils.area(mask_utils.merge([unions[i], unions[j]], intersect=True)))
                if inter:
                    ctx.add(
                        "class_overlap",
                        f"categories {cats[i]} and {cats[j]} overlap on {inter} px",
                        iid,
                        categories=[cats[i], cats[j]],
                        pixels=inter,
                    )


def _valid_size(size: Any) -> bool:
    return (
        isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)
    )


def _is_box(b: Any) -> bool:
    return isinstance(b, (list, tuple)) and len(b) == 4 and all(isinstance(v, (int, float)) for v in b)


@_check(structural=True)
def _frames(ctx: _Ctx) -> None:
    ds = ctx.ds
    for vid, iids in ds.frames_by_video.items():
        missing = [i for i in iids if "frame_index" not in ds.images[i]]
        for i in missing:
            ctx.add("frame_index_missing", f"frame of video {vid} has no frame_index", i, video_id=vid)
        idx: dict[int, list[Any]] = defaultdict(list)
        for i in iids:
            fi = ds.images[i].get("frame_index")
            if fi is None:
                continue
            if not isinstance(fi, int) or isinstance(fi, bool) or fi < 0:
                ctx.add(
                    "frame_index_invalid",
                    f"frame_index {fi!r} of video {vid} is not a non-negative integer",
                    i,
                    video_id=vid,
                )
                continue
            idx[fi].append(i)
        for fi, same in idx.items():
            if len(same) > 1:
                ctx.add(
                    "frame_index_duplicate",
                    f"video {vid}: frame_index {fi} used by images {same}",
                    same[1],
                    video_id=vid,
                    frame_index=fi,
                    images=same,
                )
        if idx and not missing:
            absent = sorted(set(range(max(idx) + 1)) - set(idx))
            if absent:
                shown = ", ".join(map(str, absent[:10])) + (" ..." if len(absent) > 10 else "")
                ctx.add(
                    "frame_index_gap",
                    f"video {vid}: {len(absent)} frame index(es) missing from 0..{max(idx)} ({shown})",
                    video_id=vid,
                    absent=absent[:100],
                )


def validate(dataset_or_path: RecordSet | str | Path, check_images: bool = True) -> ValidationReport:
    """Run every check; image files are looked at and opened (header + integrity) only when ``check_images``.

    A path that cannot be loaded at all (missing, malformed JSON) raises ``DataError``; a path is loaded
    without the load-time checks (this reports every problem instead of refusing at the first).
    """
    ds = dataset_or_path if isinstance(dataset_or_path, RecordSet) else RecordSet.load(dataset_or_path)
    ctx = _Ctx(ds, check_images)
    for check in CHECKS:
        check(ctx)
    log.info("validated %s: %d problem(s)", ctx.json_file, len(ctx.problems))
    return ValidationReport(ctx.json_file, ctx.problems, check_images)


def check_structure(ds: RecordSet, files: bool = True) -> list[Problem]:
    """Problems found by the cheap structural subset of the checks (no pixels read, no RLE decoded).

    ``files``: also look at the file system (file names resolving inside the root, each image file there).
    """
    ctx = _Ctx(ds, check_images=False, files=files)
    ctx.keep_rles = False
    for check in STRUCTURAL:
        check(ctx)
    return ctx.problems


#: structural problems named in the one-line refusal of a load
SHOWN_PROBLEMS = 3


def require_sound(ds: RecordSet, files: bool = True, allow: Collection[str] = ()) -> None:
    """Raise one ``DataError`` naming the first structural errors (file, item, problem); warnings pass.

    ``allow``: codes a caller handles itself (an importer that drops and reports degenerate polygon rings).
    """
    errors = [p for p in check_structure(ds, files) if p.severity == ERROR and p.code not in allow]
    if not errors:
        return
    first = errors[0].file
    parts = []
    for p in errors[:SHOWN_PROBLEMS]:
        item = _item(p)
        text = p.message if not item or p.message.startswith(item) else f"{item}: {p.message}"
        parts.append(f"{p.file + ': ' if p.file != first else ''}{text} [{p.code}]")
    more = f"; and {len(errors) - SHOWN_PROBLEMS} more problem(s)" if len(errors) > SHOWN_PROBLEMS else ""
    raise DataError(
        f"{'; '.join(parts)}{more} (`scopeseg validate` lists every problem; --no-check skips these checks)",
        first,
    )


def _item(p: Problem) -> str:
    """What a problem is about, for messages: ``annotation 5``, ``image 2`` or nothing (the file)."""
    if p.annotation_id is not None:
        return f"annotation {p.annotation_id!r}"
    return f"image {p.image_id!r}" if p.image_id is not None else ""


# ---------------------------------------------------------------------------------------------- fix
FIXERS: dict[str, Callable[[RecordSet, list[Problem]], Iterator[dict]]] = {}


def _fixer(*codes: str):
    def deco(fn):
        for c in codes:
            FIXERS[c] = fn
        return fn

    return deco


def _act(code: str, action: str, image_id: Any = None, annotation_id: Any = None) -> dict:
    return {"code": code, "image_id": image_id, "annotation_id": annotation_id, "action": action}


@_fixer("bbox_mismatch", "bbox_invalid", "area_mismatch")
def _fix_box_area(ds: RecordSet, probs: list[Problem]) -> Iterator[dict]:
    for p in probs:
        a = ds.annotations.get(p.annotation_id)
        if a is None:
            continue
        try:
            r = ds.rle(a)
        except DataError:  # no usable mask to take the box from: left for a person
            continue
        if p.code in ("bbox_mismatch", "bbox_invalid"):
            old, a["bbox"] = a.get("bbox"), rle_utils.bbox(r)
            yield _act(p.code, f"bbox {old} -> {a['bbox']}", p.image_id, p.annotation_id)
        else:
            old, a["area"] = a.get("area"), float(rle_utils.area(r))
            yield _act(p.code, f"area {old} -> {a['area']:g}", p.image_id, p.annotation_id)


@_fixer("empty_mask")
def _fix_empty(ds: RecordSet, probs: list[Problem]) -> Iterator[dict]:
    for p in probs:
        if ds.annotations.pop(p.annotation_id, None) is not None:
            yield _act(p.code, "dropped empty annotation", p.image_id, p.annotation_id)


@_fixer("polygon_too_few_points")
def _fix_polygons(ds: RecordSet, probs: list[Problem]) -> Iterator[dict]:
    for p in probs:  # the loader rasterised only the valid rings; the result is what gets written
        yield _act(
            p.code,
            f"dropped {p.details.get('rings', 1)} polygon ring(s) with < 3 points",
            p.image_id,
            p.annotation_id,
        )


@_fixer("missing_id")
def _fix_missing_id(ds: RecordSet, probs: list[Problem]) -> Iterator[dict]:
    for p in probs:
        yield _act(
            p.code, f"{p.details.get('kind')} given id {p.details.get('id')}", p.image_id, p.annotation_id
        )


@_fixer("duplicate_image_id", "duplicate_annotation_id", "duplicate_category_id", "duplicate_video_id")
def _fix_duplicates(ds: RecordSet, probs: list[Problem]) -> Iterator[dict]:
    for name in TABLES:
        kind = name[:-1] if name != "categories" else "category"
        code = f"duplicate_{kind}_id"
        if not any(p.code == code for p in probs):
            continue
        table, kept = getattr(ds, name), []
        for rec in ds.duplicates.get(name, []):
            if rec == table.get(rec.get("id")):
                iid = rec["id"] if kind == "image" else rec.get("image_id")
                aid = rec["id"] if kind == "annotation" else None
                yield _act(code, f"dropped exact copy of {kind} {rec['id']}", iid, aid)
            else:
                kept.append(rec)
        ds.duplicates[name] = kept


@_fixer("image_size_mismatch")
def _fix_image_size(ds: RecordSet, probs: list[Problem]) -> Iterator[dict]:
    for p in probs:
        im = ds.images.get(p.image_id)
        actual = p.details.get("actual")
        if im is None or not actual:
            continue
        sizes = {
            tuple(a["segmentation"]["size"])
            for a in ds.image_anns(p.image_id)
            if isinstance(a.get("segmentation"), dict)
        }
        if sizes <= {tuple(actual)}:  # every mask agrees with the file: the JSON size was wrong
            old = (im.get("height"), im.get("width"))
            im["height"], im["width"] = actual
            yield _act(
                p.code,
                f"height x width {old[0]}x{old[1]} -> {actual[0]}x{actual[1]} (file and masks agree)",
                p.image_id,
            )


@_fixer("frame_index_missing", "frame_index_duplicate", "frame_index_gap")
def _fix_frames(ds: RecordSet, probs: list[Problem]) -> Iterator[dict]:
    for vid in dict.fromkeys(p.details.get("video_id") for p in probs):
        iids = ds.frames_by_video.get(vid, [])
        order = _unambiguous_order(ds, iids)
        if order is None:
            continue
        changed = 0
        for n, iid in enumerate(order):
            if ds.images[iid].get("frame_index") != n:
                ds.images[iid]["frame_index"] = n
                changed += 1
        codes = sorted({p.code for p in probs if p.details.get("video_id") == vid})
        yield _act(
            ",".join(codes), f"video {vid}: renumbered {changed} of {len(order)} frames 0..{len(order) - 1}"
        )


def _natural_key(name: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _unambiguous_order(ds: RecordSet, iids: list[Any]) -> list[Any] | None:
    """Frame order when it is certain: distinct valid indices, or else distinct file names whose natural
    order agrees with every index that is present; ``None`` when neither holds."""
    ims = [ds.images[i] for i in iids]
    fis = [im.get("frame_index") for im in ims]
    valid = all(isinstance(f, int) and not isinstance(f, bool) and f >= 0 for f in fis)
    if valid and len(set(fis)) == len(fis):
        return sorted(iids, key=lambda i: ds.images[i]["frame_index"])
    names = [str(im.get("file_name", "")) for im in ims]
    if len(set(names)) != len(names) or not all(f is None or (isinstance(f, int) and f >= 0) for f in fis):
        return None
    order = sorted(iids, key=lambda i: _natural_key(str(ds.images[i].get("file_name", ""))))
    known = [ds.images[i].get("frame_index") for i in order if ds.images[i].get("frame_index") is not None]
    return order if all(a <= b for a, b in zip(known, known[1:])) else None


def fix(dataset: RecordSet, report: ValidationReport | None = None) -> RecordSet:
    """A repaired copy: applies only unambiguous repairs (see ``CODES[...].fixable``).

    The copy's ``fix_log`` lists each action as ``{code, image_id, annotation_id, action}``; problems with
    no safe repair (unknown category, size mismatch of masks, differing duplicates ...) are left for a person.
    """
    report = report if report is not None else validate(dataset, check_images=False)
    out = dataset.copy()
    by_code: dict[str, list[Problem]] = defaultdict(list)
    for p in report.problems:
        by_code[p.code].append(p)
    actions: list[dict] = []
    done: set[int] = set()
    for code in list(by_code):
        fn = FIXERS.get(code)
        if fn is None or id(fn) in done:
            continue
        done.add(id(fn))
        group = [p for c, ps in by_code.items() if FIXERS.get(c) is fn for p in ps]
        actions.extend(fn(out, group))
        out.reindex()
    # keep the load problems no fixer resolved (differing duplicates, unreadable RLE / polygons)
    out.load_problems = [
        lp for lp in out.load_problems
        if (lp[0] == "duplicate_id" and not lp[2].get("identical")) or lp[0] in ("rle_invalid", "polygon_invalid")
    ]  # fmt: skip
    out.fix_log = actions
    log.info("fix: %d action(s)", len(actions))
    return out
