"""Semantic inference speed on this CPU: model-only and end to end per engine/precision, and the MONAI bundle.

Part 1 (``scopeseg.inference.benchmark.run_benchmark``, the code behind ``scopeseg benchmark``): unet-effb2 and
unet-lite0 (random init, ``pretrained=False``: speed only) at 480x736 (and 1024x1280 for effb2 at 2 threads), 1 and 2 threads;
each engine/precision in its own process, interleaved rounds, median/p90, ratios to torch fp32 of the same run,
logits compared with torch fp32.

Part 2 (whole commands on the same N frames, interleaved A B C ...): the MONAI model-zoo bundle
``endoscopic_tool_segmentation`` (``../shared/anchors``) run by its own workflow (``python -m monai.bundle run
--config_file configs/inference.json``) in a separate venv this script creates (``benchmarks/.venv-monai``:
torch==2.13.0 first, then monai, pytorch-ignite, nibabel, fire), with a randomly initialised FlexibleUNet
EfficientNet-B2 state dict saved where its checkpoint loader looks; against ``scopeseg predict CKPT FOLDER OUT
engine=...`` (threads=2) on a unet-effb2 checkpoint. Both write their masks; ours also writes the predicted
data set, COCO results and overlays (its defaults).

Run: ``.venv/bin/python benchmarks/inference.py`` (``--quick``: 480x736, 2 threads, 3 rounds, no MONAI: ~2 min)
-> benchmarks/results/inference.{json,md}. The machine is shared: the load average is recorded with each part.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT.parent / "shared" / "anchors" / "monai_endoscopic_tool_segmentation"
MONAI_VENV = ROOT / "benchmarks" / ".venv-monai"
MONAI_PACKAGES = ["numpy", "monai", "pytorch-ignite", "nibabel", "fire", "pillow"]

SAVE_BUNDLE_MODEL = """
import sys, torch
from monai.bundle import ConfigParser
p = ConfigParser(); p.read_config(sys.argv[1] + "/configs/inference.json")
torch.manual_seed(0)
net = p.get_parsed_content("network_def")
torch.save(net.state_dict(), sys.argv[1] + "/models/model.pt")
print(sum(v.numel() for v in net.state_dict().values()))
"""


def make_checkpoints(folder: Path) -> dict[str, Path]:
    import torch

    from scopeseg.models import create_model, save_pretrained

    out = {}
    for name in ("unet-effb2", "unet-lite0"):
        torch.manual_seed(0)
        out[name] = save_pretrained(
            create_model(name, pretrained=False, classes=["instrument"]), folder / name
        )
    return out


def monai_python() -> tuple[Path | None, str]:
    """The benchmark venv's python (created on first use); ``(None, why)`` when it cannot be made."""
    py = MONAI_VENV / "bin" / "python"
    if not py.exists():
        try:
            subprocess.run([sys.executable, "-m", "venv", str(MONAI_VENV)], check=True)
            pip = [str(py), "-m", "pip", "install", "-q"]
            subprocess.run([*pip, "torch==2.13.0"], check=True)  # CPU torch first: never an unpinned one
            cons = MONAI_VENV / "constraints.txt"
            cons.write_text("torch==2.13.0\n")
            subprocess.run([*pip, "-c", str(cons), *MONAI_PACKAGES], check=True)
        except subprocess.CalledProcessError as e:
            return None, f"creating {MONAI_VENV} failed: {e}"
    check = subprocess.run(
        [
            str(py),
            "-c",
            "import monai, ignite, nibabel, fire, torch; print(monai.__version__, torch.__version__)",
        ],
        capture_output=True,
        text=True,
    )
    if check.returncode:
        return None, f"the MONAI venv does not import: {check.stderr.strip().splitlines()[-1]}"
    return py, check.stdout.strip()


def timed(cmd: list[str], env: dict | None = None) -> float:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    dt = time.perf_counter() - t0
    if res.returncode:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed ({res.returncode}): {res.stderr.strip()[-800:]}")
    return dt


def monai_side_by_side(ckpt: Path, frames: int, rounds: int, engines: list[str], tmp: Path) -> dict:
    from scopeseg.inference.calibration import synthetic_frame
    from scopeseg.io import write_image
    from scopeseg.runtime import cpu_summary

    py, versions = monai_python()
    if py is None:
        return {"skipped": versions}
    bundle = tmp / "bundle"
    shutil.copytree(BUNDLE, bundle)
    (bundle / "models").mkdir(exist_ok=True)
    save = subprocess.run([str(py), "-c", SAVE_BUNDLE_MODEL, str(bundle)], capture_output=True, text=True)
    if save.returncode:
        return {"skipped": f"saving the bundle's network failed: {save.stderr.strip()[-500:]}"}
    data = tmp / "data"
    video = data / "test" / "video01"  # the datalist: glob(dataset_dir/test/*/*[!seg].jpg)
    video.mkdir(parents=True)
    for i in range(frames):
        write_image(video / f"frame_{i:04d}.jpg", synthetic_frame(480, 736, i), quality=90)
    scopeseg = str(Path(sys.executable).parent / "scopeseg")
    cmds: dict[str, list[str]] = {
        "monai bundle (torch, its own workflow)": [
            str(py),
            "-m",
            "monai.bundle",
            "run",
            "--config_file",
            str(bundle / "configs" / "inference.json"),
            "--bundle_root",
            str(bundle),
            "--dataset_dir",
            str(data),
            "--output_dir",
            str(tmp / "monai_out"),
        ],
    }
    for e in engines:
        cmds[f"scopeseg predict engine={e}"] = [
            scopeseg,
            "predict",
            str(ckpt),
            str(video),
            str(tmp / f"out_{e}"),
            f"engine={e}",
            "threads=2",
            "--overwrite",
            "-q",
        ]
    times: dict[str, list[float]] = {k: [] for k in cmds}
    load_before = os.getloadavg()
    for cmd in cmds.values():  # warm-up: page cache, the ONNX export of our checkpoint
        timed(cmd)
        shutil.rmtree(tmp / "monai_out", ignore_errors=True)
    for r in range(rounds):
        names = list(cmds)
        names = names[r % len(names) :] + names[: r % len(names)]
        for name in names:
            if name.startswith("monai"):
                shutil.rmtree(tmp / "monai_out", ignore_errors=True)
            times[name].append(timed(cmds[name]))
    written = len(list((tmp / "monai_out").rglob("*.png")))
    ours_written = {e: len(list((tmp / f"out_{e}" / "masks").rglob("*.png"))) for e in engines}
    base = statistics.median(times[next(iter(cmds))])
    rows = []
    for name, t in times.items():
        med = statistics.median(t)
        rows.append(
            {
                "command": name,
                "wall_s_median": med,
                "wall_s_runs": t,
                "ms_per_frame": 1000 * med / frames,
                "speedup_vs_monai_bundle": base / med,
            }
        )
    return {
        "frames": frames,
        "frame_size": [480, 736],
        "rounds": rounds,
        "monai_venv": versions,
        "bundle_masks_written": written,
        "ours_masks_written": ours_written,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "cpu": cpu_summary(),
        "rows": rows,
        "note": "whole commands (start-up and model load included), interleaved; bundle: FlexibleUNet effb2 "
        "random init, 2 output channels, its DataLoader with num_workers=4, torch default threads; ours: "
        "unet-effb2 random init, 1 output channel, threads=2, masks + overlays + predicted data set + COCO "
        "results written",
    }


def render_md(r: dict) -> str:
    from scopeseg.inference.benchmark import format_table

    cpu = r["cpu"]
    lines = [
        "# Semantic inference speed per engine (model-only and end to end) and vs the MONAI bundle",
        "",
        f"Host: {cpu['model']}, CPU class {cpu['class']}, flags {' '.join(cpu['flags'])}, {cpu['cores']} cores; "
        f"load average at start {', '.join(f'{v:.2f}' for v in cpu['load_average'])} (shared machine: "
        "another job was running tests; compare ratios of one run, not absolute times).",
        f"Mode: {'quick' if r['quick'] else 'full'}. Random-init checkpoints (speed only). "
        "'model x' / 'e2e x': speed-up vs torch fp32 of the same run; max|diff|: logits vs torch fp32.",
        "",
    ]
    for run in r["runs"]:
        lines += ["```", format_table(run), "```", ""]
    m = r.get("monai")
    if m:
        lines += ["## Whole commands on the same frames: MONAI bundle's own workflow vs scopeseg predict", ""]
        if "skipped" in m:
            lines.append(f"Not run: {m['skipped']}")
        else:
            lines += [
                f"{m['frames']} frames of 480x736 JPEG, {m['rounds']} interleaved rounds after a warm-up; "
                f"MONAI venv (monai, torch): {m['monai_venv']}; masks written: bundle {m['bundle_masks_written']}, "
                f"ours {m['ours_masks_written']}; load average {', '.join(f'{v:.2f}' for v in m['load_average_before'])}"
                f" -> {', '.join(f'{v:.2f}' for v in m['load_average_after'])}.",
                "",
                "| command | wall s (median) | ms per frame | speed-up vs bundle |",
                "|---|---|---|---|",
            ]
            for row in m["rows"]:
                lines.append(
                    f"| {row['command']} | {row['wall_s_median']:.2f} | {row['ms_per_frame']:.0f} | "
                    f"{row['speedup_vs_monai_bundle']:.2f}x |"
                )
            lines += ["", m["note"] + "."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="480x736, 2 threads, 3 rounds, no MONAI (~2 min)")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--threads", default=None, help="comma list (default 1,2; quick: 2)")
    ap.add_argument("--engines", default="torch,onnx,openvino")
    ap.add_argument("--large", action="store_true", help="also unet-effb2 at 1024x1280 (full mode adds it)")
    ap.add_argument("--no-large", action="store_true")
    ap.add_argument("--monai-frames", type=int, default=20)
    ap.add_argument("--monai-rounds", type=int, default=3)
    ap.add_argument("--monai", action="store_true", help="run the MONAI part in quick mode too")
    ap.add_argument("--no-monai", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "inference"))
    args = ap.parse_args()
    from scopeseg.inference.benchmark import BenchmarkConfig, format_table, run_benchmark
    from scopeseg.runtime import cpu_summary

    rounds = args.rounds or (3 if args.quick else 7)
    threads = [int(t) for t in (args.threads or ("2" if args.quick else "1,2")).split(",")]
    engines = args.engines.split(",")
    large = (args.large or not args.quick) and not args.no_large
    result: dict = {"quick": args.quick, "cpu": cpu_summary(), "runs": []}
    tmp = Path(tempfile.mkdtemp(prefix="scopeseg-inference-bench-"))
    try:
        ckpts = make_checkpoints(tmp / "ckpt")
        plan = [("unet-effb2", [480, 736]), ("unet-lite0", [480, 736])]
        if large:
            plan.append(("unet-effb2", [1024, 1280]))
        for name, size in plan:
            for t in threads if size == [480, 736] else threads[-1:]:  # 1024x1280: the most threads only
                cfg = BenchmarkConfig(
                    engines=engines, size=size, threads=t, rounds=rounds, warmup=1 if args.quick else 2
                )
                run = run_benchmark(ckpts[name], cfg)
                run["model"] = name
                result["runs"].append(run)
                print(format_table(run), flush=True)
        if (args.monai or not args.quick) and not args.no_monai:
            result["monai"] = monai_side_by_side(
                ckpts["unet-effb2"], args.monai_frames, args.monai_rounds, engines, tmp / "monai"
            )
            print(json.dumps({k: v for k, v in result["monai"].items() if k != "cpu"}, indent=1), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    out.with_suffix(".md").write_text(render_md(result))
    print(render_md(result))


if __name__ == "__main__":
    main()
