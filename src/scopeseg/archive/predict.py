"""``scopeseg predict MODEL ARCHIVE OUT [runner=ray workers=N]``: one unit per video of a folder of videos.

Why: each unit is exactly ``scopeseg predict MODEL VIDEO OUT/<video>`` (same predictor, same writer), so
an archive's outputs are byte-identical whichever runner made them; each worker loads the model once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import BaseConfig
from ..errors import DataError
from ..inference.semantic import Predictor
from ..inference.semantic_files import (
    RUNNER_KEYS,
    VIDEO_KEYS,
    PredictConfig,
    input_kind,
    predict_model,
    predict_path,
)
from ..io import is_image, is_video
from .runner import Job, JobReport, Unit, register_job, run_job


def archive_videos(path: str | Path) -> list[Path]:
    """The videos of a folder holding videos and no images (an archive), sorted; [] for anything else."""
    path = Path(path)
    if not path.is_dir() or (path / "annotations.json").is_file():
        return []
    files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    if any(is_image(p) for p in files):
        return []
    return [p for p in files if is_video(p)]


def video_units(folder: str | Path) -> list[Unit]:
    """One unit per video, named by its path in the folder without suffix (``case1/vid003``)."""
    folder = Path(folder).resolve()  # workers on other nodes read the same (shared) path
    return [Unit(p.relative_to(folder).with_suffix("").as_posix(), str(p)) for p in archive_videos(folder)]


@register_job("predict")
class PredictJob(Job):
    """A worker's predictor (its engine, threads and batch size) predicting one video per unit."""

    def __init__(self, settings: dict[str, Any]):
        super().__init__(settings)
        cfg = PredictConfig(**settings["config"])
        self.predictor = Predictor.from_pretrained(
            settings["model"],
            cfg.engine,
            cfg.precision,
            settings.get("threads"),
            batch_size=cfg.batch_size,
            threshold=cfg.threshold,
        )
        masks = bool(cfg.masks)  # video default: no mask PNGs
        self.kw = {"masks": masks, "overlays": cfg.overlays, "images": cfg.images}
        self.kw.update({k: getattr(cfg, k) for k in VIDEO_KEYS})

    def run(self, unit: Unit, out: Path | None) -> dict[str, Any]:
        assert out is not None
        summary = predict_path(self.predictor, unit.source, out, overwrite=True, **self.kw)
        # the manifest keeps the numbers, not the paths (they point into the job's temp folder)
        return {k: v for k, v in summary.items() if not isinstance(v, (str, Path)) or k == "kind"}


def video_archive_job(
    job: str,
    model: str | Path,
    folder: str | Path,
    out: str | Path,
    config: BaseConfig,
    overwrite: bool = False,
) -> JobReport:
    """Run job kind ``job`` (``predict``, ``track``, ...) over every video of ``folder`` into ``out/<video>/``.

    ``config`` is the command's typed config; its ``runner address workers threads`` choose where units run
    (left out of the job's digest), the rest decides the outputs. Workers get ``{"model", "input", "config",
    "threads"}``. Reruns with the same settings skip finished videos and retry failed ones (``run_job``).
    """
    units = video_units(folder)
    if not units:
        raise DataError("no videos in the archive folder (expected video files and no images)", folder)
    where = {k: getattr(config, k, None) for k in RUNNER_KEYS}
    settings = {
        "model": str(Path(model).resolve()) if Path(model).exists() else str(model),
        "input": str(Path(folder).resolve()),
        "config": config.model_dump(mode="json", exclude=set(RUNNER_KEYS)),
    }
    return run_job(
        job,
        settings,
        units,
        out,
        where["runner"] or "local",
        where["address"],
        where["workers"],
        where["threads"],
        overwrite,
        worker_settings={"threads": where["threads"]},
    )


def predict_archive(
    model: str | Path,
    folder: str | Path,
    out: str | Path,
    cfg: PredictConfig | None = None,
    overwrite: bool = False,
) -> JobReport:
    """Predict every video of ``folder`` into ``out/<video>/`` (``predict`` outputs) with ``out/manifest.json``."""
    return video_archive_job("predict", model, folder, out, cfg or PredictConfig(), overwrite)


def predict(
    model: str | Path,
    input_path: str | Path,
    out: str | Path,
    cfg: PredictConfig | None = None,
    overwrite: bool = False,
) -> tuple[dict[str, Any], int]:
    """``scopeseg predict``: an archive (a folder of videos) as a job of units, anything else as one input.

    Returns the summary to print and the exit status (3 when units of an archive failed).
    """
    cfg = cfg or PredictConfig()
    if archive_videos(input_path) and input_kind(input_path) == "folder":
        report = predict_archive(model, input_path, out, cfg, overwrite)
        return report.summary(), report.exit_code
    return predict_model(model, input_path, out, cfg, overwrite), 0
