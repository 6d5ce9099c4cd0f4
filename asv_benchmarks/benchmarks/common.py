"""Helpers shared by the benchmarks: backend selection per parameter."""
import numpy as np

from xpnn import backend

#: the backend parameter of every benchmark: torch runs on the best device
#: present (the CPU here, CUDA on a GPU machine), cupy needs a GPU
BACKENDS = ["numpy", "torch", "cupy"]


def use(name):
    """Switch to backend ``name``; a missing GPU or PyTorch skips the
    benchmark (asv treats NotImplementedError raised in setup as 'skipped')."""
    try:
        backend.set_backend(name)
    except RuntimeError as exc:
        raise NotImplementedError(f"backend {name} unavailable: {exc}") from None
    return backend.namespace()


def arr(a, dtype=np.float32):
    return backend.to_device(np.asarray(a, dtype=dtype))


def sync():
    backend.synchronize()
