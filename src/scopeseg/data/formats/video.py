"""Videos without labels (mp4/avi/mkv/... through PyAV) -> frames of a canonical data set, and back.

Each video becomes one ``videos`` record (``fps``, source file, ``stride``); every ``stride``-th decoded
frame is written losslessly as ``images/<video>/<index:06d>.png`` with ``video_id`` and ``frame_index`` = its
0-based index in the video, so masks made later (by a promptable model) line up with the source frames.
Export re-encodes each video's frames as H.264 mp4 (lossy: documented).
"""

from __future__ import annotations

from pathlib import Path

from ...errors import DataError
from ...io import is_video
from ...video_io import VideoWriter, iter_frames, video_info
from ._base import ConversionReport, iter_with_progress, load_coco, natural_key, open_export, open_output

NAME = "video"
ALIASES = ("videos",)
DESCRIPTION = "videos without labels (mp4/avi/mkv...): frames with video id and index, optional stride"


def _videos(src: Path) -> list[Path]:
    if src.is_file():
        if not is_video(src):
            raise DataError("not a video file (mp4/avi/mkv/mov/webm...)", src)
        return [src]
    if not src.is_dir():
        raise DataError("video file or folder not found", src)
    vids = sorted(
        (p for p in src.rglob("*") if p.is_file() and is_video(p)), key=lambda p: natural_key(str(p))
    )
    if not vids:
        raise DataError("no video files found", src)
    return vids


def detect(src: Path) -> int:
    if src.is_file():
        return 3 if is_video(src) else 0
    if not src.is_dir():
        return 0
    files = [p for p in src.iterdir() if p.is_file() and not p.name.startswith(".")]
    return 2 if files and all(is_video(p) for p in files) else 0


def to_coco(
    src: str | Path, dst: str | Path, *, stride: int = 1, overwrite: bool = False
) -> ConversionReport:
    """Extract every ``stride``-th frame of each video into a canonical data set without annotations."""
    if stride < 1:
        raise DataError(f"stride must be >= 1, got {stride}")
    report = ConversionReport(NAME, "to_coco", str(src), str(dst))
    src = Path(src)
    vids = _videos(src)
    with open_output(dst, report, None, overwrite) as w:
        for path in vids:
            info = video_info(path)
            name = path.relative_to(src).with_suffix("").as_posix() if src.is_dir() else path.stem
            vid = w.add_video(name, fps=info["fps"], source=path.name, stride=stride)
            n = 0
            for index, frame in iter_with_progress(
                _FrameSource(path, stride, info), f"frames of {path.name}"
            ):
                rel = f"images/{name}/{index:06d}.png"
                w.save_image(frame, rel)
                w.add_image(rel, frame.shape[0], frame.shape[1], video_id=vid, frame_index=index)
                n += 1
            if n == 0:
                raise DataError("video has no frames", path)
            w.videos[vid]["frames"] = n
    return report


class _FrameSource:
    """Sized iterable over a video's frames so the progress bar knows the total without decoding twice."""

    def __init__(self, path: Path, stride: int, info: dict):
        self.path, self.stride, self.total = path, stride, info.get("frames", 0)

    def __len__(self) -> int:
        return (self.total + self.stride - 1) // self.stride

    def __iter__(self):
        return iter_frames(self.path, self.stride)


def from_coco(src: str | Path, dst: str | Path, *, overwrite: bool = False) -> ConversionReport:
    """Encode each video's frames (in frame order) to ``<video>.mp4`` at its recorded fps (H.264, lossy)."""
    report = ConversionReport(NAME, "from_coco", str(src), str(dst))
    ds = load_coco(src)
    if not ds.videos:
        raise DataError("data set has no videos", ds.path)
    with open_export(dst, overwrite) as root:
        for vid, frames in ds.iter_videos():
            v = ds.videos[vid]
            out = root / f"{v.get('name', vid)}.mp4"
            out.parent.mkdir(parents=True, exist_ok=True)
            with VideoWriter(out, fps=float(v.get("fps") or 25.0)) as writer:
                for iid in frames:
                    writer.write(ds.load_image(iid))
            report.count("videos")
            report.count("frames", len(frames))
    return report
