"""Process-wide CPU settings for torch inference (allocator), applied by the torch inference engines.

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
