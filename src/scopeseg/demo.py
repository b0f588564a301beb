"""The main job on embedded data (``make demo``): synthesize -> validate -> train -> predict -> evaluate -> report.

Training and held-out test videos come from different generator seeds, so no test video (nor its seed) is
seen in training; the model is trained at a reduced size. The held-out frames are predicted to files by the
normal predict path and scored by the protocol ``scopeseg evaluate`` runs, so the printed Dice is the one
``scopeseg evaluate GT PRED categories=[...]`` gives on the files the demo wrote (``demo.json`` names them).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from .config import BaseConfig, parse_size
from .errors import DataError
from .io import output_exists, write_json

log = logging.getLogger(__name__)
TEST_SEED_OFFSET = 1000


class DemoConfig(BaseConfig):
    """Settings of ``scopeseg demo OUT key=value...``; ``train.KEY=VALUE`` overrides the training config."""

    train_videos: int = Field(6, ge=1)
    test_videos: int = Field(2, ge=1)
    frames: int = Field(40, ge=2)  # frames per synthetic video
    size: tuple[int, int] = (480, 736)  # frame size HxW of the synthetic videos
    minutes: float = Field(6.0, gt=0)  # training time budget on this machine
    model: str = "unet-lite0"
    seed: int = Field(0, ge=0)
    #: fine tissue texture and thicker tools in the training videos only (sim-to-real: the generator options that
    #: raised the real-frame Dice in benchmarks/results/sim_to_real_ablation.md); the held-out videos stay the
    #: default generator
    tissue_texture: float = Field(0.7, ge=0.0, le=1.0)
    tool_width: float = Field(0.6, ge=0.0, le=1.0)
    train: dict[str, Any] = Field(default_factory=dict)  # e.g. train.lr=1e-3 train.pretrained=false

    @field_validator("size", mode="before")
    @classmethod
    def _size(cls, v):
        return parse_size(v)


def run_demo(
    out: str | Path, cfg: DemoConfig | None = None, say: Callable[[str], None] = log.info
) -> dict[str, Any]:
    """Run the whole pipeline into ``out``; returns paths and the held-out metrics."""
    from .config import build_config, list_presets
    from .data.preview import preview
    from .data.synthetic import SynthConfig, generate
    from .data.validate import validate
    from .evaluate import save_results
    from .inference.semantic import Predictor
    from .inference.semantic_files import predict_path
    from .metrics.protocols import run_protocol
    from .report.training import training_summary
    from .train import train

    cfg_demo = cfg or DemoConfig()
    train_videos, test_videos, frames = cfg_demo.train_videos, cfg_demo.test_videos, cfg_demo.frames
    size, minutes, model, seed = cfg_demo.size, cfg_demo.minutes, cfg_demo.model, cfg_demo.seed
    out = Path(out)
    if output_exists(out) and not (out / "demo.json").is_file() and not (out / "data").is_dir():
        # the demo regenerates its own subfolders on every call, so it never writes into someone else's folder
        raise DataError("holds files that are not a scopeseg demo run; choose another output folder", out)
    t0 = time.time()
    paths: dict[str, Any] = {}
    data_train, data_test = out / "data" / "train", out / "data" / "test"
    realism = {"tissue_texture": cfg_demo.tissue_texture, "tool_width": cfg_demo.tool_width}
    for path, n, s, opts in (
        (data_train, train_videos, seed, realism),
        (data_test, test_videos, seed + TEST_SEED_OFFSET, {}),
    ):
        if (path / "annotations.json").is_file():
            say(f"reusing synthetic data in {path}")
            continue
        say(f"synthesizing {n} videos x {frames} frames at {size[0]}x{size[1]} (seed {s}) -> {path}")
        generate(path, SynthConfig(videos=n, frames=frames, size=size, seed=s, **opts))
    for path in (data_train, data_test):
        report = validate(path)
        if not report.ok:
            raise DataError(f"synthetic data failed validation: {report.counts()}", path)
    say("validated: no problems")
    paths["preview"] = preview(data_test, out / "preview", max_frames=8, video=True, overwrite=True)[
        "preview"
    ]

    run_dir = out / "train"
    cfg = build_config(
        preset=model if model in list_presets() else None,
        overrides=[
            f"model={model}",
            f"data={data_train}",
            f"out={run_dir}",
            "overwrite=true",  # the demo regenerates its own run folder on every call
            f"max_minutes={minutes}",
            "epochs=200",
            "mode=binary",
            "categories=[supercategory:instrument]",
            f"seed={seed}",
            "val_fraction=0.17",
            "report_examples=4",
            "train_size=[192,288]",
        ],
        task="semantic",
    )
    if cfg_demo.train:
        cfg = build_config(type(cfg), overrides={**cfg.model_dump(), **cfg_demo.train})
    say(
        f"training {cfg.model} at {cfg.train_size[0]}x{cfg.train_size[1]} for up to {minutes:g} min on the CPU"
    )
    result = train(cfg)

    predictor = Predictor.from_pretrained(result["best"], batch_size=4)
    say(f"predicting {test_videos} held-out videos (seeds never used in training) at {size[0]}x{size[1]}")
    held = predict_path(predictor, data_test, out / "predict" / "test", overlays=False, overwrite=True)
    evaluate_args = {
        "gt": str(data_test),
        "pred": held["predicted"],
        "protocol": "binary",
        "params": {"categories": list(cfg.categories or [])},
    }
    say(f"scoring {held['predicted']} like scopeseg evaluate (protocol binary, categories {cfg.categories})")
    evaluation = run_protocol("binary", data_test, held["predicted"], **evaluate_args["params"])
    test_files = save_results(evaluation, out / "test", data_test, held["predicted"], overwrite=True)

    video = sorted((data_test / "videos").glob("*.mp4"))[0]
    say(f"predicting {video.name} -> overlay video")
    pred = predict_path(
        predictor, video, out / "predict" / "video", masks=False, overlays=True, overwrite=True
    )
    paths.update(
        {
            "train_report": run_dir / "report.html",
            "checkpoint": result["best"],
            "overlay_video": pred["overlay_video"],
            "predictions": held["predicted"],
            "metrics": test_files["metrics.json"],
            "test_report": test_files["report.html"],
        }
    )
    summary = {
        "held_out": training_summary(evaluation),
        "evaluate": evaluate_args,
        "validation": result.get("metrics"),
        "train_seconds": result.get("train_seconds"),
        "epochs": result.get("epochs_run"),
        "total_seconds": time.time() - t0,
        "paths": {k: str(v) for k, v in paths.items()},
    }
    write_json(out / "demo.json", summary, indent=2)
    return summary
