"""xpnn: CS231n-style neural-network layers on NumPy (with Cython) or CuPy."""
# the backend package comes first: its NumPy backend tunes the host (how
# OpenBLAS's threads wait, the allocator) before NumPy loads OpenBLAS
from . import backend
from .backend import get_backend, set_backend, to_device, to_numpy, use_backend

__version__ = "0.1.0"
__all__ = ["backend", "get_backend", "set_backend", "use_backend", "to_device",
           "to_numpy", "__version__"]
