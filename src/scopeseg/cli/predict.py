"""``scopeseg predict MODEL INPUT OUT key=value...``: semantic prediction on images, folders, data sets, videos."""

from __future__ import annotations

from . import arg, build_config_of, command, config_keys


@arg("model", help="checkpoint folder (model.safetensors + config.json)")
@arg(
    "input",
    help="an image, a folder of images, a COCO JSON / data folder, a video, or a stream (rtsp://..., /dev/video0)",
)
@arg("out", help="output folder: predicted/ (data set), results.json (COCO results), masks/, overlays/")
@arg("--overwrite", action="store_true", help="replace an existing OUT (only once the prediction succeeded)")
@command(
    "predict",
    help="predict masks for an image, folder, COCO data set or video (predicted data set, COCO results, views)",
    keys=config_keys("scopeseg.inference.semantic_files", "PredictConfig"),
    data=True,
)
def _predict(args) -> int:
    from ..inference.semantic_files import PredictConfig, predict_model

    cfg = build_config_of(PredictConfig, args.overrides, "predict")
    for k, v in predict_model(args.model, args.input, args.out, cfg, args.overwrite).items():
        print(f"{k}: {v}")
    return 0
