"""Set operations on record sets: subset, filter, splits by video, merge, relocate.

Every operation returns a new record set of the caller's class (or edits the one given, where named), so
a ``CocoDataset`` in gives a ``CocoDataset`` out. Splits group frames by video: no video crosses splits.
"""

from __future__ import annotations

import copy
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..io import check_output
from .records import R, RecordSet, output_json_path


def subset(ds: R, image_ids: Iterable[int]) -> R:
    """A new data set with only these images, their annotations and videos; categories kept."""
    keep = list(dict.fromkeys(i for i in image_ids if i in ds.images))
    images = [copy.deepcopy(ds.images[i]) for i in keep]
    anns = [copy.deepcopy(ds.annotations[a]) for i in keep for a in ds.anns_by_image.get(i, [])]
    vids = {im.get("video_id") for im in images} - {None}
    videos = [copy.deepcopy(v) for vid, v in ds.videos.items() if vid in vids]
    return type(ds)(
        images, anns, copy.deepcopy(list(ds.categories.values())), videos, info=ds.info,
        licenses=ds.licenses, root=ds.root, path=ds.path, extra=copy.deepcopy(ds.extra),
    )  # fmt: skip


def filter_dataset(
    ds: R,
    image_ids: Iterable[int] | None = None,
    category_ids: Iterable[int] | None = None,
    video_ids: Iterable[int] | None = None,
    split: str | None = None,
    keep_empty: bool = True,
    category_names: Iterable[str] | None = None,
) -> R:
    """Subset by images / videos / split; ``category_ids`` (or names) drops other categories' annotations.

    ``keep_empty=False`` also drops images left without annotations by the category filter.
    """
    ids = list(ds.images)
    if image_ids is not None:
        s = set(image_ids)
        ids = [i for i in ids if i in s]
    if video_ids is not None:
        s = set(video_ids)
        unknown = s - set(ds.videos)
        if unknown:
            raise DataError(
                f"unknown video ids {sorted(unknown, key=str)}; videos: {sorted(ds.videos)}", ds.path
            )
        ids = [i for i in ids if ds.images[i].get("video_id") in s]
    if split is not None:
        names = splits(ds)
        if split not in names:
            raise DataError(f"no images in split {split!r}; splits: {sorted(names)}", ds.path)
        ids = [i for i in ids if ds.images[i].get("split", "all") == split]
    out = subset(ds, ids)
    if category_names is not None:
        category_ids = [*(category_ids or []), *(ds.category_id(n) for n in category_names)]
    if category_ids is not None:
        cats = set(category_ids)
        unknown = cats - set(ds.categories)
        if unknown:
            raise DataError(f"unknown category ids {sorted(unknown)}", ds.path)
        out.annotations = {k: a for k, a in out.annotations.items() if a.get("category_id") in cats}
        out.categories = {k: c for k, c in out.categories.items() if k in cats}
        if not keep_empty:
            has = {a.get("image_id") for a in out.annotations.values()}
            out.images = {k: im for k, im in out.images.items() if k in has}
            used = {im.get("video_id") for im in out.images.values()}
            out.videos = {k: v for k, v in out.videos.items() if k in used}
        out.reindex()
    return out


def splits(ds: RecordSet) -> dict[str, list[int]]:
    """split name -> image ids (images without ``split`` are under ``"all"``)."""
    out: dict[str, list[int]] = defaultdict(list)
    for iid, im in ds.images.items():
        out[im.get("split", "all")].append(iid)
    return dict(out)


def _id_key(v: Any) -> tuple:
    """Sort key for ids of mixed types: ints numerically first, then anything else by text."""
    return (0, v, "") if isinstance(v, int) else (1, 0, str(v))


def assign_splits(
    images: dict[Any, dict], fractions: dict[str, float], seed: int = 0
) -> dict[str, list[int]]:
    """Write ``split`` on every image record of an ``images`` table, grouping by video so no video crosses
    splits.

    Images without a video are their own group. Groups are shuffled with ``seed`` (same seed, same
    split) and each goes to the split furthest below its target share of frames, so every split with a
    positive fraction gets at least one group when there are enough groups. Takes the table, not a data set,
    so a writer can split what it is about to write.
    """
    if not fractions or any(f < 0 for f in fractions.values()) or sum(fractions.values()) <= 0:
        raise DataError(f"split fractions must be >= 0 and sum to > 0, got {fractions}")
    total_frac = sum(fractions.values())
    groups: dict[Any, list[int]] = defaultdict(list)
    for iid, im in images.items():
        vid = im.get("video_id")
        groups[("v", vid) if vid is not None else ("i", iid)].append(iid)
    keys = sorted(groups, key=lambda k: (k[0], *_id_key(k[1])))
    random.Random(seed).shuffle(keys)
    names = [n for n in fractions if fractions[n] > 0]
    target = {n: fractions[n] / total_frac * len(images) for n in names}
    got = dict.fromkeys(names, 0)
    out: dict[str, list[int]] = {n: [] for n in fractions}
    for k in keys:
        # an empty split first (in the order given), then the one furthest below its target
        empty = [n for n in names if got[n] == 0]
        name = empty[0] if empty else max(names, key=lambda n: (target[n] - got[n]) / target[n])
        for iid in groups[k]:
            images[iid]["split"] = name
        out[name].extend(groups[k])
        got[name] += len(groups[k])
    return out


def split(ds: R, fractions: dict[str, float], seed: int = 0) -> dict[str, R]:
    """Split by video into separate data sets (see ``assign_splits``); images carry ``split``."""
    whole = ds.copy()
    parts = assign_splits(whole.images, fractions, seed)
    return {name: subset(whole, ids) for name, ids in parts.items()}


def merge(datasets: Sequence[RecordSet], root: str | Path | None = None, cls: type[R] = RecordSet) -> R:
    """Concatenate data sets into a new ``cls``: categories unified by name (first one's ids kept when free),
    images, annotations and videos renumbered (videos are never unified: equal names from different sets
    are different videos); ``file_name`` made relative to ``root`` when given (see ``relocate``)."""
    out = cls(root=root)
    name_to_cid: dict[str, int] = {}
    images: dict[int, dict] = {}
    anns: dict[int, dict] = {}
    for ds in datasets:
        ds = ds.copy()
        if root is not None and ds.root is not None:
            relocate(ds, root)
        cmap: dict[Any, int] = {}
        for cid, c in ds.categories.items():
            name = c.get("name", str(cid))
            if name not in name_to_cid:
                new = cid if isinstance(cid, int) and cid not in out.categories else out.new_id("categories")
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
                raise DataError(f"annotation {aid} has unknown category id {a.get('category_id')}", ds.path)
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


def relocate(ds: RecordSet, root: str | Path) -> None:
    """Rewrite every ``file_name`` of ``ds`` relative to a new root folder (images are not moved).

    Used before writing a copy elsewhere; raises ``DataError`` when an image would lie outside ``root``
    (file names may not escape their data root), so write such copies in a folder above the images.
    """
    root = Path(root).resolve()
    if ds.root is None or Path(ds.root).resolve() == root:
        ds.root = root
        return
    old = Path(ds.root).resolve()
    new_names = {}
    for iid, im in ds.images.items():
        full = (old / str(im.get("file_name", ""))).resolve()
        if not full.is_relative_to(root):
            raise DataError(
                f"image {iid} ({full}) is outside {root}; write the output in a folder that contains the images",
                ds.path,
            )
        new_names[iid] = full.relative_to(root).as_posix()
    for iid, name in new_names.items():
        ds.images[iid]["file_name"] = name
    ds.root = root


def write_relocated(ds: RecordSet, out: str | Path, overwrite: bool = False) -> Path:
    """Save a data set at ``out`` (JSON path or folder) with ``file_name`` rewritten relative to it.

    Changes ``ds`` in place (see ``relocate``); images are not copied, so ``out`` must lie above them. An
    existing annotation file there is refused unless ``overwrite`` (the rule of every command's OUT).
    """
    out_json = check_output(output_json_path(out), overwrite)
    relocate(ds, out_json.parent)
    return ds.save(out_json)
