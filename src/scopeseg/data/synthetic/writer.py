"""Write a synthetic data set: frames, one mp4 per video and ``annotations.json``, through the converters' writer.

The annotations stream through ``formats._base.CocoWriter`` (``open_output``) like every converter's, so a
synthetic data set and a converted one are written by one piece of code (RLE on arrival, atomic folder).
"""

from __future__ import annotations

from pathlib import Path

from ...errors import DataError
from ..coco import CocoDataset
from ..formats._base import ConversionReport, open_output
from ..ops import assign_splits
from ..records import ANNOTATION_FILE
from .categories import categories
from .config import SynthConfig, video_name, video_seed
from .scene import render_video


def _check_target(out_dir: Path) -> None:
    if out_dir.exists() and (
        not out_dir.is_dir() or (any(out_dir.iterdir()) and not (out_dir / ANNOTATION_FILE).exists())
    ):
        raise DataError(
            "exists and is not a data set folder; refusing to replace it (choose a new folder)", out_dir
        )


def generate(
    out_dir: str | Path, cfg: SynthConfig | None = None, progress: bool = True, overwrite: bool = True
) -> CocoDataset:
    """Render ``cfg.videos`` videos into ``out_dir``: frames, one mp4 per video, ``annotations.json``.

    The folder is written atomically (temp folder renamed at the end); an existing data set there is replaced
    when ``overwrite`` (``scopeseg synth --overwrite``), else refused; any other non-empty folder is refused.
    Same config -> byte-identical ``annotations.json`` (and identical frames before encoding).
    """
    import cv2

    from ...progress import track
    from ...video_io import VideoWriter

    cfg = cfg or SynthConfig()
    out_dir = Path(out_dir)
    _check_target(out_dir)
    h, w = cfg.size
    ext = cfg.image_format
    params = (
        [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality] if ext == "jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    )

    def frames():
        for k in range(cfg.videos):
            for t, (frame, inst) in enumerate(render_video(video_seed(cfg.seed, k), cfg, with_tracks=True)):
                yield k, t, frame, inst

    report = ConversionReport(format="synthetic", src="scopeseg.data.synthetic", dst=str(out_dir))
    with open_output(out_dir, report, overwrite=overwrite) as out:
        out.info = {
            "description": "scopeseg synthetic scope videos",
            "generator": "scopeseg.data.synthetic",
            "config": cfg.model_dump(mode="json"),
        }
        for c in categories():
            out.add_category(**c)
        video = None
        items = track(frames(), "synth", total=cfg.videos * cfg.frames) if progress else frames()
        try:
            for k, t, frame, instances in items:
                name = video_name(k)
                if t == 0:
                    if video is not None:
                        video.close()
                    (out.root / "frames" / name).mkdir(parents=True)
                    video = VideoWriter(out.root / "videos" / f"{name}.mp4", fps=cfg.fps)
                    vid = out.add_video(
                        name, file_name=f"videos/{name}.mp4", fps=cfg.fps, seed=video_seed(cfg.seed, k)
                    )
                file_name = f"frames/{name}/{t:05d}.{ext}"
                ok, buf = cv2.imencode(f".{ext}", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), params)
                if not ok:  # pragma: no cover - cv2 encodes any uint8 RGB
                    raise DataError("cannot encode frame", out.root / file_name)
                (out.root / file_name).write_bytes(buf.tobytes())
                video.write(frame)
                iid = out.add_image(file_name, h, w, video_id=vid, frame_index=t)
                for cid, m, tid in instances:
                    out.add_annotation(iid, cid, m, track_id=tid)
            if video is not None:
                video.close()
                video = None
        finally:
            if video is not None:
                video.abort()
        if cfg.splits:
            assign_splits(out.images, cfg.splits, seed=cfg.seed)
    return CocoDataset.load(out_dir)
