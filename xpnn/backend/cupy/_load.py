"""Importing CuPy and proving that a GPU and the CUDA libraries xpnn uses
work, or saying exactly why not. Every module of the CuPy backend reaches
CuPy through :func:`cupy_module`."""
from __future__ import annotations

import importlib


def cupy_module():
    """The CuPy module, once a GPU and its libraries are proved usable;
    else RuntimeError saying why."""
    if _probed.get("ok"):
        return _probed["ok"]
    try:
        cupy = importlib.import_module("cupy")
    except ImportError as exc:
        raise RuntimeError(
            "the 'cupy' backend needs CuPy, which is not installed "
            f"({exc}); install it with: pip install 'cupy-cuda13x[ctk]>=14' (CUDA 13, its "
            "libraries included) or pip install 'cupy-cuda12x>=13' (CUDA 12, as on Colab); "
            "from xpnn's own folder: pip install -e '.[gpu-cuda13]'") from exc
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError: no driver, or driver too old
        raise RuntimeError(
            "the 'cupy' backend cannot reach a CUDA driver: "
            f"{type(exc).__name__}: {exc}. Install an NVIDIA driver or use "
            "XPNN_BACKEND=numpy") from exc
    if count < 1:
        raise RuntimeError(
            "the 'cupy' backend found a CUDA driver but no GPU device; "
            "use XPNN_BACKEND=numpy")
    probe_cuda_libraries(cupy)
    _probed["ok"] = cupy
    return cupy


#: "ok": the CuPy module, once it has been proved to work
_probed: dict = {}

# what xpnn needs of CUDA beyond the driver, and how each is proved
_CUDA_LIBRARIES = (
    ("cuBLAS", "cublas", "a float32 matrix product"),
    ("NVRTC", "nvrtc", "compiling a small elementwise kernel"),
    ("cuRAND", "curand", "drawing random numbers"),
)


def probe_cuda_libraries(cupy) -> None:
    """Prove that the CUDA libraries xpnn uses load and work, with one tiny
    operation each; else raise RuntimeError naming the library that failed
    and how to install it. (A CuPy wheel without the CUDA libraries imports
    and counts the GPU, then fails at the first matmul with a loader error.)"""
    def matmul():
        a = cupy.ones((2, 2), dtype=cupy.float32)
        return (a @ a).get()

    def compile_kernel():
        k = cupy.ElementwiseKernel("T x", "T y", "y = x + 1", "xpnn_probe")
        return k(cupy.zeros(2, dtype=cupy.float32)).get()

    def draw():
        return cupy.random.RandomState(0).random_sample(2).get()

    for (label, _, what), action in zip(_CUDA_LIBRARIES, (matmul, compile_kernel, draw)):
        try:
            action()
        except Exception as exc:  # loader errors come as several types
            raise RuntimeError(
                f"the 'cupy' backend found a GPU but {label} does not work ({what} "
                f"failed: {type(exc).__name__}: {exc}). CuPy {getattr(cupy, '__version__', '?')}"
                " needs the CUDA libraries of its CUDA version: install them with "
                "pip install 'cupy-cuda13x[ctk]>=14' (CuPy 14 with the CUDA 13 libraries; "
                "from xpnn's own folder: pip install -e '.[gpu-cuda13]'), or use a CUDA "
                "toolkit of CuPy's version (CUDA_PATH); or use XPNN_BACKEND=numpy") from exc
