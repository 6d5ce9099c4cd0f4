"""Helpers shared by the layer modules: input checks, padding, window slices."""
from __future__ import annotations

import math

from array_api_compat import device as _device

from ..backend import namespace_of

__all__ = ["xp_of", "zeros_like_shape", "check_ndim", "check_int", "pad_hw",
           "window", "out_size", "shape_str"]

xp_of = namespace_of


def shape_str(x) -> str:
    return "(" + ", ".join(str(int(s)) for s in x.shape) + ")"


def zeros_like_shape(xp, like, shape, dtype=None):
    """Zeros of ``shape`` on the device of ``like`` (same dtype by default)."""
    return xp.zeros(shape, dtype=like.dtype if dtype is None else dtype,
                    device=_device(like))


def check_ndim(name: str, x, ndim: int, layout: str) -> None:
    if x.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D {layout}, got shape {shape_str(x)}")


def check_int(name: str, value, minimum: int) -> int:
    """``value`` as an int >= minimum, else a ValueError saying so."""
    if isinstance(value, bool) or not float(value).is_integer():
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return value


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
