"""The one place that knows which array library is in use and which code
path runs.

xpnn's layers are written once against the Python array-API standard. A
backend (one module here per array library: :mod:`.numpy`, :mod:`.cupy`,
:mod:`.strict`, :mod:`.torch`) is a :class:`~._base.Backend` object: where its arrays
live, how they move to and from the host, how it draws random numbers; and
its :class:`~._base.Kernels`, the fast ops it has, each answering None where
the portable path must run. Layers ask ``kernels(*arrays)`` once per fast
op; nothing outside this package asks which backend it is on.

The active backend comes from the ``XPNN_BACKEND`` environment variable
(``numpy`` when unset) and can be changed with :func:`set_backend` or, for a
block of code, :func:`use_backend`.
"""
# the NumPy backend first: it tunes the host before NumPy loads OpenBLAS
from .numpy import BACKEND as _NUMPY  # noqa: I001

import contextlib  # noqa: E402
import os  # noqa: E402
from typing import Any, Iterator  # noqa: E402

import numpy as np  # noqa: E402
import array_api_compat  # noqa: E402

from ._base import Backend, Kernels, KernelState, transfers  # noqa: E402
from .cupy import BACKEND as _CUPY, cupy_module, probe_cuda_libraries  # noqa: E402
from .strict import BACKEND as _STRICT, DEVICE_NAME as STRICT_DEVICE_NAME  # noqa: E402
from .torch import BACKEND as _TORCH  # noqa: E402

__all__ = [
    "VALID_BACKENDS", "get_backend", "set_backend", "use_backend", "namespace",
    "to_device", "to_numpy", "backend_of", "namespace_of", "is_host", "is_array", "dtype_name",
    "random_uniform", "rng_state", "set_rng_state", "labels_checked", "labels_need_check",
    "label_range", "fits_on_device", "probe_cuda_libraries", "synchronize", "cupy_module",
    "kernels", "current", "get", "owner", "common_backend", "take_rows", "read_floats",
    "Backend", "Kernels", "KernelState", "transfers", "STRICT_DEVICE_NAME",
]

#: every backend by name
_BACKENDS = {b.name: b for b in (_NUMPY, _CUPY, _STRICT, _TORCH)}
#: the backends' array modules, for :func:`owner`
_BY_MODULE = {b.array_module: b for b in _BACKENDS.values()}

VALID_BACKENDS = tuple(_BACKENDS)

_state: dict[str, str | None] = {"name": None}


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or name.strip().lower() not in VALID_BACKENDS:
        raise ValueError(
            f"unknown xpnn backend {name!r}; valid names are "
            f"{', '.join(VALID_BACKENDS)} (set XPNN_BACKEND or call set_backend)")
    return name.strip().lower()


def get(name: str) -> Backend:
    """The :class:`Backend` called ``name`` (its library is imported and
    checked when it is first made active, or used by name)."""
    return _BACKENDS[_check_name(name)]


def get_backend() -> str:
    """Name of the active backend: one of :data:`VALID_BACKENDS`."""
    if _state["name"] is None:
        set_backend(os.environ.get("XPNN_BACKEND", "numpy") or "numpy")
    return _state["name"]  # type: ignore[return-value]


def current() -> Backend:
    """The active :class:`Backend`."""
    return _BACKENDS[get_backend()]


def set_backend(name: str, device: str | None = None) -> None:
    """Make ``name`` the active backend (checked: CuPy must find a GPU).
    ``device``, for the torch backend only: "cuda" (or "cuda:N"), "mps" or
    "cpu"; by default XPNN_TORCH_DEVICE or the best one present."""
    b = get(name)
    b.load(device)
    _state["name"] = b.name


@contextlib.contextmanager
def use_backend(name: str, device: str | None = None) -> Iterator[str]:
    """Context manager: run a block on backend ``name``, then restore."""
    previous = get_backend()
    set_backend(name, device)
    try:
        yield _state["name"]  # type: ignore[misc]
    finally:
        _state["name"] = previous


def namespace(name: str | None = None):
    """Array-API namespace of the active (or named) backend."""
    return (current() if name is None else get(name)).namespace()


def owner(x: Any) -> Backend | None:
    """The :class:`Backend` an array belongs to, or None for a non-array."""
    b = _BY_MODULE.get(type(x).__module__.split(".", 1)[0])
    return b if b is not None and b.owns(x) else None


def backend_of(x: Any) -> str | None:
    """Backend name an array belongs to, or None for a non-array."""
    b = owner(x)
    return None if b is None else b.name


def common_backend(arrays) -> str | None:
    """The name of the backend every one of ``arrays`` belongs to, or None
    (none given, a non-array, or two backends)."""
    names = {backend_of(a) for a in arrays}
    return names.pop() if len(names) == 1 else None


def is_array(x: Any) -> bool:
    """Whether ``x`` is an array of one of the backends."""
    return owner(x) is not None


def dtype_name(x: Any) -> str:
    """The dtype of an array of any backend as NumPy names it ("float32";
    array-api-strict's ``array_api_strict.float32`` too); "" for a value
    without a dtype."""
    return str(getattr(x, "dtype", "")).rsplit(".", 1)[-1]


def is_host(x: Any) -> bool:
    """True for NumPy arrays (in host memory)."""
    return isinstance(x, np.ndarray)


_NO_KERNELS = Kernels()


def kernels(*arrays: Any) -> Kernels:
    """The :class:`Kernels` of the backend that owns ``arrays`` (None values
    are skipped; a layer has checked that the others share one backend):
    each op returns None where the portable array-API path must run."""
    for a in arrays:
        if a is not None:
            b = owner(a)
            return _NO_KERNELS if b is None else b.kernels
    return _NO_KERNELS


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
                f"argument {arg!r} must be an array of one of the backends "
                f"({', '.join(VALID_BACKENDS)}), got {type(value).__name__}")
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
    def leaf(v):
        b = owner(v)
        return v if b is None else b.to_host(v)
    return _walk(obj, leaf)


def to_device(obj: Any, backend: str | None = None) -> Any:
    """Move arrays to ``backend`` (default: the active one), walking
    dicts, lists and tuples. Arrays already there are returned unchanged;
    non-array values (numbers, strings, None) are left alone."""
    if backend is None:
        target = current()
    else:
        target = get(backend)
        target.load()

    def leaf(v):
        b = owner(v)
        if b is None or (b is target and target.resident(v)):
            return v
        return target.from_host(b.to_host(v))
    return _walk(obj, leaf)


def take_rows(X, idx: np.ndarray):
    """Rows ``idx`` (a NumPy index array) of X, on X's backend."""
    return owner(X).take_rows(X, idx)


def read_floats(values: list) -> list:
    """Losses and other 0-d values as Python floats, each backend's with one
    device-to-host copy (Python floats are kept as they are)."""
    out = list(values)
    groups: dict = {}
    for i, v in enumerate(out):
        b = owner(v)
        if b is None:
            out[i] = float(v)
        else:
            groups.setdefault(b, []).append(i)
    for b, idx in groups.items():
        for i, f in zip(idx, b.read_floats([out[i] for i in idx])):
            out[i] = f
    return out


# ---------------------------------------------------------------- randomness
# Random numbers come from NumPy's global RandomState, in the course's order,
# so seeded notebooks repeat; a GPU draws on the device, seeded from that
# state (xpnn.backend.cupy). NumPy's state, which checkpoints keep, is all
# of xpnn's random state.

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
    """Uniform [0, 1) float64 samples on the backend of ``like`` (default:
    the active one), drawn from NumPy's global RandomState (reseeded first
    when ``seed`` is given) exactly as the course code draws, so seeded
    notebooks repeat; see :meth:`Backend.random_uniform`."""
    b = current() if like is None else (owner(like) or _NUMPY)
    return b.random_uniform(tuple(shape), seed)


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


def labels_need_check(y) -> bool:
    """Whether a loss function should check the range of labels ``y`` now:
    always where reading them back is free, elsewhere unless inside
    :func:`labels_checked`."""
    b = owner(y)
    return not _labels["trusted"] or (b is not None and b.readback_is_free)


def label_range(y) -> tuple[int, int]:
    """(min, max) of an integer label array of any backend, with at most one
    device-to-host copy."""
    return owner(y).label_range(y)


def fits_on_device(nbytes: int, fraction: float = 0.5) -> bool:
    """Whether an array of ``nbytes`` should live on the active device whole:
    always on the host backends; on a GPU, when it takes at most ``fraction``
    of the free memory."""
    free = current().free_memory()
    return free is None or nbytes <= fraction * free


def synchronize() -> None:
    """Wait for queued GPU work (a no-op off the GPU); for benchmarks."""
    current().synchronize()
