"""Batch, layer, spatial batch and spatial group normalization.

All of them standardise x over some axes, ``xhat = (x - mean) / sqrt(var + eps)``
with the biased variance, then scale and shift: ``gamma * xhat + beta``. The
shared backward is the closed form

    dx = inv_std / M * (M * dxhat - sum(dxhat) - xhat * sum(dxhat * xhat))

with the sums over the M normalised elements. ``batchnorm_backward`` instead
walks the computation graph node by node, as taught, and is checked against
the closed form (``batchnorm_backward_alt``).
"""
from __future__ import annotations

from .. import backend
from ._util import (check_dout, check_int, check_ndim, check_number, prod, shape_str,
                    xp_of, zeros_like_shape)

__all__ = [
    "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt",
    "layernorm_forward", "layernorm_backward", "spatial_batchnorm_forward",
    "spatial_batchnorm_backward", "spatial_groupnorm_forward",
    "spatial_groupnorm_backward",
]


def _standardize(xp, x, axes, eps):
    mean = xp.mean(x, axis=axes, keepdims=True)
    var = xp.var(x, axis=axes, keepdims=True)
    inv_std = 1.0 / xp.sqrt(var + eps)
    return (x - mean) * inv_std, mean, var, inv_std


def _standardize_backward(xp, dxhat, xhat, inv_std, axes):
    M = prod(xhat.shape[a] for a in axes)
    s1 = xp.sum(dxhat, axis=axes, keepdims=True)
    s2 = xp.sum(dxhat * xhat, axis=axes, keepdims=True)
    return (inv_std / M) * (M * dxhat - s1 - xhat * s2)


def _check_param(fn, param, name="bn_param"):
    if not isinstance(param, dict):
        raise TypeError(f"{fn}: {name} must be a dict, got {type(param).__name__}")
    return check_number(f"{fn}: {name}['eps']", param.get("eps", 1e-5), 0.0,
                        low_inclusive=False)


def _check_affine(fn, gamma, beta, shape):
    for nm, v in (("gamma", gamma), ("beta", beta)):
        if tuple(v.shape) != tuple(shape):
            raise ValueError(f"{fn}: {nm} must have shape {shape}, got {shape_str(v)}")


def _chan_sum(xp, a):
    """Per-channel sum of a (N, C) or (N, C, L) array, as contiguous inner
    reductions (much faster than one reduction over scattered axes)."""
    return xp.sum(a, axis=0) if a.ndim == 2 else xp.sum(xp.sum(a, axis=2), axis=0)


def _chan_dot(xp, a, b):
    """Per-channel sum of a * b (one pass and no temporary where the backend
    has a kernel)."""
    out = backend.kernels(a, b).channel_dot(a, b)
    return _chan_sum(xp, a * b) if out is None else out


def _chan_affine(xp, u, a, b, v=None, k=None):
    """a*u + b (+ k*v), coefficients per channel (axis 1): one pass where the
    backend has a kernel, broadcasting elsewhere."""
    out = backend.kernels(u).channel_affine(u, a, b, v, k)
    if out is not None:
        return out
    col = (lambda t: t) if u.ndim == 2 else (lambda t: t[:, None])
    out = u * col(a)
    out += col(b)
    if v is not None:
        out += v * col(k)
    return out


def _centred(xp, x, mean):
    """x - mean per channel, x viewed as (N, C) or (N, C, L)."""
    if x.ndim == 2:
        return x - mean
    N, C = x.shape[0], x.shape[1]
    return xp.reshape(x, (N, C, prod(x.shape[2:]))) - mean[:, None]


def _bn_core(xp, x, gamma, beta, bn_param, fn):
    """Batch norm with per-channel statistics on axis 1, over every other
    axis; gamma/beta/running stats are 1-D of length C."""
    eps = _check_param(fn, bn_param)
    mode = bn_param.get("mode")
    if mode not in ("train", "test"):
        raise ValueError(f"{fn}: bn_param['mode'] must be 'train' or 'test', got {mode!r}")
    momentum = check_number(f"{fn}: bn_param['momentum']", bn_param.get("momentum", 0.9),
                            0.0, 1.0)
    N, C = x.shape[0], x.shape[1]
    _check_affine(fn, gamma, beta, (C,))
    x3 = x if x.ndim == 2 else xp.reshape(x, (N, C, prod(x.shape[2:])))
    col = (lambda v: v) if x.ndim == 2 else (lambda v: v[:, None])  # (C,) -> broadcastable
    M = N * (1 if x.ndim == 2 else x3.shape[2])
    rm = bn_param.get("running_mean")
    rv = bn_param.get("running_var")
    if mode == "test" and (rm is None or rv is None):
        raise ValueError(f"{fn}: test mode needs bn_param['running_mean'] and "
                         "['running_var'], which train-mode calls fill in; run the layer "
                         "in 'train' mode first (or set them)")
    if mode == "train" and M == 0:
        raise ValueError(f"{fn}: x {shape_str(x)} holds no values to take batch statistics "
                         "over (an empty batch)")
    for key, v in (("running_mean", rm), ("running_var", rv)):
        if v is None:
            continue
        try:
            xp_of(x=x, running=v)
        except TypeError:
            raise TypeError(f"{fn}: bn_param[{key!r}] must be an array of x's backend "
                            f"({backend.backend_of(x)}), got {type(v).__name__}") from None
        if tuple(v.shape) != (C,):
            raise ValueError(f"{fn}: bn_param[{key!r}] must have shape ({C},), got "
                             f"{shape_str(v)}")
    if rm is None:
        rm = zeros_like_shape(xp, x, (C,))
    if rv is None:
        rv = zeros_like_shape(xp, x, (C,))
    fast = backend.kernels(x).bn_train_forward(x, gamma, beta, rm, rv, eps, momentum) \
        if mode == "train" else None
    if fast is not None:  # the backward rebuilds what it needs from x and the mean
        out, mean, var, inv_std, bn_param["running_mean"], bn_param["running_var"] = fast
        cache = {"mode": mode, "x": x, "xc": None, "mean": mean, "var": var,
                 "inv_std": inv_std, "gamma": gamma, "eps": eps, "M": M}
        return out, cache
    if mode == "train":
        mean = _chan_sum(xp, x3) / M
        xc = x3 - col(mean)
        var = _chan_dot(xp, xc, xc) / M
        bn_param["running_mean"] = momentum * rm + (1.0 - momentum) * mean
        bn_param["running_var"] = momentum * rv + (1.0 - momentum) * var
    else:
        mean, var = rm, rv
        xc = x3 - col(rm)
    inv_std = 1.0 / xp.sqrt(var + eps)
    out = _chan_affine(xp, xc, gamma * inv_std, beta)
    cache = {"mode": mode, "x": x, "xc": xc, "mean": mean, "var": var, "inv_std": inv_std,
             "gamma": gamma, "eps": eps, "M": M}
    return xp.reshape(out, x.shape), cache


def _bn_backward_core(xp, dout, cache):
    """dx, dgamma, dbeta with xhat = xc * inv_std never materialised:
    dgamma = inv * sum(dout * xc); in train mode
    dx = gamma*inv/M * (M*dout - dbeta - xc * inv * dgamma)."""
    xc, inv, g, M = cache["xc"], cache["inv_std"], cache["gamma"], cache["M"]
    if xc is None:  # the backend's kernel ran the forward: its backward, or the centred x
        x = cache["x"]
        fast = backend.kernels(dout, x).bn_train_backward(dout, x, cache["mean"], g, inv)
        if fast is not None:
            return fast
        xc = _centred(xp, x, cache["mean"])
    d3 = xp.reshape(dout, xc.shape)
    dbeta = _chan_sum(xp, d3)
    dgamma = _chan_dot(xp, d3, xc) * inv
    gi = g * inv
    if cache["mode"] == "train":
        dx = _chan_affine(xp, d3, gi, -gi * dbeta / M, xc, -gi * inv * dgamma / M)
    else:  # the running statistics are constants: an affine map
        dx = _chan_affine(xp, d3, gi, xp.zeros_like(gi))
    return xp.reshape(dx, dout.shape), dgamma, dbeta


def batchnorm_forward(x, gamma, beta, bn_param):
    """Batch normalization of x (N, D) over the batch.

    bn_param: 'mode' ('train'/'test', required), 'eps' (1e-5), 'momentum'
    (0.9), 'running_mean'/'running_var' (D,), created as zeros and updated
    in place of the dict at train time:
    ``running = momentum * running + (1 - momentum) * batch_stat``.
    Returns out (N, D) and a cache dict.
    """
    xp = xp_of(x=x, gamma=gamma, beta=beta)
    check_ndim("batchnorm_forward: x", x, 2, "(N, D)")
    return _bn_core(xp, x, gamma, beta, bn_param, "batchnorm_forward")


def batchnorm_backward_alt(dout, cache):
    """Backward of batchnorm in closed form: returns dx, dgamma, dbeta."""
    xp = xp_of(dout=dout, x=cache["x"])
    check_dout("batchnorm_backward_alt", xp, dout, cache["x"].shape)
    return _bn_backward_core(xp, dout, cache)


def batchnorm_backward(dout, cache):
    """Backward of batchnorm, node by node through the computation graph
    (mean, centring, variance, square root, inverse, scaling, shift)."""
    xp = xp_of(dout=dout, x=cache["x"])
    check_dout("batchnorm_backward", xp, dout, cache["x"].shape)
    if cache["mode"] == "test" or cache["x"].ndim != 2:
        return _bn_backward_core(xp, dout, cache)
    x, g, eps = cache["x"], cache["gamma"], cache["eps"]
    N = x.shape[0]
    mu = cache["mean"]
    xmu = x - mu                                   # centring
    var = cache["var"]
    std = xp.sqrt(var + eps)                       # sqrt node
    ivar = 1.0 / std                               # inverse node
    xhat = xmu * ivar                              # normalise node
    dbeta = xp.sum(dout, axis=0)
    dgamma = xp.sum(dout * xhat, axis=0)
    dxhat = dout * g
    divar = xp.sum(dxhat * xmu, axis=0)
    dxmu1 = dxhat * ivar
    dstd = -divar / (std * std)
    dvar = 0.5 * dstd / std
    dsq = dvar / N                                 # mean of squares node
    dxmu2 = 2.0 * xmu * dsq
    dx1 = dxmu1 + dxmu2
    dmu = -xp.sum(dx1, axis=0)
    dx = dx1 + dmu / N                             # mean node
    return dx, dgamma, dbeta


def spatial_batchnorm_forward(x, gamma, beta, bn_param):
    """Batch normalization of x (N, C, H, W) per channel, over N, H and W.
    gamma, beta: (C,). bn_param as for :func:`batchnorm_forward`."""
    xp = xp_of(x=x, gamma=gamma, beta=beta)
    check_ndim("spatial_batchnorm_forward: x", x, 4, "(N, C, H, W)")
    return _bn_core(xp, x, gamma, beta, bn_param, "spatial_batchnorm_forward")


def spatial_batchnorm_backward(dout, cache):
    """Returns dx (N, C, H, W), dgamma (C,), dbeta (C,)."""
    xp = xp_of(dout=dout, x=cache["x"])
    check_dout("spatial_batchnorm_backward", xp, dout, cache["x"].shape)
    return _bn_backward_core(xp, dout, cache)


def layernorm_forward(x, gamma, beta, ln_param):
    """Layer normalization of x (N, D): each sample over its D features.
    gamma, beta: (D,); ln_param: optional 'eps' (1e-5). Same at train and
    test time. Returns out (N, D) and cache."""
    xp = xp_of(x=x, gamma=gamma, beta=beta)
    check_ndim("layernorm_forward: x", x, 2, "(N, D)")
    eps = _check_param("layernorm_forward", ln_param, "ln_param")
    _check_affine("layernorm_forward", gamma, beta, (x.shape[1],))
    xhat, _, _, inv_std = _standardize(xp, x, (1,), eps)
    return gamma * xhat + beta, (xhat, inv_std, gamma)


def layernorm_backward(dout, cache):
    """Returns dx (N, D), dgamma (D,), dbeta (D,)."""
    xhat, inv_std, gamma = cache
    xp = xp_of(dout=dout, xhat=xhat)
    check_dout("layernorm_backward", xp, dout, xhat.shape)
    dx = _standardize_backward(xp, dout * gamma, xhat, inv_std, (1,))
    return dx, xp.sum(dout * xhat, axis=0), xp.sum(dout, axis=0)


def spatial_groupnorm_forward(x, gamma, beta, G, gn_param):
    """Group normalization of x (N, C, H, W): the C channels form G groups of
    C // G, each sample's group normalised over its channels and pixels.
    gamma, beta: (1, C, 1, 1); gn_param: optional 'eps' (1e-5).
    Returns out and cache."""
    xp = xp_of(x=x, gamma=gamma, beta=beta)
    fn = "spatial_groupnorm_forward"
    check_ndim(f"{fn}: x", x, 4, "(N, C, H, W)")
    eps = _check_param(fn, gn_param, "gn_param")
    N, C, H, W = x.shape
    G = check_int(f"{fn}: G", G, 1)
    if C % G:
        raise ValueError(f"{fn}: the number of groups G={G} must divide the "
                         f"channel count C={C} of x {shape_str(x)}")
    _check_affine(fn, gamma, beta, (1, C, 1, 1))
    xg = xp.reshape(x, (N, G, (C // G) * H * W))
    xhat_g, _, _, inv_std = _standardize(xp, xg, (2,), eps)
    xhat = xp.reshape(xhat_g, x.shape)
    return gamma * xhat + beta, (xhat_g, inv_std, gamma, G, tuple(x.shape))


def spatial_groupnorm_backward(dout, cache):
    """Returns dx (N, C, H, W), dgamma (1, C, 1, 1), dbeta (1, C, 1, 1)."""
    xhat_g, inv_std, gamma, G, shape = cache
    xp = xp_of(dout=dout, xhat=xhat_g)
    check_dout("spatial_groupnorm_backward", xp, dout, shape)
    xhat = xp.reshape(xhat_g, dout.shape)
    dgamma = xp.sum(dout * xhat, axis=(0, 2, 3), keepdims=True)
    dbeta = xp.sum(dout, axis=(0, 2, 3), keepdims=True)
    dxhat = xp.reshape(dout * gamma, xhat_g.shape)
    dx = _standardize_backward(xp, dxhat, xhat_g, inv_std, (2,))
    return xp.reshape(dx, dout.shape), dgamma, dbeta
