"""Affine, elementwise activations and dropout."""
from __future__ import annotations

from .. import backend
from ._util import check_dout, check_ndim, check_number, is_number, prod, shape_str, xp_of

__all__ = [
    "affine_forward", "affine_backward", "relu_forward", "relu_backward",
    "leaky_relu_forward", "leaky_relu_backward", "elu_forward", "elu_backward",
    "prelu_forward", "prelu_backward", "sigmoid_forward",
    "sigmoid_backward", "tanh_forward", "tanh_backward", "dropout_forward",
    "dropout_backward",
]


def affine_forward(x, w, b):
    """Fully connected layer: ``out = x.reshape(N, D) @ w + b``.

    x: (N, d_1, ..., d_k) with D = d_1 * ... * d_k; w: (D, M); b: (M,).
    Returns out (N, M) and cache (x, w, b).
    """
    xp = xp_of(x=x, w=w, b=b)
    if x.ndim < 1:
        raise ValueError("affine_forward: x must have a batch axis, got a 0-D array")
    check_ndim("affine_forward: w", w, 2, "(D, M)")
    N, D = x.shape[0], prod(x.shape[1:])
    if w.shape[0] != D:
        raise ValueError(
            f"affine_forward: x of shape {shape_str(x)} flattens to (N, {D}) "
            f"but w has shape {shape_str(w)}; expected w of shape ({D}, M)")
    if b.shape != (w.shape[1],):
        raise ValueError(f"affine_forward: b must have shape ({w.shape[1]},) to "
                         f"match w {shape_str(w)}, got {shape_str(b)}")
    out = xp.matmul(xp.reshape(x, (N, D)), w) + b
    return out, (x, w, b)


def affine_backward(dout, cache):
    """Backward of :func:`affine_forward`: returns dx (x's shape), dw, db."""
    x, w, b = cache
    xp = xp_of(dout=dout, x=x)
    N = x.shape[0]
    check_dout("affine_backward", xp, dout, (N, w.shape[1]))
    x2 = xp.reshape(x, (N, prod(x.shape[1:])))
    dx = xp.reshape(xp.matmul(dout, xp.matrix_transpose(w)), x.shape)
    dw = xp.matmul(xp.matrix_transpose(x2), dout)
    db = xp.sum(dout, axis=0)
    return dx, dw, db


def relu_forward(x):
    """ReLU, ``max(0, x)``; cache is x."""
    xp = xp_of(x=x)
    return xp.maximum(x, 0.0), x


def relu_backward(dout, cache):
    x = cache
    xp = xp_of(dout=dout, x=x)
    check_dout("relu_backward", xp, dout, x.shape)
    fast = backend.kernels(dout, x).relu_backward(dout, x)
    if fast is not None:
        return fast
    # a product with the 0/1 mask, not where(): NumPy's where over a random
    # mask is ~7x slower (a 50x32x32x32 float32 batch: 7.1 ms against 1.0 ms)
    return dout * xp.astype(x > 0, dout.dtype)


def leaky_relu_forward(x, alpha=0.01):
    """Leaky ReLU, ``x`` where positive else ``alpha * x``; cache (x, alpha)."""
    xp = xp_of(x=x)
    return xp.where(x > 0, x, alpha * x), (x, alpha)


def leaky_relu_backward(dout, cache):
    x, alpha = cache
    xp = xp_of(dout=dout, x=x)
    check_dout("leaky_relu_backward", xp, dout, x.shape)
    return xp.where(x > 0, dout, alpha * dout)


def elu_forward(x, alpha=1.0):
    """ELU: ``x`` where positive, else ``alpha * (exp(x) - 1)``; cache
    (x, alpha). ``exp`` is taken of ``min(x, 0)`` only, so large positive
    inputs never overflow."""
    xp = xp_of(x=x)
    alpha = check_number("elu_forward: alpha", alpha, 0.0)
    out = xp.where(x > 0, x, alpha * xp.expm1(xp.minimum(x, 0.0)))
    return out, (x, alpha)


def elu_backward(dout, cache):
    x, alpha = cache
    xp = xp_of(dout=dout, x=x)
    check_dout("elu_backward", xp, dout, x.shape)
    # d/dx alpha (e^x - 1) = alpha e^x, from x: out + alpha loses it far below 0
    return xp.where(x > 0, dout, dout * (alpha * xp.exp(xp.minimum(x, 0.0))))


def _prelu_shape(x, a):
    """a broadcast over x: one slope per channel (axis 1), or one for all."""
    if a.ndim != 1 or (a.shape[0] != 1 and (x.ndim < 2 or a.shape[0] != x.shape[1])):
        C = x.shape[1] if x.ndim >= 2 else "C"
        raise ValueError(f"prelu_forward: a must have shape (1,) or ({C},) (one slope per "
                         f"channel of x {shape_str(x)}), got {shape_str(a)}")
    return (1, a.shape[0]) + (1,) * (x.ndim - 2) if x.ndim >= 2 else (1,)


def prelu_forward(x, a):
    """PReLU: ``x`` where positive, else ``a * x`` with a learnt slope ``a``
    of shape (1,) (shared) or (C,) (per channel, axis 1). Cache (x, a)."""
    xp = xp_of(x=x, a=a)
    ab = xp.reshape(a, _prelu_shape(x, a))
    return xp.where(x > 0, x, ab * x), (x, a)


def prelu_backward(dout, cache):
    """Returns dx and da (a's shape)."""
    x, a = cache
    xp = xp_of(dout=dout, x=x)
    check_dout("prelu_backward", xp, dout, x.shape)
    shape = _prelu_shape(x, a)
    dx = xp.where(x > 0, dout, xp.reshape(a, shape) * dout)
    contrib = xp.where(x > 0, xp.zeros_like(x), x * dout)
    axes = tuple(i for i in range(x.ndim) if i != 1 or a.shape[0] == 1)
    da = xp.reshape(xp.sum(contrib, axis=axes), a.shape)
    return dx, da


def sigmoid_forward(x):
    """Logistic sigmoid, computed without overflow; cache is the output."""
    xp = xp_of(x=x)
    e = xp.exp(-xp.abs(x))  # in (0, 1]: never overflows
    out = xp.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return out, out


def sigmoid_backward(dout, cache):
    s = cache
    check_dout("sigmoid_backward", xp_of(dout=dout, s=s), dout, s.shape)
    return dout * s * (1.0 - s)


def tanh_forward(x):
    """Hyperbolic tangent; cache is the output."""
    xp = xp_of(x=x)
    out = xp.tanh(x)
    return out, out


def tanh_backward(dout, cache):
    t = cache
    check_dout("tanh_backward", xp_of(dout=dout, t=t), dout, t.shape)
    return dout * (1.0 - t * t)


def _dropout_config(dropout_param):
    if not isinstance(dropout_param, dict):
        raise TypeError("dropout_param must be a dict with keys 'mode', 'p' "
                        f"and optionally 'seed', got {type(dropout_param).__name__}")
    if "mode" not in dropout_param:  # as batch norm: no silent train-mode default
        raise ValueError("dropout_param needs 'mode': 'train' (drop units) or 'test' (the "
                         "identity); a model's loss() sets it, 'test' when y is None")
    mode = dropout_param["mode"]
    if mode not in ("train", "test"):
        raise ValueError(f"dropout_param['mode'] must be 'train' or 'test', got {mode!r}")
    if "p" not in dropout_param:
        raise ValueError("dropout_param needs 'p', the keep probability in (0, 1]")
    p = dropout_param["p"]
    if not is_number(p) or not 0.0 < float(p) <= 1.0:
        raise ValueError(
            f"dropout_param['p'] is the probability of KEEPING a unit and must be "
            f"a number in (0, 1], got {dropout_param['p']!r}")
    p = float(p)
    return mode, p, dropout_param.get("seed")


def dropout_forward(x, dropout_param):
    """Inverted dropout.

    dropout_param: 'mode' ('train' or 'test', required), 'p' (keep probability, in
    (0, 1]) and optional 'seed' (reseeds the generator first, as the course
    code does, for gradient checks). At train time each unit is kept with
    probability p and scaled by 1/p, so test time is the identity.
    On NumPy the mask is drawn from NumPy's global RandomState.
    Cache: (dropout_param, mask); mask is None at test time.
    """
    xp = xp_of(x=x)
    mode, p, seed = _dropout_config(dropout_param)
    if mode == "test":
        return x, (dropout_param, None)
    r = backend.random_uniform(x.shape, like=x, seed=seed)
    mask = xp.astype(r < p, x.dtype) / p
    return x * mask, (dropout_param, mask)


def dropout_backward(dout, cache):
    dropout_param, mask = cache
    if mask is None:
        return dout
    check_dout("dropout_backward", xp_of(dout=dout, mask=mask), dout, mask.shape)
    return dout * mask
