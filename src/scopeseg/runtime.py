"""Process-wide CPU settings of the inference engines: CPU features, allocator tuning, torch threads, ONNX
Runtime sessions and OpenVINO compiled models.

CPU features come from ``/proc/cpuinfo`` at run time: the hosts we run on differ from day to day (AVX2 only, or
AVX-512 with avx512_bf16 and AMX), and the best engine and precision depend on them.

glibc serves every allocation over its mmap threshold (128 KiB, raised adaptively to at most 32 MiB) with
a fresh ``mmap`` and gives it back on free, so each large torch temporary is page-faulted in again (a
32 MiB GELU took 25 ms instead of 7 ms here; the LiteMedSAM encoder 1.84 s instead of 1.10 s). Keeping
large blocks in the heap, as jemalloc/tcmalloc do (PyTorch's CPU tuning guide), removes that cost.
``SCOPESEG_MALLOC_TUNING=0`` leaves the allocator alone.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: blocks up to this size come from the heap and up to this much free heap is kept (bytes)
KEEP_BYTES = 1 << 30
_tuned: bool | None = None
#: CPU classes, best first: the first whose flags are all present names the host (``cpu_class``)
CPU_CLASSES: dict[str, tuple[str, ...]] = {
    "amx": ("amx_bf16", "amx_tile", "avx512_bf16"),
    "avx512_bf16": ("avx512_bf16",),
    "avx512": ("avx512f",),
    "avx2": ("avx2", "fma"),
    "baseline": (),
}
#: flags that decide engines and precisions (printed with every benchmark)
KEY_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
#: flags that give native bf16 arithmetic (OpenVINO bf16 runs only with one of them)
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=1)
def cpu_info(path: str = "/proc/cpuinfo") -> dict[str, Any]:
    """``{"model": name, "flags": frozenset}`` of the first CPU in ``path`` (empty when unreadable)."""
    model, flags = "unknown", frozenset()
    try:
        text = Path(path).read_text()
    except OSError:
        return {"model": model, "flags": flags}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model == "unknown":
            model = value.strip()
        elif key == "flags" and not flags:
            flags = frozenset(value.split())
    return {"model": model, "flags": flags}


def cpu_flags() -> frozenset[str]:
    """The CPU flags of this host (``/proc/cpuinfo``)."""
    return cpu_info()["flags"]


def native_bf16(flags: frozenset[str] | None = None) -> bool:
    """True when the CPU computes in bf16 natively (avx512_bf16 or AMX)."""
    flags = cpu_flags() if flags is None else flags
    return any(f in flags for f in BF16_FLAGS)


def cpu_class(flags: frozenset[str] | None = None) -> str:
    """The best ``CPU_CLASSES`` entry whose flags this host has (``amx`` ... ``baseline``)."""
    flags = cpu_flags() if flags is None else flags
    return next(name for name, need in CPU_CLASSES.items() if all(f in flags for f in need))


def cpu_summary() -> dict[str, Any]:
    """CPU model, class, the engine-relevant flags it has and the load average: what a benchmark records."""
    info = cpu_info()
    return {
        "model": info["model"],
        "class": cpu_class(),
        "flags": [f for f in KEY_FLAGS if f in info["flags"]],
        "cores": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def tune_allocator() -> bool:
    """Keep large freed blocks for reuse (glibc ``mallopt``); True when applied. Idempotent, never raises."""
    global _tuned
    if _tuned is not None:
        return _tuned
    _tuned = False
    if os.environ.get("SCOPESEG_MALLOC_TUNING", "1") == "0":
        return False
    libc = ctypes.CDLL(None)  # the symbols already loaded in this process
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):  # not glibc
        return False
    mallopt = libc.mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, KEEP_BYTES) == 1 and mallopt(_M_TRIM_THRESHOLD, KEEP_BYTES) == 1
    if not ok:
        log.debug("mallopt refused the thresholds; allocator unchanged")
    _tuned = ok
    return ok


def configure_torch(threads: int | None = None) -> None:
    """Tune the allocator and, when given, set torch's intra-op threads (process-wide, as torch has no other)."""
    tune_allocator()
    if threads:
        import torch

        torch.set_num_threads(int(threads))


def ort_session(path: str | Path, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session: full graph optimisation, ``threads`` intra-op threads (default: ORT's).

    Workers spin inside a run but stop at its end: otherwise an encoder's idle workers keep spinning while a
    decoder runs on the same cores (first decode after an encode 89 ms instead of 43 ms).
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.force_spinning_stop", "1")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


#: OpenVINO ``INFERENCE_PRECISION_HINT`` per precision name; f32 is always explicit (on a bf16 CPU the default is bf16)
OV_HINTS = {"fp32": "f32", "bf16": "bf16"}


@functools.lru_cache(maxsize=1)
def ov_core() -> Any:
    """The process's OpenVINO ``Core`` (created once)."""
    import openvino as ov

    return ov.Core()


def ov_compile(
    path: str | Path, precision: str = "fp32", threads: int | None = None, cache_dir: str | Path | None = None
) -> Any:
    """An OpenVINO CPU compiled model of an ``.onnx`` or ``.xml`` file at ``precision`` (``fp32``/``bf16``).

    ``cache_dir`` keeps compiled blobs (a second compile of the same file and settings loads instead);
    ``threads`` sets ``INFERENCE_NUM_THREADS`` (default: OpenVINO's, all cores).
    """
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": OV_HINTS[precision]}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    if cache_dir is not None:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        config["CACHE_DIR"] = str(cache_dir)
    return ov_core().compile_model(str(path), "CPU", config)
