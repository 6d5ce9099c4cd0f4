"""Host tuning for the NumPy backend: memory, and how BLAS threads wait.

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


def tune_malloc() -> bool:  # pragma: no mutate block (runs at import)
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


#: OpenBLAS worker threads spin about 2**n cycles for the next task before
#: they sleep; OpenBLAS's own default (2**28, about 0.1 s) keeps a thread
#: spinning through all of a step's non-GEMM work, and when another process
#: holds one of the cores the spinning thread and the busy process starve
#: the thread doing that work. ThreeLayerConvNet step, two cores, one busy,
#: median of 5 alternating process pairs: 38.6 ms at 2**28, 27.8 at 2**12,
#: 27.9 at 2**15; idle: 18.1, 19.2 and 18.4 ms (2**12 pays a wake-up per
#: product).
BLAS_THREAD_TIMEOUT = "15"

blas_wait_tuned = False


def tune_blas_wait() -> bool:  # pragma: no mutate block (runs at import)
    """Set OPENBLAS_THREAD_TIMEOUT (unless the user did) before NumPy loads
    OpenBLAS, which reads it once; returns whether it is in force. With
    NumPy already imported it is too late: set the variable in the
    environment instead (a notebook: ``%env OPENBLAS_THREAD_TIMEOUT=15`` in
    its first cell, before ``import numpy``)."""
    global blas_wait_tuned
    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", BLAS_THREAD_TIMEOUT)
    blas_wait_tuned = os.environ.get("OPENBLAS_THREAD_TIMEOUT") == BLAS_THREAD_TIMEOUT
    return blas_wait_tuned


def host_threads() -> int:
    """How many threads xpnn's own parallel host kernels use: XPNN_NUM_THREADS
    if set, else the BLAS thread count the user set (OPENBLAS_NUM_THREADS,
    else OMP_NUM_THREADS), else the cores this process may run on."""
    for var in ("XPNN_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)
