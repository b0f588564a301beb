"""Process-wide CPU settings of the inference engines: allocator tuning, torch threads, ONNX Runtime sessions.

glibc serves every allocation over its mmap threshold (128 KiB, raised adaptively to at most 32 MiB) with
a fresh ``mmap`` and gives it back on free, so each large torch temporary is page-faulted in again (a
32 MiB GELU took 25 ms instead of 7 ms here; the LiteMedSAM encoder 1.84 s instead of 1.10 s). Keeping
large blocks in the heap, as jemalloc/tcmalloc do (PyTorch's CPU tuning guide), removes that cost.
``SCOPESEG_MALLOC_TUNING=0`` leaves the allocator alone.
"""

from __future__ import annotations

import ctypes
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
