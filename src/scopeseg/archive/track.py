"""``scopeseg track MODEL ARCHIVE OUT [runner=ray workers=N]``: one unit per video of a folder of videos.

Why: each unit is exactly ``scopeseg track MODEL VIDEO OUT/<video>`` (same propagator, same writer), so the
outputs are the same whichever runner made them; each worker loads the model once. A video's prompts come
from ``<video stem>.prompts.json`` beside it when that exists, else from the command's ``prompt=`` /
``prompts=`` (the same prompts for every video).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..inference.video_objects import TrackConfig, load_propagator, track
from .predict import archive_videos, video_archive_job
from .runner import Job, JobReport, Unit, register_job

SIDECAR = ".prompts.json"


def sidecar_prompts(video: str | Path) -> Path | None:
    """``<folder>/<stem>.prompts.json`` of a video when it exists."""
    p = Path(video)
    side = p.with_name(p.stem + SIDECAR)
    return side if side.is_file() else None


@register_job("track")
class TrackJob(Job):
    """A worker's propagator (box tracker or video model, loaded once) tracking one video per unit."""

    def __init__(self, settings: dict[str, Any]):
        super().__init__(settings)
        self.cfg = TrackConfig(**{**settings["config"], "threads": settings.get("threads")})
        self.propagator = load_propagator(settings["model"], self.cfg)

    def run(self, unit: Unit, out: Path | None) -> dict[str, Any]:
        assert out is not None
        cfg = self.cfg
        side = sidecar_prompts(unit.source)
        if side is not None:
            cfg = cfg.model_copy(update={"prompts": str(side), "prompt": []})
        res = track(self.propagator, unit.source, out, cfg, overwrite=True)
        # the manifest keeps the numbers, not the paths (they point into the job's temp folder)
        return {k: v for k, v in res.items() if not isinstance(v, (str, Path)) or k in ("direction", "model")}


def track_archive(
    model: str | Path, folder: str | Path, out: str | Path, cfg: TrackConfig, overwrite: bool = False
) -> JobReport:
    """Track every video of ``folder`` into ``out/<video>/`` (``track`` outputs) with ``out/manifest.json``."""
    videos = archive_videos(folder)
    if not cfg.prompt and not cfg.prompts:
        missing = [v.name for v in videos if sidecar_prompts(v) is None]
        if missing:
            raise ConfigError(
                f"no prompts for {len(missing)} video(s) ({', '.join(missing[:3])}...): give prompt= / prompts= "
                f"or a <video>{SIDECAR} beside each video"
            )
    return video_archive_job("track", model, folder, out, cfg, overwrite)


def is_archive(path: str | Path) -> bool:
    """A folder of videos (and no images): tracked as an archive job."""
    return Path(path).is_dir() and bool(archive_videos(path))


__all__ = ["TrackJob", "is_archive", "sidecar_prompts", "track_archive"]
