"""xpnn: CS231n-style neural-network layers on NumPy (with Cython) or CuPy."""
from . import _host, backend
from .backend import get_backend, set_backend, to_device, to_numpy, use_backend

_host.tune_malloc()

__version__ = "0.1.0"
__all__ = ["backend", "get_backend", "set_backend", "use_backend", "to_device",
           "to_numpy", "__version__"]
