"""Max, average and global average pooling.

A window of ``pool_height x pool_width`` moves by ``stride``; the output has
``(H - pool_height) // stride + 1`` rows (floor, as in the course code and
PyTorch), so windows need not tile the input and may overlap. Max pooling
sends the gradient of each window to its FIRST maximum in row-major order,
in the naive and the fast versions alike (ties are common after ReLU).
"""
from __future__ import annotations

from array_api_compat import device as _device

from ..backend import dtype_name, kernels
from .core import relu_backward, relu_forward
from ._util import (check_dout, check_int, check_ndim, out_size, shape_str, window, xp_of,
                    zeros_like_shape)

__all__ = [
    "max_pool_forward_naive", "max_pool_backward_naive", "max_pool_forward_fast",
    "max_pool_backward_fast", "avg_pool_forward", "avg_pool_backward",
    "global_avg_pool_forward", "global_avg_pool_backward",
]


def _pool_geometry(x, pool_param, fn):
    """Validate; return (ph, pw, stride, Ho, Wo)."""
    check_ndim(f"{fn}: x", x, 4, "(N, C, H, W)")
    if not isinstance(pool_param, dict):
        raise TypeError(f"{fn}: pool_param must be a dict with 'pool_height', "
                        "'pool_width' and 'stride'")
    try:
        ph = check_int(f"{fn}: pool_param['pool_height']", pool_param["pool_height"], 1)
        pw = check_int(f"{fn}: pool_param['pool_width']", pool_param["pool_width"], 1)
        s = check_int(f"{fn}: pool_param['stride']", pool_param["stride"], 1)
    except KeyError as exc:
        raise ValueError(f"{fn}: pool_param is missing {exc.args[0]!r}; it needs "
                         "'pool_height', 'pool_width' and 'stride'") from None
    H, W = x.shape[2], x.shape[3]
    if ph > H or pw > W:
        raise ValueError(f"{fn}: pool window {ph}x{pw} is larger than the input "
                         f"x {shape_str(x)}")
    return ph, pw, s, out_size(H, ph, s), out_size(W, pw, s)


def _tiles(ph, pw, s):
    return ph == s and pw == s


def _windows(xp, x, ph, pw, s, Ho, Wo):
    """(N, C, Ho, Wo, ph*pw): every window's elements in row-major order."""
    N, C = x.shape[:2]
    if _tiles(ph, pw, s):  # a reshape of the (cropped) input suffices
        xc = x[:, :, :Ho * ph, :Wo * pw]
        x6 = xp.reshape(xc, (N, C, Ho, ph, Wo, pw))
        return xp.reshape(xp.permute_dims(x6, (0, 1, 2, 4, 3, 5)), (N, C, Ho, Wo, ph * pw))
    return xp.stack([x[window(i, j, s, Ho, Wo)] for i in range(ph) for j in range(pw)],
                    axis=-1)


def _unwindows(xp, dwin, shape, ph, pw, s, Ho, Wo):
    """Adjoint of :func:`_windows`: sum window gradients back into ``shape``."""
    N, C, H, W = shape
    dx = zeros_like_shape(xp, dwin, shape)
    if _tiles(ph, pw, s):
        d6 = xp.permute_dims(xp.reshape(dwin, (N, C, Ho, Wo, ph, pw)), (0, 1, 2, 4, 3, 5))
        dx[:, :, :Ho * ph, :Wo * pw] = xp.reshape(d6, (N, C, Ho * ph, Wo * pw))
        return dx
    for k in range(ph * pw):
        dx[window(k // pw, k % pw, s, Ho, Wo)] += dwin[..., k]
    return dx


def max_pool_forward_naive(x, pool_param):
    """Max pooling by explicit loops. x: (N, C, H, W); pool_param:
    'pool_height', 'pool_width', 'stride'. Returns out (N, C, H', W') and
    cache (x, pool_param)."""
    xp = xp_of(x=x)
    ph, pw, s, Ho, Wo = _pool_geometry(x, pool_param, "max_pool_forward_naive")
    N, C = x.shape[:2]
    out = zeros_like_shape(xp, x, (N, C, Ho, Wo))
    for n in range(N):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    out[n, c, i, j] = xp.max(x[n, c, i * s:i * s + ph, j * s:j * s + pw])
    return out, (x, pool_param)


def max_pool_backward_naive(dout, cache):
    """Backward of naive max pooling: each window's gradient goes to its first max."""
    x, pool_param = cache
    xp = xp_of(dout=dout, x=x)
    ph, pw, s, Ho, Wo = _pool_geometry(x, pool_param, "max_pool_backward_naive")
    N, C = x.shape[:2]
    check_dout("max_pool_backward_naive", xp, dout, (N, C, Ho, Wo))
    dx = zeros_like_shape(xp, x, x.shape, dtype=xp.result_type(x, dout))
    for n in range(N):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    patch = xp.reshape(x[n, c, i * s:i * s + ph, j * s:j * s + pw], (ph * pw,))
                    k = int(xp.argmax(patch))
                    dx[n, c, i * s + k // pw, j * s + k % pw] += dout[n, c, i, j]
    return dx


def max_pool_forward_fast(x, pool_param):
    """Vectorised max pooling: a reshape when windows tile the input
    (stride equal to the window), a loop over window offsets otherwise; the
    backend's kernel where it has one. Cache holds the argmax index of every
    window, not the input."""
    xp = xp_of(x=x)
    ph, pw, s, Ho, Wo = _pool_geometry(x, pool_param, "max_pool_forward_fast")
    fast = kernels(x).max_pool_forward(x, ph, pw, s, Ho, Wo)
    if fast is not None:  # flat in-plane argmax from the kernel
        out, idx = fast
        return out, (tuple(x.shape), idx, _snapshot(ph, pw, s), "plane")
    win = _windows(xp, x, ph, pw, s, Ho, Wo)
    idx = xp.argmax(win, axis=-1)
    out = xp.max(win, axis=-1)
    return out, (tuple(x.shape), idx, _snapshot(ph, pw, s), "window")


def _snapshot(ph, pw, s):
    """The validated pool_param the forward used, for its backward (the
    caller's dict may change in between)."""
    return {"pool_height": ph, "pool_width": pw, "stride": s}


def max_pool_backward_fast(dout, cache):
    """Backward of :func:`max_pool_forward_fast`."""
    shape, idx, pool_param, kind = cache
    xp = xp_of(dout=dout, idx=idx)
    ph, pw = int(pool_param["pool_height"]), int(pool_param["pool_width"])
    s = int(pool_param["stride"])
    if tuple(dout.shape) != tuple(idx.shape):
        raise ValueError(f"max_pool_backward_fast: dout has shape {shape_str(dout)}, "
                         f"expected the forward output's {shape_str(idx)}")
    Ho, Wo = idx.shape[2], idx.shape[3]
    if kind == "plane":
        if dtype_name(dout) not in ("float32", "float64"):
            raise TypeError(f"max_pool_backward_fast: dout must be float32 or float64 (the "
                            f"forward input's types), got dtype {dout.dtype}")
        dx = kernels(dout, idx).max_pool_backward(dout, idx, shape[2], shape[3], ph, pw, s)
        if dx is not None:
            return dx
        idx = _window_offsets(xp, idx, shape[3], pw, s)  # the kernel is gone: the same maxima
    offsets = xp.arange(ph * pw, dtype=idx.dtype, device=_device(idx))
    hit = idx[..., None] == offsets
    dwin = xp.where(hit, dout[..., None], xp.zeros_like(dout)[..., None])
    return _unwindows(xp, dwin, shape, ph, pw, s, Ho, Wo)


def _window_offsets(xp, idx, W, pw, s):
    """A kernel's flat in-plane argmax (y * W + x) as the offset within its
    window (ki * pw + kj), the portable path's form."""
    Ho, Wo = idx.shape[2], idx.shape[3]
    oy = xp.reshape(xp.arange(Ho, dtype=idx.dtype, device=_device(idx)), (Ho, 1))
    ox = xp.reshape(xp.arange(Wo, dtype=idx.dtype, device=_device(idx)), (1, Wo))
    return (idx // W - oy * s) * pw + (idx % W - ox * s)


def _max_pool_relu_forward(x, pool_param):
    """``relu_forward(max_pool_forward_fast(x, pool_param)[0])`` (a maximum
    commutes with the ReLU): (out, pool cache); one kernel where the backend
    has it. The ReLU's cache is ``out`` (> 0 exactly where the pooled value
    is)."""
    xp_of(x=x)
    ph, pw, s, Ho, Wo = _pool_geometry(x, pool_param, "max_pool_forward_fast")
    fast = kernels(x).max_pool_relu_forward(x, ph, pw, s, Ho, Wo)
    if fast is not None:
        out, idx = fast
        return out, (tuple(x.shape), idx, _snapshot(ph, pw, s), "plane")
    p, cache = max_pool_forward_fast(x, pool_param)
    return relu_forward(p)[0], cache


def _max_pool_relu_backward(dout, out, cache):
    """Backward of :func:`_max_pool_relu_forward` given its ``out``: the
    ReLU's backward, then the pool's; one kernel where the backend has it."""
    shape, idx, pool_param, kind = cache
    if kind == "plane":
        check_dout("relu_backward", xp_of(dout=dout, x=out), dout, out.shape)
        dx = kernels(dout, out).max_pool_relu_backward(
            dout, idx, out, shape[2], shape[3], pool_param["pool_height"],
            pool_param["pool_width"], pool_param["stride"])
        if dx is not None:
            return dx
    return max_pool_backward_fast(relu_backward(dout, out), cache)


def avg_pool_forward(x, pool_param):
    """Average pooling; pool_param as for max pooling. Cache: the input's shape
    and the window geometry it was pooled with."""
    xp = xp_of(x=x)
    ph, pw, s, Ho, Wo = _pool_geometry(x, pool_param, "avg_pool_forward")
    if _tiles(ph, pw, s):
        out = xp.mean(_windows(xp, x, ph, pw, s, Ho, Wo), axis=-1)
    else:
        out = x[window(0, 0, s, Ho, Wo)]
        for k in range(1, ph * pw):
            out = out + x[window(k // pw, k % pw, s, Ho, Wo)]
        out = out / (ph * pw)
    return out, (tuple(x.shape), (ph, pw, s, Ho, Wo))


def avg_pool_backward(dout, cache):
    """Backward of :func:`avg_pool_forward`."""
    shape, (ph, pw, s, Ho, Wo) = cache
    xp = xp_of(dout=dout)
    check_dout("avg_pool_backward", xp, dout, tuple(shape[:2]) + (Ho, Wo))
    share = dout / (ph * pw)
    if _tiles(ph, pw, s):
        dwin = xp.broadcast_to(share[..., None], tuple(dout.shape) + (ph * pw,))
        return _unwindows(xp, dwin, shape, ph, pw, s, Ho, Wo)
    dx = zeros_like_shape(xp, dout, shape)
    for k in range(ph * pw):
        dx[window(k // pw, k % pw, s, Ho, Wo)] += share
    return dx


def global_avg_pool_forward(x):
    """Mean over each channel's H x W: x (N, C, H, W) -> out (N, C)."""
    xp = xp_of(x=x)
    check_ndim("global_avg_pool_forward: x", x, 4, "(N, C, H, W)")
    return xp.mean(x, axis=(2, 3)), tuple(x.shape)


def global_avg_pool_backward(dout, cache):
    shape = cache
    xp = xp_of(dout=dout)
    check_dout("global_avg_pool_backward", xp, dout, tuple(shape[:2]))
    dx = zeros_like_shape(xp, dout, shape)
    return dx + dout[:, :, None, None] / (shape[2] * shape[3])
