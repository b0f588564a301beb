"""``CocoDataset``: the canonical record set with its video, set and statistics operations as methods.

Why: scripts and the CLI hold one object (``ds.video_frames(...)``, ``ds.subset(...)``, ``ds.summary()``)
while each operation lives, and is tested, in the module named for its job: ``records`` (tables, indexes,
load/save, masks), ``video`` (frames, clips), ``ops`` (subset, filter, splits, merge, relocate) and
``stats`` (summary). The methods below are those functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from . import ops, stats, video
from .records import RecordSet


class CocoDataset(RecordSet):
    """In-memory COCO(-video) data set: a ``RecordSet`` plus the operations of ``video``, ``ops``, ``stats``.

    The operations are those modules' functions taking the data set first, bound here as methods.
    """

    # video
    video_frames = video.video_frames
    iter_video = video.iter_video
    iter_videos = video.iter_videos
    clips = video.clips
    # set operations
    subset = ops.subset
    filter = ops.filter_dataset
    splits = ops.splits
    split = ops.split
    relocate = ops.relocate
    # statistics
    summary = stats.summary

    def assign_splits(self, fractions: dict[str, float], seed: int = 0) -> dict[str, list[int]]:
        """Write ``split`` on every image, grouping by video (``ops.assign_splits`` on ``images``)."""
        return ops.assign_splits(self.images, fractions, seed)

    @classmethod
    def merge(cls, datasets: Sequence[RecordSet], root: str | Path | None = None) -> CocoDataset:
        """Concatenate data sets into a new ``CocoDataset``, categories unified by name (``ops.merge``)."""
        return ops.merge(datasets, root, cls)


def load_dataset(path: str | Path, split: str | None = None, root: str | Path | None = None) -> CocoDataset:
    """Load the canonical data set at ``path`` (JSON or folder), optionally one split of it."""
    ds = CocoDataset.load(path, root=root)
    if split is not None:
        ds = ds.filter(split=split)
    return ds
