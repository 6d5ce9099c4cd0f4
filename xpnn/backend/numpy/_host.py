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
    environment, or let :func:`pool_blas_threads` take OpenBLAS's parallel
    work."""
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


#: where each OpenBLAS build names the function that takes a thread pool
#: (NumPy's and SciPy's wheels prefix their copy's symbols)
_CALLBACK_SETTERS = ("scipy_openblas_set_threads_callback_function64_",
                     "scipy_openblas_set_threads_callback_function",
                     "openblas_set_threads_callback_function64_",
                     "openblas_set_threads_callback_function")

#: ... and the function that says how many threads it uses
_THREAD_GETTERS = ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads",
                   "openblas_get_num_threads64_", "openblas_get_num_threads")

#: the OpenBLAS libraries whose parallel work xpnn's pool runs
blas_pool_libraries: list = []


def _loaded_openblas() -> list:  # pragma: no mutate block (runs at import)
    """Paths of the OpenBLAS libraries this process has loaded (Linux)."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split(None, 5)[-1].strip() for line in f if "openblas" in line.lower()}
    except OSError:
        return []
    return sorted(p for p in paths if p.startswith("/") and ".so" in p)


def pool_blas_threads(pool_address, pool_start=None) -> list:  # pragma: no mutate block (runs at import)
    """Run OpenBLAS's parallel work on xpnn's pool (``_cython/blas_pool.h``),
    whose threads sleep ~10 µs after their work, when OpenBLAS's own threads
    would spin ~0.1 s: NumPy was imported before xpnn (too late for
    OPENBLAS_THREAD_TIMEOUT) and the user set no OPENBLAS_THREAD_TIMEOUT.
    ``pool_address()`` gives the pool's C function. Needs OpenBLAS 0.3.27 or
    later; ``XPNN_NO_BLAS_TUNING=1`` leaves OpenBLAS alone. The pool's
    threads are started first (``pool_start(n)``, one fewer than OpenBLAS
    uses): a machine that cannot start them keeps OpenBLAS's own. Returns
    the libraries handed to the pool (none when nothing applied)."""
    if blas_pool_libraries or blas_wait_tuned or "OPENBLAS_THREAD_TIMEOUT" in os.environ \
            or os.environ.get("XPNN_NO_BLAS_TUNING") == "1" or pool_address is None:
        return blas_pool_libraries
    for path in _loaded_openblas():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _CALLBACK_SETTERS:
            setter = getattr(lib, name, None)
            getter = next((getattr(lib, g) for g in _THREAD_GETTERS if hasattr(lib, g)), None)
            if setter is not None and pool_start is not None and getter is not None:
                getter.restype = ctypes.c_int
                if not pool_start(max(0, int(getter()) - 1)):
                    break
            if setter is not None:
                setter.argtypes = [ctypes.c_void_p]
                setter.restype = None
                setter(ctypes.c_void_p(pool_address()))
                blas_pool_libraries.append(path)
                break
    return blas_pool_libraries
