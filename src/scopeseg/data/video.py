"""Frames grouped by video: a video's frames in order, and fixed-length clips for video models.

Frame order is ``frame_index`` (set on import, see ``records``); the record set keeps the per-video order in
``frames_by_video`` so these are look-ups, not sorts.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ..errors import DataError
from .records import RecordSet


def video_frames(ds: RecordSet, video_id: int) -> list[int]:
    """Image ids of a video in frame order; ``DataError`` for an unknown video."""
    if video_id not in ds.videos and video_id not in ds.frames_by_video:
        raise DataError(f"unknown video id {video_id}", ds.path)
    return list(ds.frames_by_video.get(video_id, []))


def iter_video(ds: RecordSet, video_id: int) -> Iterator[dict]:
    """Image records of a video in frame order."""
    for iid in video_frames(ds, video_id):
        yield ds.images[iid]


def iter_videos(ds: RecordSet) -> Iterator[tuple[int, list[int]]]:
    """(video id, image ids in frame order) for every video, in ``videos`` table order."""
    for vid in ds.videos:
        yield vid, video_frames(ds, vid)


def clips(
    ds: RecordSet, length: int, stride: int | None = None, video_ids: Iterable[int] | None = None
) -> list[list[int]]:
    """Fixed-length windows of consecutive frames (image ids), per video; short videos are skipped.

    ``stride`` defaults to ``length`` (no overlap); windows never cross a video boundary.
    """
    if length < 1:
        raise DataError(f"clip length must be >= 1, got {length}")
    stride = stride or length
    if stride < 1:
        raise DataError(f"clip stride must be >= 1, got {stride}")
    out = []
    for vid in video_ids if video_ids is not None else ds.videos:
        frames = video_frames(ds, vid)
        for start in range(0, len(frames) - length + 1, stride):
            out.append(frames[start : start + length])
    return out
