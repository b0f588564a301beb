"""Training-step throughput and peak memory of every registered semantic model at 480x736, batch 2.

One step = forward + Dice+BCE loss (binary, the MONAI tool bundle's task) + backward + AdamW step, as in
``scopeseg train``. Each model runs in a fresh subprocess so its peak RSS (``getrusage`` maxrss) is its own;
a few warmup steps, then timed steps. Wall-clock images/s depends on the machine's load (the cores are
shared), so process CPU seconds per image are reported too, and the load average around each model.
Speeds are also given as a ratio to ``unet-effb2`` (the bundle's model) measured in the same run.
``--precisions 32-true,bf16-mixed`` adds the CPU bf16 autocast step Lightning's ``precision=bf16-mixed`` runs
(fast only on CPUs with native bf16: avx512_bf16 / AMX; the result file records the CPU flags).
Results: ``benchmarks/results/train_throughput.{json,md}``.
Run: ``.venv/bin/python benchmarks/train_throughput.py [--models unet-lite0,...] [--steps 3] [--warmup 2]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
BASELINE = "unet-effb2"


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def measure(
    name: str,
    batch: int,
    size: tuple[int, int],
    warmup: int,
    steps: int,
    threads: int,
    precision: str = "32-true",
    seed: int = 0,
) -> dict:
    """Time ``steps`` training steps of model ``name`` (random init) after ``warmup`` untimed ones;
    ``bf16-mixed`` runs forward and loss under CPU bf16 autocast, as Lightning does."""
    import contextlib

    import torch

    torch.set_num_threads(threads)

    from scopeseg.losses import build_loss
    from scopeseg.models.registry import create_model

    torch.manual_seed(seed)
    model = create_model(name, classes=["instrument"], pretrained=False).train()
    loss_fn = build_loss("dice:1,bce:1", binary=True)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 3, *size, generator=g)
    y = (torch.rand(batch, *size, generator=g) > 0.8).long()

    def cast():
        if precision == "bf16-mixed":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        with cast():
            loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return float(loss.detach())

    for _ in range(warmup):
        step()
    load_before = os.getloadavg()[0]
    walls, cpus = [], []
    for _ in range(steps):
        c0, t0 = _cpu_seconds(), time.perf_counter()
        step()
        walls.append(time.perf_counter() - t0)
        cpus.append(_cpu_seconds() - c0)
    return {
        "model": name,
        "precision": precision,
        "params_m": round(model.num_parameters() / 1e6, 2),
        "step_seconds": [round(w, 3) for w in walls],
        "step_seconds_median": statistics.median(walls),
        "images_per_s": batch * steps / sum(walls),
        "cpu_seconds_per_image": sum(cpus) / (batch * steps),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "loadavg_1_before": round(load_before, 2),
        "loadavg_1_after": round(os.getloadavg()[0], 2),
    }


def run_worker(name: str, args, threads: int, precision: str) -> dict:
    """Measure one model in a fresh interpreter; returns its JSON line."""
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        name,
        "--batch",
        str(args.batch),
        "--size",
        f"{args.size[0]}x{args.size[1]}",
        "--warmup",
        str(args.warmup),
        "--steps",
        str(args.steps),
        "--threads",
        str(threads),
        "--precisions",
        precision,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        err = proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"
        return {"model": name, "threads": threads, "precision": precision, "error": err}
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "threads": threads}


def markdown(out: dict[str, Any]) -> str:
    a = out["setup"]
    lines = [
        f"# Training-step throughput at {a['size'][0]}x{a['size'][1]}, batch {a['batch']}",
        "",
        f"Step = forward + {a['loss']} + backward + AdamW, CPU, torch {out['machine']['torch']} "
        f"({out['machine']['torch_threads']} threads); {a['warmup']} warmup + {a['steps']} timed steps per "
        "model, each model in a fresh process (peak RSS = that process's maxrss).",
        f"Machine: {out['machine']['cpu_count']} cores **shared with other jobs**: load average "
        f"{out['machine']['loadavg_1_5_15']} at start, {out['loadavg_end']} at the end, so wall-clock numbers "
        "are pessimistic; CPU s/image is less load-dependent.",
        f"CPU: {out['machine'].get('cpu', {}).get('model', '?')}, class {out['machine'].get('cpu', {}).get('class', '?')}, "
        f"flags {', '.join(out['machine'].get('cpu', {}).get('flags', [])) or 'none of the listed'}.",
        "",
        f"| model | precision | threads | params (M) | images/s | step s (median) | CPU s/image | peak RSS (MB) | speed vs {BASELINE} "
        "| bf16 vs fp32 | load (1 min) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in out["models"]:
        if "error" in r:
            lines.append(
                f"| {r['model']} | {r.get('precision', '32-true')} | {r['threads']} | error: {r['error']} | | | | | | | |"
            )
            continue
        ratio, vs32 = r.get("speed_vs_baseline"), r.get("speed_vs_fp32")
        lines.append(
            f"| {r['model']} | {r.get('precision', '32-true')} | {r['threads']} | {r['params_m']:.2f} | {r['images_per_s']:.2f} | {r['step_seconds_median']:.2f} "
            f"| {r['cpu_seconds_per_image']:.2f} | {r['peak_rss_mb']:.0f} | "
            f"{'' if ratio is None else f'{ratio:.2f}x'} | "
            f"{'' if vs32 is None else f'{vs32:.2f}x'} | {r['loadavg_1_before']:.1f} |"
        )
    lines += [
        "",
        f"speed vs {BASELINE} = ratio of CPU seconds per image (baseline / model) at the same thread count "
        "and precision, measured in the same run; bf16 vs fp32 = the model's fp32 CPU s/image over its bf16-mixed.",
        "With other jobs on the 2 cores, 2 torch threads are far slower than 1 (each OpenMP thread spin-waits "
        "for a descheduled partner), and their numbers vary several-fold between models: they measure the "
        "contention, not the model. Use 1 thread on a shared machine.",
        "",
        f"Command: `{out['command']}`",
        "",
    ]
    return "\n".join(lines)


def parse_size(text: str) -> tuple[int, int]:
    h, w = text.lower().split("x")
    return int(h), int(w)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=None, help="comma-separated; default: every semantic model")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--size", type=parse_size, default=(480, 736))
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument(
        "--threads",
        default="1",
        help="torch threads, comma-separated to compare (1: fastest on oversubscribed shared cores)",
    )
    ap.add_argument(
        "--precisions", default="32-true", help="comma-separated: 32-true, bf16-mixed (CPU autocast)"
    )
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--name", default="train_throughput", help="result file stem in --out")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        threads = int(args.threads)
        print(
            json.dumps(
                measure(args.worker, args.batch, args.size, args.warmup, args.steps, threads, args.precisions)
            )
        )
        return 0

    import torch

    from scopeseg.io import write_json, write_text
    from scopeseg.models.registry import list_models
    from scopeseg.runtime import cpu_summary

    models = args.models.split(",") if args.models else list_models(family="semantic")
    start = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": args.threads,
        "torch_default_threads": torch.get_num_threads(),
        "loadavg_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "cpu": cpu_summary(),
    }
    rows = []
    for threads in [int(t) for t in args.threads.split(",")]:
        for name in models:
            for precision in args.precisions.split(","):
                r = run_worker(name, args, threads, precision)
                rows.append(r)
                print(json.dumps(r), flush=True)

    def same(b: dict, r: dict, model: str, precision: str) -> bool:
        return b["model"] == model and b["threads"] == r["threads"] and b.get("precision") == precision

    for r in rows:
        if "error" in r:
            continue
        base = next((b for b in rows if same(b, r, BASELINE, r["precision"]) and "error" not in b), None)
        if base:
            r["speed_vs_baseline"] = base["cpu_seconds_per_image"] / r["cpu_seconds_per_image"]
        fp32 = next((b for b in rows if same(b, r, r["model"], "32-true") and "error" not in b), None)
        if fp32 and r["precision"] != "32-true":
            r["speed_vs_fp32"] = fp32["cpu_seconds_per_image"] / r["cpu_seconds_per_image"]
    out = {
        "benchmark": "train_throughput",
        "setup": {
            "batch": args.batch,
            "size": list(args.size),
            "warmup": args.warmup,
            "steps": args.steps,
            "loss": "dice:1,bce:1 (binary)",
            "optimizer": "AdamW lr 1e-3 wd 1e-4",
            "init": "random (pretrained weights do not change speed)",
        },
        "machine": start,
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "models": rows,
        "command": "python benchmarks/train_throughput.py " + " ".join(sys.argv[1:]),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / f"{args.name}.json", out, indent=2)
    write_text(args.out / f"{args.name}.md", markdown(out))
    print(markdown(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
