"""``scopeseg predict MODEL INPUT OUT key=value...``: semantic or instance prediction on images, folders, data sets, videos."""

from __future__ import annotations

from . import arg, build_config_of, command, config_keys


@arg("model", help="checkpoint folder (model.safetensors + config.json)")
@arg(
    "input",
    help="an image, a folder of images, a COCO JSON / data folder, a video, a stream (rtsp://..., /dev/video0), "
    "or an archive (a folder of videos: one unit per video, runner=local|ray, resumable)",
)
@arg("out", help="output folder: predicted/ (data set), results.json (COCO results), masks/, overlays/")
@arg("--overwrite", action="store_true", help="replace an existing OUT (only once the prediction succeeded)")
@command(
    "predict",
    help="predict masks for an image, folder, COCO data set or video (predicted data set, COCO results, views)",
    keys=lambda: _keys(),
    data=True,
)
def _predict(args) -> int:
    from ..archive.predict import predict
    from ..inference.semantic_files import PredictConfig

    # Mask2Former checkpoints: InstancePredictConfig (classes=, topk=, ...)
    if _family(args.model) == "instance":
        from ..inference.instance import InstancePredictConfig
        from ..inference.instance import predict_model as predict_instances

        icfg = build_config_of(InstancePredictConfig, args.overrides, "predict")
        for k, v in predict_instances(args.model, args.input, args.out, icfg, args.overwrite).items():
            print(f"{k}: {v}")
        return 0
    cfg = build_config_of(PredictConfig, args.overrides, "predict")
    summary, code = predict(args.model, args.input, args.out, cfg, args.overwrite)
    for k, v in summary.items():
        print(f"{k}: {v}")
    return code


def _keys() -> str:
    """Both key lists: semantic checkpoints (PredictConfig) and instance checkpoints (InstancePredictConfig)."""
    semantic = config_keys("scopeseg.inference.semantic_files", "PredictConfig")()
    instance = config_keys("scopeseg.inference.instance", "InstancePredictConfig")()
    return f"{semantic}\n\ninstance checkpoints (Mask2Former, family instance) use instead:\n{instance}"


def _family(model: str) -> str | None:
    """The ``family`` a checkpoint folder's config.json names (None when it names none or is no folder)."""
    from pathlib import Path

    from ..io import read_json

    cfg = Path(model) / "config.json"
    if not cfg.is_file():
        return None
    try:
        data = read_json(cfg)
    except Exception:  # the semantic path reports a broken checkpoint in its own words
        return None
    return data.get("family") if isinstance(data, dict) else None
