"""``scopeseg export MODEL OUT --format onnx|openvino|torchscript``: deployment files, checked against torch."""

from __future__ import annotations

from . import arg, command


@arg("model", help="a released model name (litemedsam, mobilesam) or a checkpoint folder")
@arg(
    "out",
    help="output folder (written atomically; an existing one needs --overwrite): the graph files (model.* or encoder/decoder.*) + export.json "
    "(preprocessing, check vs torch, reduced-precision Dice)",
)
@arg(
    "--format",
    default="onnx",
    help="onnx, openvino (IR: .xml + .bin) or torchscript (.pt, torch.jit.trace)",
)
@arg("--opset", type=int, default=17, help="ONNX opset (onnx and openvino)")
@arg(
    "--int8-static",
    action="store_true",
    help="promptable: also a static int8 encoder, calibrated on synthetic frames (onnx, openvino)",
)
@arg(
    "--tolerance",
    type=float,
    default=None,
    help="largest allowed |export - torch| as a fraction of max(1, |torch|)",
)
@arg(
    "--overwrite",
    action="store_true",
    help="replace an existing OUT (only after the export passed its check)",
)
@command(
    "export",
    help="export a model (every semantic, promptable and instance model) to ONNX, OpenVINO or TorchScript with "
    "a check against torch",
)
def _export(args) -> int:
    from ..inference.calibration import default_calibration_images
    from ..inference.export import DEFAULT_TOLERANCE, export

    result = export(
        args.model,
        args.out,
        format=args.format,
        opset=args.opset,
        calibration_images=default_calibration_images() if args.int8_static else None,
        tolerance=DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance,
        overwrite=args.overwrite,
    )
    check = result.check
    files = ", ".join(f"{p}: {f}" for p, f in result.files.items())
    print(f"{result.kind} model exported as {args.format} to {result.folder} ({files})")
    print(
        f"check vs torch on sample inputs {check['inputs']}: max abs diff {check['max_abs_diff']:.3g} "
        f"(at {check['worst']}, limit {check['limit']:.3g}): passed"
    )
    for precision, q in result.quality.items():
        if "skipped" in q:
            print(f"{precision}: Dice vs fp32 not measured ({q['skipped']})")
        else:
            print(
                f"{precision}: Dice vs fp32 on {q['n']} {q['images']} samples: mean {q['dice_mean']:.4f}, "
                f"min {q['dice_min']:.4f}"
            )
    return 0
