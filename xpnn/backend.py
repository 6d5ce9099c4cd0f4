"""The one place that knows which array library is in use.

xpnn layers are written against the Python array-API standard; this module
chooses the array library (NumPy, CuPy or array-api-strict), moves data
between host and device, draws random numbers, and checks that the arrays of
one call come from one library. Nothing else in xpnn imports ``cupy``.

The active backend comes from the ``XPNN_BACKEND`` environment variable
(``numpy`` when unset) and can be changed with :func:`set_backend` or, for a
block of code, :func:`use_backend`.
"""
from __future__ import annotations

import contextlib
import importlib
import os
from typing import Any, Iterator

import numpy as np
import array_api_compat

__all__ = [
    "VALID_BACKENDS", "get_backend", "set_backend", "use_backend", "namespace",
    "to_device", "to_numpy", "backend_of", "namespace_of", "is_host",
    "random_uniform", "rng_state", "set_rng_state", "labels_checked",
    "label_range", "fits_on_device", "probe_cuda_libraries", "synchronize", "cupy_module",
]

VALID_BACKENDS = ("numpy", "cupy", "array_api_strict")

_state: dict[str, str | None] = {"name": None}


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or name.strip().lower() not in VALID_BACKENDS:
        raise ValueError(
            f"unknown xpnn backend {name!r}; valid names are "
            f"{', '.join(VALID_BACKENDS)} (set XPNN_BACKEND or call set_backend)")
    return name.strip().lower()


def _import_cupy():
    """Import CuPy and prove a GPU is usable, or say exactly why not."""
    try:
        cupy = importlib.import_module("cupy")
    except ImportError as exc:
        raise RuntimeError(
            "the 'cupy' backend needs CuPy, which is not installed "
            f"({exc}); install it with: pip install 'xpnn[gpu-cuda13]' (CUDA 13) or "
            "'xpnn[gpu-cuda12]' (CUDA 12)") from exc
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
    if not _probed.get("ok"):
        probe_cuda_libraries(cupy)
        _probed["ok"] = True
    return cupy


_probed: dict[str, bool] = {}

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
                "pip install 'xpnn[gpu-cuda13]' (CuPy 14, CUDA 13) or 'xpnn[gpu-cuda12]' "
                "(CuPy 13, CUDA 12), or use a CUDA toolkit of that version "
                "(CUDA_PATH); or use XPNN_BACKEND=numpy") from exc


def cupy_module():
    """The CuPy module, for the CUDA kernels (RuntimeError saying why if no
    GPU is usable). Other modules reach CuPy only through this."""
    return _import_cupy()


def get_backend() -> str:
    """Name of the active backend: 'numpy', 'cupy' or 'array_api_strict'."""
    if _state["name"] is None:
        set_backend(os.environ.get("XPNN_BACKEND", "numpy") or "numpy")
    return _state["name"]  # type: ignore[return-value]


def set_backend(name: str) -> None:
    """Make ``name`` the active backend (checked: CuPy must find a GPU)."""
    name = _check_name(name)
    if name == "cupy":
        _import_cupy()
    elif name == "array_api_strict":
        importlib.import_module("array_api_strict")
    _state["name"] = name


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[str]:
    """Context manager: run a block on backend ``name``, then restore."""
    previous = get_backend()
    set_backend(name)
    try:
        yield _state["name"]  # type: ignore[misc]
    finally:
        _state["name"] = previous


def _module(name: str):
    if name == "numpy":
        return np
    if name == "cupy":
        return _import_cupy()
    return importlib.import_module("array_api_strict")


def namespace(name: str | None = None):
    """Array-API namespace of the active (or named) backend."""
    name = get_backend() if name is None else _check_name(name)
    if name == "numpy":
        import array_api_compat.numpy as xp
        return xp
    if name == "cupy":
        _import_cupy()
        import array_api_compat.cupy as xp
        return xp
    return importlib.import_module("array_api_strict")


def backend_of(x: Any) -> str | None:
    """Backend name an array belongs to, or None for a non-array."""
    mod = type(x).__module__.split(".", 1)[0]
    if mod == "numpy" and isinstance(x, (np.ndarray, np.generic)):
        return "numpy"
    if mod == "cupy":
        return "cupy"
    if mod == "array_api_strict":
        return "array_api_strict"
    return None


def is_host(x: Any) -> bool:
    """True for NumPy arrays (where Cython kernels and cheap checks apply)."""
    return isinstance(x, np.ndarray)


def namespace_of(**arrays: Any):
    """Namespace shared by the named arrays (None values are skipped).

    Raises TypeError naming the argument when the arrays come from two
    backends, or when an argument is not an array at all.
    """
    first_name = first_backend = None
    present = []
    for arg, value in arrays.items():
        if value is None:
            continue
        b = backend_of(value)
        if b is None:
            raise TypeError(
                f"argument {arg!r} must be an array of the numpy, cupy or "
                f"array_api_strict backend, got {type(value).__name__}")
        if first_backend is None:
            first_name, first_backend = arg, b
        elif b != first_backend:
            raise TypeError(
                f"argument {arg!r} is a {b} array but {first_name!r} is a "
                f"{first_backend} array; move both to one backend first "
                "(xpnn.backend.to_device or to_numpy)")
        present.append(value)
    if not present:
        return namespace()
    return array_api_compat.array_namespace(*present)


# array-api-strict stands in for a GPU in the tests: its arrays live on a
# separate simulated device, which (like CuPy) refuses np.asarray and any
# mixing with host arrays, so code that forgets a device move fails on the
# host exactly as it would on a GPU.
STRICT_DEVICE_NAME = "device1"


def _strict_device():
    import array_api_strict as xps
    return xps.Device(STRICT_DEVICE_NAME)


#: device-to-host copies made so far (every one goes through _to_host_array)
transfers = {"to_host": 0}


def _to_host_array(x: Any) -> np.ndarray:
    """The one device-to-host path; counts each copy in ``transfers``."""
    b = backend_of(x)
    if b == "cupy":
        transfers["to_host"] += 1
        return x.get()
    if b == "array_api_strict":
        import array_api_strict as xps
        transfers["to_host"] += 1
        return np.asarray(x.to_device(xps.Device("CPU_DEVICE")))
    return np.asarray(x) if isinstance(x, np.generic) else x


def _to_device_array(host: np.ndarray, name: str) -> Any:
    """The one host-to-device path (never counted as a read-back)."""
    if name == "numpy":
        return host
    if name == "cupy":
        return _import_cupy().asarray(host)
    import array_api_strict as xps
    return xps.asarray(host, device=_strict_device())


def _walk(obj: Any, leaf):
    if isinstance(obj, dict):
        return type(obj)((k, _walk(v, leaf)) for k, v in obj.items())
    if isinstance(obj, list):
        return [_walk(v, leaf) for v in obj]
    if isinstance(obj, tuple):
        return type(obj)(_walk(v, leaf) for v in obj) if not hasattr(obj, "_fields") \
            else type(obj)(*(_walk(v, leaf) for v in obj))
    return leaf(obj)


def to_numpy(obj: Any) -> Any:
    """Copy arrays to NumPy, walking dicts, lists and tuples; others as is."""
    return _walk(obj, lambda v: _to_host_array(v) if backend_of(v) else v)


def to_device(obj: Any, backend: str | None = None) -> Any:
    """Move arrays to ``backend`` (default: the active one), walking
    dicts, lists and tuples. Arrays already there are returned unchanged;
    non-array values (numbers, strings, None) are left alone."""
    name = get_backend() if backend is None else _check_name(backend)
    _module(name)

    def leaf(v):
        b = backend_of(v)
        if b is None or (b == name and not isinstance(v, np.generic)
                         and (b != "array_api_strict" or v.device == _strict_device())):
            return v
        if b == "numpy":
            return _to_device_array(np.asarray(v), name)
        host = _to_host_array(v)
        return _to_device_array(host, name)
    return _walk(obj, leaf)


# ---------------------------------------------------------------- randomness
# On the host backends random numbers come from NumPy's global RandomState,
# in the course's order, so seeded notebooks repeat. On a GPU they are drawn
# there (masks never cross the bus) by a counter-based generator reseeded
# for every draw with a number drawn from NumPy's global state: a draw
# advances NumPy's stream as it does on the host (by one number instead of
# a mask's worth), so ``np.random.seed`` repeats GPU runs too, and NumPy's
# state, which checkpoints keep, is all of xpnn's random state.
_device_rng: dict[str, Any] = {"gen": None}


def _device_seed(seed=None) -> int:
    """Seed for the next device draw, from NumPy's global state. ``seed``
    (the course's ``dropout_param['seed']``) reseeds that state first, as
    the host backends do, so the same seed gives the same draw."""
    if seed is not None:
        np.random.seed(seed)
    return int(np.random.randint(2 ** 62, dtype=np.int64))


def _cupy_generator(cupy):
    gen = _device_rng["gen"]
    if gen is None:
        try:  # Philox: reseeding is cheap (no per-thread state to initialise)
            from cupy.cuda import curand
            gen = cupy.random.RandomState(0, method=curand.CURAND_RNG_PSEUDO_PHILOX4_32_10)
        except (ImportError, AttributeError, TypeError):
            gen = cupy.random.RandomState(0)
        _device_rng["gen"] = gen
    return gen


def rng_state() -> dict:
    """All of xpnn's random state, as plain data for a checkpoint: NumPy's
    global RandomState (the GPU's draws are seeded from it)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"numpy": {"name": name, "keys": keys, "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}}


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` returned (also the older checkpoint
    form that held NumPy's state alone, or a device part beside it, which
    is no longer needed)."""
    npst = state["numpy"] if "numpy" in state else state
    np.random.set_state((npst["name"], np.asarray(npst["keys"], dtype=np.uint32),
                         int(npst["pos"]), int(npst["has_gauss"]),
                         float(npst["cached_gaussian"])))


def random_uniform(shape, like=None, seed=None):
    """Uniform [0, 1) float64 samples on the backend of ``like``. On the host
    (and array-api-strict's simulated device) they come from NumPy's global
    RandomState, reseeded first when ``seed`` is given, exactly as the course
    code draws (so seeded notebooks repeat); on a GPU from CuPy's generator,
    seeded with a number drawn from that same NumPy state."""
    shape = tuple(shape)
    b = backend_of(like) if like is not None else get_backend()
    if b == "cupy":
        gen = _cupy_generator(_import_cupy())
        gen.seed(_device_seed(seed))
        return gen.random_sample(shape)
    if seed is not None:
        np.random.seed(seed)
    host = np.asarray(np.random.rand(*shape))  # a 0-d shape gives a float: keep an array
    return _to_device_array(host, b) if b == "array_api_strict" else host


# ---------------------------------------------------------------- label checks
_labels = {"trusted": 0}


@contextlib.contextmanager
def labels_checked() -> Iterator[None]:
    """Inside this block the loss functions skip their label-range check off
    the host (it would wait for the device every step). For a caller that
    has already checked every label it will pass, as the Solver does once
    per data set."""
    _labels["trusted"] += 1
    try:
        yield
    finally:
        _labels["trusted"] -= 1


def label_range(y) -> tuple[int, int]:
    """(min, max) of an integer label array of any backend, with at most one
    device-to-host copy."""
    if is_host(y):
        return int(y.min()), int(y.max())
    xp = array_api_compat.array_namespace(y)
    lo_hi = to_numpy(xp.stack([xp.min(y), xp.max(y)]))
    return int(lo_hi[0]), int(lo_hi[1])


def fits_on_device(nbytes: int, fraction: float = 0.5) -> bool:
    """Whether an array of ``nbytes`` should live on the active device whole:
    always on the host backends; on a GPU, when it takes at most ``fraction``
    of the free memory."""
    if get_backend() != "cupy":
        return True
    free, _total = _import_cupy().cuda.runtime.memGetInfo()
    return nbytes <= fraction * free


def synchronize() -> None:
    """Wait for queued GPU work (a no-op off the GPU); for benchmarks."""
    if get_backend() == "cupy":
        _import_cupy().cuda.get_current_stream().synchronize()
