"""``scopeseg segment`` (box/point prompted masks) and ``scopeseg medsam-infer`` (challenge npz folders)."""

from __future__ import annotations

from . import arg, command

_MODEL_HELP = "litemedsam, mobilesam, a checkpoint folder, or an exported ONNX folder (--engine onnx)"


def _predictor(args):
    from ..inference.prompt import PromptPredictor

    return PromptPredictor.from_pretrained(
        args.model, engine=args.engine, precision=args.precision, threads=args.threads
    )


def _engine_args(fn):
    fn = arg("--threads", type=int, default=None, help="CPU threads (default: torch/ORT default)")(fn)
    fn = arg(
        "--precision",
        choices=["fp32", "bf16", "int8", "int8-static"],
        default="fp32",
        help="encoder precision: bf16 (torch engine); int8 = dynamic int8 MatMuls, int8-static = calibrated QDQ "
        "(onnx engine)",
    )(fn)
    return arg("--engine", choices=["torch", "onnx"], default="torch", help="inference engine")(fn)


@arg("model", help=_MODEL_HELP)
@arg("image", help="an image file; with --prompts the image folder; with --from-gt a COCO data set")
@arg("--box", action="append", default=[], metavar="x0,y0,x1,y1", help="box prompt in pixels (repeatable)")
@arg("--point", action="append", default=[], metavar="x,y,label", help="point prompt, label 1/0 (repeatable)")
@arg("--prompts", metavar="JSON", help='list of {"file_name", "boxes": [[x0,y0,x1,y1]], "points": [[x,y,l]]}')
@arg("--from-gt", action="store_true", help="one box per ground-truth annotation of the COCO data set IMAGE")
@arg("--jitter", type=float, default=0.0, help="--from-gt: move box sides by up to this fraction of the side")
@arg("--seed", type=int, default=0, help="--from-gt: jitter seed")
@arg("--multimask", action="store_true", help="decode 3 masks per prompt and keep the best-scored one")
@arg("--out", default="segment_out", help="output folder (masks/, overlays/, predictions.json)")
@arg("--no-overlays", action="store_true", help="skip overlay images")
@_engine_args
@command("segment", help="box/point prompted segmentation (LiteMedSAM, MobileSAM, fine-tuned checkpoints)")
def _segment(args) -> int:
    from pathlib import Path

    from ..errors import DataError
    from ..inference import prompt_segment as ps

    image = Path(args.image)
    if args.from_gt:
        from ..data.coco import load_dataset

        ds = load_dataset(image)
        sets = ps.prompts_from_coco(ds, jitter=args.jitter, seed=args.seed)
        root = image if image.is_dir() else image.parent  # the data set's image root
    elif args.prompts:
        sets, root = ps.load_prompts(args.prompts), image
    else:
        if not args.box and not args.point:
            raise DataError("give --box and/or --point, or --prompts JSON, or --from-gt")
        sets = [
            ps.PromptSet(
                image.name, [ps.parse_box(b) for b in args.box], [ps.parse_point(p) for p in args.point]
            )
        ]
        root = image
    res = ps.segment_files(
        _predictor(args), root, sets, args.out, multimask=args.multimask, overlays=not args.no_overlays
    )
    for item in res["items"][:20]:
        print(f"{item['file_name']}: scores {item['scores']} areas {item['areas']}")
    print(f"{res['masks']} masks for {res['images']} images -> {res['out']}")
    return 0


@arg("in_dir", help="folder of challenge .npz cases (imgs, boxes)")
@arg("out_dir", help="output folder: segs npz with the same names + efficiency.csv")
@arg("--model", default="litemedsam", help=_MODEL_HELP)
@arg("--resume", action="store_true", help="skip cases whose output exists")
@_engine_args
@command(
    "medsam-infer", help="MedSAM-on-laptop challenge inference: npz cases (2D, 3D) -> segs + runtime CSV"
)
def _medsam_infer(args) -> int:
    from ..inference.medsam_io import infer_folder

    times = infer_folder(_predictor(args), args.in_dir, args.out_dir, resume=args.resume)
    total = sum(t for _, t in times)
    print(f"{len(times)} cases in {total:.2f} s -> {args.out_dir} (efficiency.csv)")
    return 0
