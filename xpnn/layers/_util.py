"""Helpers shared by the layer modules: input checks, padding, window slices."""
from __future__ import annotations

import math

import numpy as np

from array_api_compat import device as _device

from .. import backend as _backend
from ..backend import namespace_of

__all__ = ["xp_of", "zeros_like_shape", "check_ndim", "is_number", "check_int", "check_number",
           "check_dout", "pad_hw", "window", "out_size", "shape_str", "as_device_array",
           "check_real", "as_scalar"]

xp_of = namespace_of


def shape_str(x) -> str:
    """x's shape as Python writes a tuple: ``(4,)``, ``(2, 3)``."""
    return str(tuple(int(s) for s in x.shape))


def as_device_array(name: str, value, layout: str, what: str = "numbers"):
    """``value`` (an array of any backend, or a nested list of numbers) on
    the active backend; anything else, or an array of strings or objects,
    is a TypeError naming ``name``, the ``layout`` expected and ``what``
    it must hold."""
    if isinstance(value, (list, tuple)):
        try:
            value = np.asarray(value)
        except ValueError:
            value = np.asarray(None)
        if value.dtype == object:
            raise TypeError(f"{name} must be an array {layout}; the list given is ragged or "
                            f"holds non-numbers")
    elif not _backend.is_array(value):
        raise TypeError(f"{name} must be an array {layout}, got {type(value).__name__}")
    if isinstance(value, np.ndarray) and value.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold {what}, got dtype {value.dtype}")
    return _backend.to_device(value)


def zeros_like_shape(xp, like, shape, dtype=None):
    """Zeros of ``shape`` on the device of ``like`` (same dtype by default)."""
    return xp.zeros(shape, dtype=like.dtype if dtype is None else dtype,
                    device=_device(like))


def check_ndim(name: str, x, ndim: int, layout: str) -> None:
    if x.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D {layout}, got shape {shape_str(x)}")


#: the largest size or stride a compiled kernel can index with
MAX_INT = 2 ** 31 - 1


def is_number(value) -> bool:
    """A real number (Python or NumPy), and not a bool."""
    return not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))


def as_scalar(value):
    """A NumPy 0-d array of a number as that number (the course's arithmetic
    takes ``reg=np.array(5e-6)``); anything else as it is, for the checks."""
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf":
        return value.item()
    return value


def check_int(name: str, value, minimum: int, maximum: int = MAX_INT) -> int:
    """``value`` as an int in [minimum, maximum], else a ValueError (or a
    TypeError for a non-number) that names the setting and what it got."""
    if not is_number(value):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r} "
                        f"({type(value).__name__})")
    if not math.isfinite(value) or not float(value).is_integer():
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    if value > maximum:
        raise ValueError(f"{name} must be at most {maximum}, got {value}")
    return value


def check_number(name: str, value, low=None, high=None, low_inclusive=True,
                 high_inclusive=True) -> float:
    """``value`` as a finite float within the given bounds, else a
    ValueError (TypeError for a non-number) naming the setting."""
    if not is_number(value):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    v = float(value)
    bad = not math.isfinite(v)
    if low is not None:
        bad = bad or (v < low if low_inclusive else v <= low)
    if high is not None:
        bad = bad or (v > high if high_inclusive else v >= high)
    if bad:
        lo = "-inf" if low is None else f"{low}"
        hi = "inf" if high is None else f"{high}"
        rng = f"{'[' if low_inclusive else '('}{lo}, {hi}{']' if high_inclusive else ')'}"
        raise ValueError(f"{name} must be a finite number in {rng}, got {value!r}")
    return v


def check_dout(fn: str, xp, dout, shape) -> None:
    """A backward's dout must have exactly the shape of its forward's output
    (kept in the cache) and a floating dtype: a wrong one would broadcast,
    or reshape into a silently wrong gradient, or reach a compiled kernel."""
    if not hasattr(dout, "shape") or not hasattr(dout, "dtype"):
        raise TypeError(f"{fn}: dout must be an array, got {type(dout).__name__}")
    if tuple(int(d) for d in dout.shape) != tuple(int(d) for d in shape):
        raise ValueError(f"{fn}: dout has shape {shape_str(dout)}, expected the forward "
                         f"output's shape {tuple(int(d) for d in shape)}")
    if not xp.isdtype(dout.dtype, "real floating"):
        raise TypeError(f"{fn}: dout must be a floating array, got dtype {dout.dtype}")


def check_real(fn: str, xp, **arrays) -> None:
    """Each named array holds real numbers (floating or integer): a string,
    boolean or complex one is a TypeError naming it."""
    for name, arr in arrays.items():
        if not xp.isdtype(arr.dtype, ("real floating", "signed integer", "unsigned integer")):
            raise TypeError(f"{fn}: {name} must hold real numbers, got dtype {arr.dtype}")


def out_size(size: int, k: int, stride: int) -> int:
    """Number of window positions along one axis (floor semantics)."""
    return (size - k) // stride + 1


def pad_hw(xp, x, pad: int):
    """Zero-pad the last two axes of a 4-D array by ``pad`` on each side."""
    if pad == 0:
        return x
    N, C, H, W = x.shape
    out = zeros_like_shape(xp, x, (N, C, H + 2 * pad, W + 2 * pad))
    out[:, :, pad:pad + H, pad:pad + W] = x
    return out


def window(i: int, j: int, stride: int, Ho: int, Wo: int):
    """Index selecting, for kernel offset (i, j), the input element that
    every output position reads: a strided slice, so no element repeats."""
    return (slice(None), slice(None),
            slice(i, i + stride * (Ho - 1) + 1, stride),
            slice(j, j + stride * (Wo - 1) + 1, stride))


def prod(shape) -> int:
    return math.prod(int(s) for s in shape)
