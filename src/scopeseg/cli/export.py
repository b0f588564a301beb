"""``scopeseg export MODEL OUT --format onnx``: write a model's deployment files and check them against torch."""

from __future__ import annotations

from . import arg, command


@arg("model", help="a released model name (litemedsam, mobilesam) or a checkpoint folder")
@arg("out", help="output folder (replaced atomically; model.onnx or encoder/decoder.onnx + export.json)")
@arg("--format", default="onnx", help="export format (onnx)")
@arg("--opset", type=int, default=17, help="ONNX opset")
@arg(
    "--int8-static",
    action="store_true",
    help="promptable: also a static int8 encoder, calibrated on synthetic frames",
)
@arg(
    "--tolerance",
    type=float,
    default=None,
    help="largest allowed |onnx - torch| as a fraction of max(1, |torch|)",
)
@command(
    "export", help="export a model (every semantic and promptable model) to ONNX with a check against torch"
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
    )
    check = result.check
    files = ", ".join(f"{p}: {f}" for p, f in result.files.items())
    print(f"{result.kind} model exported to {result.folder} ({files})")
    print(
        f"check vs torch on sample inputs {check['inputs']}: max abs diff {check['max_abs_diff']:.3g} "
        f"(at {check['worst']}, limit {check['limit']:.3g}): passed"
    )
    return 0
