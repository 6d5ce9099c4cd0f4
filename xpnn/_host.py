"""Host-memory tuning for the NumPy backend.

A training step allocates and frees several multi-megabyte temporaries
(im2col columns, activations, gradients). glibc serves blocks that large
with fresh ``mmap`` calls and returns them on free, so every step pays the
kernel to fault in and zero the same memory again — a third of a small
ConvNet step on two cores. Like PyTorch's caching allocator, xpnn keeps that
memory: blocks under 64 MiB come from the heap, and up to 256 MiB of free
heap is kept rather than trimmed. Set ``XPNN_NO_MALLOC_TUNING=1`` to leave
the C allocator alone. Only glibc is affected; elsewhere this does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 64 << 20
TRIM_THRESHOLD = 256 << 20

applied = False


def tune_malloc() -> bool:
    """Apply the thresholds once; returns whether they are in force."""
    global applied
    if applied or os.environ.get("XPNN_NO_MALLOC_TUNING") == "1" \
            or not sys.platform.startswith("linux"):
        return applied
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    ok = mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
    applied = ok
    return ok
