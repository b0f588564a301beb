"""``CocoDataset``: the canonical record set with its video, set and statistics operations as methods.

Why: scripts and the CLI hold one object (``ds.video_frames(...)``, ``ds.subset(...)``, ``ds.summary()``)
while each operation lives, and is tested, in the module named for its job: ``records`` (tables, indexes,
load/save, masks), ``video`` (frames, clips), ``ops`` (subset, filter, splits, merge, relocate) and
``stats`` (summary). The methods below are those functions.

Loading runs the cheap structural checks (``validate.require_sound``: ids, references, RLE form and sizes,
polygons, boxes, frames, file names) and refuses a broken data set in one line; ``files=True`` adds the image
files (present, inside the root). ``check=False`` loads what is structurally loadable. ``data_checks`` sets
both for a block: commands run with files checked, and ``--no-check`` turns the checks off.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from pathlib import Path

from . import ops, stats, validate, video
from .records import R, RecordSet, _gc_paused

#: (check, files) of loads whose arguments are None; the library default checks records, not files, since
#: an annotation file loads without its images; ``data_checks`` sets both for a block
_CHECKS: ContextVar[tuple[bool, bool]] = ContextVar("scopeseg_data_checks", default=(True, False))


@contextlib.contextmanager
def data_checks(enabled: bool = True, files: bool = True) -> Iterator[None]:
    """Loads inside the block check the structure (``enabled``) and the image files (``files``) unless a
    load says otherwise.

    Why: the CLI wraps every command in it, so a command's ``--no-check`` reaches every load it makes,
    down to training tasks, and commands check image files where the library alone does not.
    """
    token = _CHECKS.set((enabled, enabled and files))
    try:
        yield
    finally:
        _CHECKS.reset(token)


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

    @classmethod
    def load(
        cls: type[R],
        path: str | Path,
        root: str | Path | None = None,
        check: bool | None = None,
        files: bool | None = None,
    ) -> R:
        """Load a COCO(-video) JSON file or a data folder with ``annotations.json``, checked.

        ``check``: run the structural checks and refuse a broken data set; ``files``: the checks include the
        image files (present, inside the root; off for annotation-only sets such as predictions written
        without images). ``None`` takes the setting of ``data_checks`` (checks on, files off by default).
        """
        default_check, default_files = _CHECKS.get()
        with _gc_paused():  # the checks allocate lists of existing records only
            ds = super().load(path, root=root)
            if default_check if check is None else check:
                validate.require_sound(ds, files=default_files if files is None else files)
        return ds

    def assign_splits(self, fractions: dict[str, float], seed: int = 0) -> dict[str, list[int]]:
        """Write ``split`` on every image, grouping by video (``ops.assign_splits`` on ``images``)."""
        return ops.assign_splits(self.images, fractions, seed)

    @classmethod
    def merge(cls, datasets: Sequence[RecordSet], root: str | Path | None = None) -> CocoDataset:
        """Concatenate data sets into a new ``CocoDataset``, categories unified by name (``ops.merge``)."""
        return ops.merge(datasets, root, cls)


def load_dataset(
    path: str | Path,
    split: str | None = None,
    root: str | Path | None = None,
    check: bool | None = None,
    files: bool | None = None,
) -> CocoDataset:
    """Load the canonical data set at ``path`` (JSON or folder), checked (``CocoDataset.load``), optionally
    one split of it."""
    ds = CocoDataset.load(path, root=root, check=check, files=files)
    if split is not None:
        ds = ds.filter(split=split)
    return ds
