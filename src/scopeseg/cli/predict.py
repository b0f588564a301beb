"""``scopeseg predict MODEL INPUT OUT``: semantic prediction on images, folders, COCO data sets, videos."""

from __future__ import annotations

from . import arg, command


@arg("model", help="checkpoint folder (model.safetensors + config.json)")
@arg("input", help="an image, a folder of images, a COCO JSON / data folder, or a video")
@arg("out", help="output folder")
@arg("--batch-size", type=int, default=4)
@arg(
    "--threshold",
    type=float,
    default=None,
    help="probability threshold (binary models; default: the model's)",
)
@arg("--no-overlays", action="store_true", help="skip overlay images / overlay video")
@arg("--masks", choices=["auto", "yes", "no"], default="auto", help="write PNG masks (auto: not for videos)")
@command("predict", help="predict masks for an image, folder, COCO data set or video (overlays, RLE JSON)")
def _predict(args) -> int:
    from pathlib import Path

    from ..inference.semantic import Predictor
    from ..inference.semantic_files import input_kind, predict_path

    predictor = Predictor.from_pretrained(args.model, batch_size=args.batch_size, threshold=args.threshold)
    kind = input_kind(Path(args.input))
    masks = args.masks == "yes" or (args.masks == "auto" and kind != "video")
    res = predict_path(predictor, args.input, args.out, masks=masks, overlays=not args.no_overlays)
    for k, v in res.items():
        print(f"{k}: {v}")
    return 0
