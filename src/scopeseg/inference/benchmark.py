"""Latency of a dense (semantic) model per engine and precision on this host: model-only and end to end.

Model-only: ``engine.forward`` on one prepared ``1x3xHxW`` batch. End to end: read a JPEG frame from disk ->
the predictor's preprocessing -> model -> postprocessing (logits to probabilities and a label map at the frame's
size) -> PNG encode and write. Each engine/precision runs in its own worker process (``python -m
scopeseg.inference.benchmark``, its threads fixed before torch loads) and the rounds are interleaved: round r
runs every worker once, in a rotated order, while the others wait idle, so drift of a shared machine hits them
alike. Medians and 90th percentiles over the rounds; speed-ups are ratios to torch fp32 measured in the same
run; outputs are compared with torch fp32's logits (max abs diff). The result records the CPU model, its
engine-relevant flags, the thread count and the load average before and after.

``scopeseg benchmark MODEL`` and ``benchmarks/inference.py`` both call ``run_benchmark``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from ..config import BaseConfig
from ..errors import ModelError

#: the engines a benchmark runs by default (every dense engine)
DEFAULT_ENGINES = ("torch", "onnx", "openvino")


class BenchmarkConfig(BaseConfig):
    """Settings of ``scopeseg benchmark MODEL key=value...``."""

    engines: list[str] = Field(default_factory=lambda: list(DEFAULT_ENGINES))
    #: precisions to try; ones an engine or this CPU cannot run are listed as skipped (bf16 needs avx512_bf16/AMX)
    precisions: list[str] = Field(default_factory=lambda: ["fp32", "bf16"])
    size: list[int] = Field(default_factory=lambda: [480, 736], min_length=2, max_length=2)  # frame H, W
    threads: int = Field(2, ge=1)
    rounds: int = Field(7, ge=1)
    warmup: int = Field(2, ge=0)


def plan_cases(engines: list[str], precisions: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """``(engine, precision)`` pairs this host runs, and one line per skipped pair saying why."""
    from ..runtime import native_bf16
    from .engines import engine_class

    cases, skipped = [], []
    for engine in engines:
        cls = engine_class(engine, "dense")
        for precision in precisions:
            if precision not in cls.precisions:
                skipped.append(f"{engine} {precision}: the engine has no {precision} for dense models")
                continue
            if precision == "bf16" and not native_bf16():
                skipped.append(f"{engine} {precision}: this CPU has no native bf16 (avx512_bf16/amx_bf16)")
                continue
            cases.append((engine, precision))
    return cases, skipped


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


# --- the worker: one engine in its own process -----------------------------------------------------------


def _worker(model: str, engine: str, precision: str, threads: int, frame: str, work: str) -> None:
    """Load one engine, answer ``round`` (one model-only and one end-to-end timing), ``logits PATH``, ``quit``."""
    from ..io import read_image, write_image
    from .semantic import Predictor

    predictor = Predictor.from_pretrained(
        model, engine=engine, precision=precision, threads=threads, batch_size=1
    )
    img = read_image(frame)
    batch = predictor.prepare(img)[None]
    out = Path(work) / f"{engine}-{precision}.png"

    def end_to_end() -> None:
        im = read_image(frame)
        labels = predictor.labels(predictor.probabilities([im])[0])
        write_image(out, labels * 255 if predictor.binary else labels)

    print(json.dumps({"ready": True, "chosen_by": getattr(predictor.engine, "chosen_by", "")}), flush=True)
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "round":
            t0 = time.perf_counter()
            predictor.engine(batch)
            t1 = time.perf_counter()
            end_to_end()
            t2 = time.perf_counter()
            print(json.dumps({"model_s": t1 - t0, "e2e_s": t2 - t1}), flush=True)
        elif cmd == "logits":
            np.save(arg, predictor.engine(batch))
            print(json.dumps({"saved": arg}), flush=True)
        else:
            break


class _Worker:
    def __init__(self, model: str, engine: str, precision: str, threads: int, frame: Path, work: Path):
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        cmd = [sys.executable, "-m", "scopeseg.inference.benchmark", model, engine, precision, str(threads)]
        self.name = f"{engine} {precision}"
        self.proc = subprocess.Popen(
            [*cmd, str(frame), str(work)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.hello = self.ask(None)

    def ask(self, line: str | None) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if line is not None:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        while True:
            reply = self.proc.stdout.readline()
            if not reply:
                err = self.proc.stderr.read() if self.proc.stderr else ""
                tail = err.strip().splitlines()[-1] if err.strip() else f"exit {self.proc.wait()}"
                raise ModelError(f"benchmark worker {self.name} failed: {tail}")
            if reply.startswith("{"):
                return json.loads(reply)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")  # type: ignore[union-attr]
                self.proc.stdin.close()  # type: ignore[union-attr]
            except (BrokenPipeError, OSError):
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- the driver ------------------------------------------------------------------------------------------


def run_benchmark(
    model: str | Path, config: BenchmarkConfig | None = None, frame: str | Path | None = None
) -> dict:
    """Time every engine/precision of ``config`` on ``model`` (a checkpoint or export folder); a result dict.

    ``frame``: the JPEG read in the end-to-end timing (default: a deterministic synthetic frame of ``size``).
    Rows: ``model_ms``/``e2e_ms`` median and p90, frames per second end to end, speed-ups vs torch fp32 of this
    run (when it ran), ``e2e_over_model`` and ``max_abs_diff`` of the logits vs torch fp32.
    """
    from ..io import write_image
    from ..runtime import cpu_summary
    from .calibration import synthetic_frame

    cfg = config or BenchmarkConfig()
    h, w = cfg.size
    cases, skipped = plan_cases(cfg.engines, cfg.precisions)
    if not cases:
        raise ModelError(f"no engine/precision to benchmark here ({'; '.join(skipped)})")
    machine_before = cpu_summary()
    with tempfile.TemporaryDirectory(prefix="scopeseg-bench-") as tmp:
        work = Path(tmp)
        if frame is None:
            frame = write_image(work / "frame_0001.jpg", synthetic_frame(h, w, 1), quality=90)
        workers: list[_Worker] = []
        times: dict[str, dict[str, list[float]]] = {}
        try:
            for engine, precision in cases:  # one at a time: a graph engine may export the checkpoint first
                t0 = time.perf_counter()
                wk = _Worker(str(model), engine, precision, cfg.threads, Path(frame), work)
                wk.load_s = time.perf_counter() - t0  # type: ignore[attr-defined]
                workers.append(wk)
                times[wk.name] = {"model_s": [], "e2e_s": []}
            for _ in range(cfg.warmup):
                for wk in workers:
                    wk.ask("round")
            for r in range(cfg.rounds):
                k = r % len(workers)
                for wk in workers[k:] + workers[:k]:
                    res = wk.ask("round")
                    for key in ("model_s", "e2e_s"):
                        times[wk.name][key].append(res[key])
            logits = {}
            for wk in workers:
                path = work / f"logits-{wk.name.replace(' ', '-')}.npy"
                wk.ask(f"logits {path}")
                logits[wk.name] = np.load(path)
        finally:
            for wk in workers:
                wk.close()
    base = "torch fp32" if "torch fp32" in times else None
    rows = []
    for wk in workers:
        t = times[wk.name]
        model_med, e2e_med = statistics.median(t["model_s"]), statistics.median(t["e2e_s"])
        row: dict[str, Any] = {
            "engine": wk.name.split()[0],
            "precision": wk.name.split()[1],
            "load_s": round(wk.load_s, 3),  # type: ignore[attr-defined]
            "model_ms": 1000 * model_med,
            "model_ms_p90": 1000 * _percentile(t["model_s"], 90),
            "e2e_ms": 1000 * e2e_med,
            "e2e_ms_p90": 1000 * _percentile(t["e2e_s"], 90),
            "e2e_fps": 1.0 / e2e_med,
            "e2e_over_model": e2e_med / model_med,
            "model_runs_s": t["model_s"],
            "e2e_runs_s": t["e2e_s"],
        }
        if base:
            row["model_speedup_vs_torch_fp32"] = statistics.median(times[base]["model_s"]) / model_med
            row["e2e_speedup_vs_torch_fp32"] = statistics.median(times[base]["e2e_s"]) / e2e_med
            row["max_abs_diff_vs_torch_fp32"] = float(np.abs(logits[wk.name] - logits[base]).max())
        rows.append(row)
    machine = dict(machine_before)
    machine["load_average_after"] = cpu_summary()["load_average"]
    return {
        "model": str(model),
        "size": [h, w],
        "threads": cfg.threads,
        "rounds": cfg.rounds,
        "warmup": cfg.warmup,
        "machine": machine,
        "rows": rows,
        "skipped": skipped,
    }


def format_table(result: dict) -> str:
    """A plain-text table of ``run_benchmark``'s result (what ``scopeseg benchmark`` prints)."""
    m = result["machine"]
    h, w = result["size"]
    lines = [
        f"{result['model']} at {h}x{w}, {result['threads']} threads, {result['rounds']} interleaved rounds "
        f"(one process per engine)",
        f"CPU {m['model']} (class {m['class']}; flags {' '.join(m['flags']) or 'none of note'}), "
        f"load average {' '.join(f'{v:.2f}' for v in m['load_average'] or [])} -> "
        f"{' '.join(f'{v:.2f}' for v in m.get('load_average_after') or [])}",
        f"{'engine':<10}{'precision':<10}{'model ms':>10}{'p90':>8}{'e2e ms':>10}{'p90':>8}{'fps':>8}"
        f"{'model x':>9}{'e2e x':>8}{'max|diff|':>11}",
    ]
    for r in result["rows"]:
        sm = r.get("model_speedup_vs_torch_fp32")
        se = r.get("e2e_speedup_vs_torch_fp32")
        d = r.get("max_abs_diff_vs_torch_fp32")
        lines.append(
            f"{r['engine']:<10}{r['precision']:<10}{r['model_ms']:>10.1f}{r['model_ms_p90']:>8.1f}"
            f"{r['e2e_ms']:>10.1f}{r['e2e_ms_p90']:>8.1f}{r['e2e_fps']:>8.1f}"
            f"{(f'{sm:.2f}x' if sm else '-'):>9}{(f'{se:.2f}x' if se else '-'):>8}"
            f"{(f'{d:.1e}' if d is not None else '-'):>11}"
        )
    lines += [f"skipped: {s}" for s in result.get("skipped", [])]
    return "\n".join(lines)


if __name__ == "__main__":
    _worker(*sys.argv[1:4], int(sys.argv[4]), *sys.argv[5:7])
