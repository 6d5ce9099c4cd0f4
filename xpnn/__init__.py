"""xpnn: CS231n-style neural-network layers on NumPy (with Cython) or CuPy."""
from . import _host

_host.tune_blas_wait()  # before NumPy (imported by backend) loads OpenBLAS
_host.tune_malloc()

from . import backend  # noqa: E402
from .backend import get_backend, set_backend, to_device, to_numpy, use_backend  # noqa: E402

__version__ = "0.1.0"
__all__ = ["backend", "get_backend", "set_backend", "use_backend", "to_device",
           "to_numpy", "__version__"]
