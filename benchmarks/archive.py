"""Archive prediction on this machine: 20 synthetic videos, runner=local vs a local Ray cluster with 1 and 2
workers (1 thread each); outputs compared byte for byte, throughput as frames/s and the 2-vs-1 ratio.

The model is a unet-effb0 with a fixed seed (untrained: speed and identity only). One Ray cluster (2 CPUs) is
started once and shared by both Ray runs; its start is reported apart. Job seconds include each worker loading
the model. Runs are interleaved (local, ray x1, ray x2, repeated) and the median is reported with the load
average, since the machine is shared.

Run: ``flock /tmp/heavy.lock .venv/bin/python benchmarks/archive.py [--videos 20 --frames 30 --rounds 2]``
-> benchmarks/results/archive.{json,md} (``--name``: another file, e.g. for a quick unlocked run).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]


def tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "manifest.json"
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--videos", type=int, default=20)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--size", default="128x192")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--name", default="archive", help="results file name (benchmarks/results/NAME.json/.md)")
    args = ap.parse_args()

    import torch

    from scopeseg.archive.predict import predict_archive
    from scopeseg.archive.runner import connect
    from scopeseg.cli import main as cli
    from scopeseg.inference.semantic_files import PredictConfig
    from scopeseg.models import create_model, save_pretrained
    from scopeseg.runtime import cpu_summary

    work = Path(tempfile.mkdtemp(prefix="scopeseg-archive-bench-"))
    try:
        data = work / "synth"
        cli(["-q", "synth", str(data), f"videos={args.videos}", f"frames={args.frames}", f"size={args.size}"])
        torch.manual_seed(0)
        m = create_model("unet-effb0", classes=["tool"]).eval()
        m.config.update(input_size=[int(v) for v in args.size.split("x")], threshold=0.5)
        model = save_pretrained(m, work / "model")
        frames = args.videos * args.frames

        t0 = time.perf_counter()
        cluster = connect(None, 2)
        start_s = time.perf_counter() - t0
        runs = {"local": PredictConfig(threads=1)}
        runs["ray_1_worker"] = PredictConfig(runner="ray", workers=1, threads=1)
        runs["ray_2_workers"] = PredictConfig(runner="ray", workers=2, threads=1)
        seconds: dict[str, list[float]] = {k: [] for k in runs}
        unit_seconds: dict[str, list[float]] = {k: [] for k in runs}  # inside the workers, summed
        trees: dict[str, dict[str, bytes]] = {}
        loads = []
        try:
            for r in range(args.rounds):
                for name, cfg in runs.items():
                    out = work / f"{name}-{r}"
                    rep = predict_archive(model, data / "videos", out, cfg)
                    assert not rep.failed, rep.failed
                    seconds[name].append(rep.seconds)
                    manifest = json.loads((out / "manifest.json").read_text())["units"]
                    unit_seconds[name].append(sum(u["seconds"] for u in manifest.values()))
                    loads.append(os.getloadavg()[0])
                    trees.setdefault(name, tree(out))
                    shutil.rmtree(out)
        finally:
            cluster.close()
        ref = trees["local"]
        identical = {k: t.keys() == ref.keys() and all(t[f] == ref[f] for f in ref) for k, t in trees.items()}
        med = {k: statistics.median(v) for k, v in seconds.items()}
        result = {
            "videos": args.videos,
            "frames_per_video": args.frames,
            "size": args.size,
            "threads_per_worker": 1,
            "rounds": args.rounds,
            "cpu": cpu_summary(),
            "cpus": os.cpu_count(),
            "load_average_during_runs": [round(v, 2) for v in loads],
            "ray_cluster_start_s": round(start_s, 2),
            "job_seconds": {k: [round(x, 2) for x in v] for k, v in seconds.items()},
            "median_seconds": {k: round(v, 2) for k, v in med.items()},
            "unit_seconds_summed": {k: [round(x, 2) for x in v] for k, v in unit_seconds.items()},
            "frames_per_s": {k: round(frames / v, 2) for k, v in med.items()},
            "speedup_2_vs_1_worker": round(med["ray_1_worker"] / med["ray_2_workers"], 3),
            "ray_1_worker_vs_local": round(med["local"] / med["ray_1_worker"], 3),
            "outputs_identical_to_local": identical,
            "note": "job seconds include starting the workers (a Python process each, importing torch, loading "
            "the model): with small units that start dominates; unit_seconds_summed is the work inside units",
            "output_files": len(ref),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res = ROOT / "benchmarks" / "results"
    res.mkdir(parents=True, exist_ok=True)
    (res / f"{args.name}.json").write_text(json.dumps(result, indent=2, default=str))
    lines = [
        "# Archive prediction: runner=local vs Ray workers (1 thread each)",
        "",
        f"{args.videos} synthetic videos x {args.frames} frames at {args.size}, unet-effb0 (seeded, untrained), "
        f"{args.rounds} interleaved rounds (median); CPU {result['cpu']}, {result['cpus']} cores, "
        f"load average {min(loads):.2f}-{max(loads):.2f}. Ray cluster start {start_s:.1f} s (not in the job times).",
        "",
        "| run | job s (median) | frames/s | unit s summed | outputs identical to local |",
        "|---|---|---|---|---|",
    ]
    for k in runs:
        us = statistics.median(unit_seconds[k])
        lines.append(f"| {k} | {med[k]:.2f} | {frames / med[k]:.1f} | {us:.2f} | {identical[k]} |")
    lines += ["", f"2 workers vs 1: **{result['speedup_2_vs_1_worker']}x**", "", result["note"], ""]
    (res / f"{args.name}.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
