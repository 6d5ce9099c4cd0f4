"""Helpers shared by the benchmarks: backend selection per parameter."""
import numpy as np

from xpnn import backend

BACKENDS = ["numpy", "cupy"]


def use(name):
    """Switch to backend ``name``; a missing GPU skips the benchmark
    (asv treats NotImplementedError raised in setup as 'skipped')."""
    try:
        backend.set_backend(name)
    except RuntimeError as exc:
        raise NotImplementedError(f"backend {name} unavailable: {exc}") from None
    return backend.namespace()


def arr(a, dtype=np.float32):
    return backend.to_device(np.asarray(a, dtype=dtype))


def sync():
    backend.synchronize()
