"""Data set previews: a grid of frames with their masks overlaid (+ legend) and one overlay video per video.

Why: one look at a data set (synthetic or converted) shows whether masks sit on the right pixels. Drawing
comes from ``viz``; this module only picks the frames and reads the data set.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..io import check_output, output_dir, write_image
from ..progress import track
from ..video_io import VideoWriter
from ..viz import caption, grid, legend_strip, overlay
from .coco import CocoDataset
from .video import iter_videos

log = logging.getLogger(__name__)


def overlay_image(ds: CocoDataset, image_id: int, alpha: float = 0.5, contours: bool = True) -> np.ndarray:
    """An image of a ``CocoDataset`` with its instance masks overlaid in category colours."""
    img = ds.load_image(image_id)
    masks, cids, _ = ds.instance_masks(image_id)
    return overlay(img, masks, [ds.category_color(c) for c in cids], alpha=alpha, contours=contours)


def _pick_frames(ds: CocoDataset, max_frames: int) -> list[int]:
    """Up to ``max_frames`` image ids spread evenly over videos and over frames within each video."""
    groups = [frames for _, frames in iter_videos(ds) if frames]
    loose = [i for i, im in ds.images.items() if im.get("video_id") is None]
    if loose:
        groups.append(loose)
    if not groups or max_frames < 1:
        return []
    per = [max(1, max_frames // len(groups))] * len(groups)
    picked: list[int] = []
    for frames, k in zip(groups, per):
        k = min(k, len(frames))
        idx = np.linspace(0, len(frames) - 1, k).round().astype(int)
        picked.extend(frames[i] for i in idx)
    return picked[:max_frames]


def preview(
    data_path: str | Path,
    out_dir: str | Path,
    max_frames: int = 16,
    video: bool = True,
    alpha: float = 0.5,
    cell_width: int = 368,
    overwrite: bool = False,
) -> dict[str, list[Path] | Path]:
    """Write ``preview.jpg`` (grid of frames with masks + legend) and one ``<video>_overlay.mp4`` per video.

    Why: one look at a data set (synthetic or converted) shows whether masks sit on the right pixels.
    ``out_dir`` appears whole at the end; an existing one is refused unless ``overwrite``.
    Returns ``{"preview": path, "videos": [paths]}``.
    """
    ds = CocoDataset.load(data_path)
    if not ds.images:
        raise DataError("data set has no images to preview", ds.path)
    out_dir = Path(out_dir)
    check_output(out_dir, overwrite)
    ids = _pick_frames(ds, max_frames)
    tiles = []
    for iid in ids:
        im = ds.images[iid]
        vname = ds.videos.get(im.get("video_id"), {}).get("name")
        label = f"{vname} #{im.get('frame_index')}" if vname is not None else Path(im["file_name"]).name
        tiles.append(caption(overlay_image(ds, iid, alpha), label))
    h0, w0 = tiles[0].shape[:2]
    cw = min(cell_width, w0)
    ch = max(1, round(h0 * cw / w0))
    sheet = grid(tiles, cell_size=(ch, cw))
    cats = [(c.get("name", str(cid)), ds.category_color(cid)) for cid, c in sorted(ds.categories.items())]
    if cats:
        sheet = np.concatenate([sheet, legend_strip(cats, sheet.shape[1])], axis=0)
    videos: list[Path] = []
    with output_dir(out_dir, overwrite) as tmp:
        write_image(tmp / "preview.jpg", sheet, quality=90)
        for vid, frames in iter_videos(ds) if video else ():
            if not frames:
                continue
            v = ds.videos[vid]
            name = f"{str(v.get('name', vid)).replace('/', '_')}_overlay.mp4"
            with VideoWriter(tmp / name, fps=float(v.get("fps", 25.0))) as writer:
                for iid in track(frames, f"overlay {name}", total=len(frames)):
                    writer.write(overlay_image(ds, iid, alpha))
            videos.append(out_dir / name)
    log.info("preview of %d frames and %d videos in %s", len(ids), len(videos), out_dir)
    return {"preview": out_dir / "preview.jpg", "videos": videos}
