"""``scopeseg segment`` (box/point prompted masks) and ``scopeseg medsam-infer`` (challenge npz folders)."""

from __future__ import annotations

from . import arg, build_config_of, command, config_keys

_MODEL_HELP = "litemedsam, mobilesam, a checkpoint folder, or an exported ONNX folder (engine=onnx)"


@arg("model", help=_MODEL_HELP)
@arg(
    "input",
    help="an image (boxes=/points=), an image folder (prompts=JSON) or a COCO data set (from_gt=true)",
)
@arg("out", help="output folder: predicted/ (data set), results.json (COCO results), masks/, overlays/")
@arg("--overwrite", action="store_true", help="replace an existing OUT (only once the prediction succeeded)")
@command(
    "segment",
    help="box/point prompted segmentation (LiteMedSAM, MobileSAM, fine-tuned checkpoints)",
    keys=config_keys("scopeseg.inference.prompt_files", "SegmentConfig"),
    data=True,
)
def _segment(args) -> int:
    from ..inference.prompt_files import SegmentConfig, segment

    cfg = build_config_of(SegmentConfig, args.overrides, "segment")
    res = segment(args.model, args.input, args.out, cfg, args.overwrite)
    for item in res["items"][:20]:
        print(f"{item['file_name']}: scores {item['scores']} areas {item['areas']}")
    print(f"{res['masks']} masks for {res['images']} images -> {res['predicted']}, {res['results']}")
    return 0


@arg("model", help=_MODEL_HELP)
@arg("in_dir", help="folder of challenge .npz cases (imgs, boxes)")
@arg("out_dir", help="output folder: segs npz with the same names + efficiency.csv")
@arg("--resume", action="store_true", help="continue a killed run, or add missing cases to OUT")
@arg("--overwrite", action="store_true", help="replace an existing OUT (only once every case is done)")
@command(
    "medsam-infer",
    help="MedSAM-on-laptop challenge inference: npz cases (2D, 3D) -> segs + runtime CSV",
    keys=config_keys("scopeseg.inference.prompt_files", "PromptEngineConfig"),
)
def _medsam_infer(args) -> int:
    from ..inference.medsam_io import infer_folder
    from ..inference.prompt_files import PromptEngineConfig

    cfg = build_config_of(PromptEngineConfig, args.overrides, "medsam-infer")
    times = infer_folder(
        lambda: cfg.predictor(args.model), args.in_dir, args.out_dir, args.resume, overwrite=args.overwrite
    )
    total = sum(t for _, t in times)
    print(f"{len(times)} cases in {total:.2f} s -> {args.out_dir} (efficiency.csv)")
    return 0
