"""Keep large freed buffers in the process heap (glibc), so a training step does not page-fault its gradients in anew.

Every training step allocates the gradients again (`zero_grad(set_to_none=True)`), among them the word-embedding
gradient (MiniLM: 30,522 x 384 floats, 47 MB). glibc serves an allocation above its mmap threshold (at most 32 MB
by default) with a fresh `mmap` and returns it to the kernel on free, so each step page-faults and zero-fills
47 MB again (~7% of a MiniLM step on one thread). Raising the mmap and trim thresholds keeps such buffers in the
heap for reuse. Only where memory comes from: the computation, and so every number, is the same.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools

M_TRIM_THRESHOLD = -1      # mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
THRESHOLD_BYTES = 1 << 30  # allocations up to 1 GiB from the heap; keep up to 1 GiB of free heap


@functools.lru_cache(maxsize=1)
def keep_large_buffers() -> bool:
    """Raise glibc's mmap/trim thresholds once per process; False (and nothing changed) without glibc."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):   # not glibc (musl, macOS): nothing to tune
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, THRESHOLD_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, THRESHOLD_BYTES))
