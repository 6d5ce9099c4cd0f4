"""Numerical gradients by centred differences, for checking backward passes.

The functions take arrays of any backend. ``x`` is perturbed in place (course
code often checks ``lambda _: model.loss(X, y)[0]`` against a parameter the
function reads from the model), one element at a time, and restored; the
function's values are brought to the host and combined in float64. Check
in float64: in float32 the differences drown in round-off.
"""
from __future__ import annotations

import random
import warnings

import numpy as np

from .backend import dtype_name, to_numpy

__all__ = ["eval_numerical_gradient", "eval_numerical_gradient_array",
           "eval_numerical_gradient_blobs", "grad_check_sparse", "rel_error"]


def _host64(v) -> np.ndarray:
    return np.asarray(to_numpy(v), dtype=np.float64)


def _get(x, idx) -> float:
    return float(_host64(x[idx]))


def _nudge(x, idx, value):
    x[idx] = value


def _at_both_sides(f, x, idx, h, read):
    """``read(f(x))`` with x[idx] moved by +h and by -h, then restored."""
    old = _get(x, idx)
    _nudge(x, idx, old + h)
    pos = read(f(x))
    _nudge(x, idx, old - h)
    neg = read(f(x))
    _nudge(x, idx, old)
    return pos, neg


def _warn_if_coarse(fn, x, h):
    """Warn when ``x`` is a float type too coarse for a step of ``h``: in
    float32 a centred difference is mostly round-off, and relative errors
    near 1 everywhere are what a student then sees."""
    name = dtype_name(x)
    if name in ("float32", "float16", "bfloat16"):
        warnings.warn(
            f"{fn}: x is {name}; a step of h={h:g} is near {name}'s resolution, so the "
            f"numerical gradient is mostly round-off (relative errors near 1 are expected). "
            f"Check gradients in float64: the model with dtype=np.float64 and the data as "
            f"float64", RuntimeWarning, stacklevel=3)


def _scalar(v) -> float:
    return float(_host64(v))


def eval_numerical_gradient(f, x, verbose=True, h=1e-5):
    """Gradient of the scalar function ``f`` at ``x``; a NumPy float64 array
    of x's shape. Prints each entry when verbose, as the course code does."""
    _warn_if_coarse("eval_numerical_gradient", x, h)
    grad = np.zeros(tuple(x.shape), dtype=np.float64)
    for idx in np.ndindex(*x.shape):
        fxph, fxmh = _at_both_sides(f, x, idx, h, _scalar)
        grad[idx] = (fxph - fxmh) / (2 * h)
        if verbose:
            print(idx, grad[idx])
    return grad


def eval_numerical_gradient_array(f, x, df, h=1e-5):
    """Numerical gradient of ``sum(f(x) * df)`` for an array-valued ``f``;
    ``df`` is the upstream gradient. Returns a NumPy float64 array."""
    _warn_if_coarse("eval_numerical_gradient_array", x, h)
    grad = np.zeros(tuple(x.shape), dtype=np.float64)
    df64 = _host64(df)
    for idx in np.ndindex(*x.shape):
        pos, neg = _at_both_sides(f, x, idx, h, _host64)
        grad[idx] = np.sum((pos - neg) * df64) / (2 * h)
    return grad


def eval_numerical_gradient_blobs(f, inputs, output, h=1e-5):
    """Numerical gradients of ``sum(f(*inputs) * output_grad)`` for each of
    several inputs; ``output`` is the upstream gradient. Returns a list."""
    return [eval_numerical_gradient_array(lambda _: f(*inputs), x, output, h)
            for x in inputs]


def grad_check_sparse(f, x, analytic_grad, num_checks=10, h=1e-5, seed=None):
    """Compare ``analytic_grad`` with centred differences at ``num_checks``
    random entries of ``x``, printing each; returns the relative errors."""
    _warn_if_coarse("grad_check_sparse", x, h)
    rng = random.Random(seed) if seed is not None else random
    ag = _host64(analytic_grad)
    errors = []
    for _ in range(num_checks):
        idx = tuple(rng.randrange(m) for m in x.shape)
        fxph, fxmh = _at_both_sides(f, x, idx, h, _scalar)
        num = (fxph - fxmh) / (2 * h)
        ana = float(ag[idx])
        denom = abs(num) + abs(ana)
        err = abs(num - ana) / denom if denom > 0 else 0.0
        errors.append(err)
        print("numerical: %f analytic: %f, relative error: %e" % (num, ana, err))
    return errors


def rel_error(x, y) -> float:
    """Largest elementwise relative error ``|x-y| / max(1e-8, |x|+|y|)``."""
    a, b = _host64(x), _host64(y)
    if a.shape != b.shape and a.size != 1 and b.size != 1:
        raise ValueError(f"rel_error: shapes {a.shape} and {b.shape} differ")
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))
