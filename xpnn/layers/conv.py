"""2-D convolution (cross-correlation, as in the course): naive loops for
teaching, and a fast version: im2col + matmul, or the backend's own
convolution where it has one (on NumPy, columns built a few samples at a
time or, for stride-1 layers with few input channels, a compiled direct
convolution; on a GPU, fused CUDA kernels or cuDNN)."""
from __future__ import annotations

from ..backend import KernelState, kernels
from ._columns import col2im, im2col
from ._util import (check_dout, check_int, check_ndim, pad_hw, shape_str, xp_of,
                    zeros_like_shape)

__all__ = ["conv_forward_naive", "conv_backward_naive", "conv_forward_fast",
           "conv_backward_fast", "conv_forward_im2col", "conv_backward_im2col"]


def _conv_geometry(x, w, b, conv_param, fn):
    """Validate a convolution's inputs; return (stride, pad, Ho, Wo)."""
    check_ndim(f"{fn}: x", x, 4, "(N, C, H, W)")
    check_ndim(f"{fn}: w", w, 4, "(F, C, HH, WW)")
    if not isinstance(conv_param, dict):
        raise TypeError(f"{fn}: conv_param must be a dict with 'stride' and 'pad'")
    N, C, H, W = x.shape
    F, Cw, HH, WW = w.shape
    if C != Cw:
        if W == Cw:  # x's last axis has w's channels: an image batch as (N, H, W, C)
            raise ValueError(
                f"{fn}: x {shape_str(x)} looks channels-last (N, H, W, C), with w "
                f"{shape_str(w)}'s {Cw} channels on its last axis; x must be (N, C, H, W): "
                f"pass x.transpose(0, 3, 1, 2)")
        raise ValueError(f"{fn}: x {shape_str(x)} has {C} channels (axis 1 of (N, C, H, W)) "
                         f"but w {shape_str(w)} expects {Cw}: x must be (N, {Cw}, H, W), or "
                         f"w (F, {C}, HH, WW)")
    if b.shape != (F,):
        raise ValueError(f"{fn}: b must have shape ({F},) for w {shape_str(w)}, "
                         f"got {shape_str(b)}")
    # as the course's code reads them: both given (a missing 'pad' once meant 0)
    missing = [k for k in ("stride", "pad") if k not in conv_param]
    other = sorted(str(k) for k in conv_param if k not in ("stride", "pad"))
    if missing or other:
        import difflib
        said = [f"is missing {', '.join(repr(k) for k in missing)}"] if missing else []
        for k in other:
            near = difflib.get_close_matches(k, ["stride", "pad"], n=1, cutoff=0.5)
            said.append(f"has {k!r}" + (f" (did you mean {near[0]!r}?)" if near else ""))
        raise ValueError(f"{fn}: conv_param {' and '.join(said)}; it takes exactly 'stride' "
                         f"and 'pad', e.g. {{'stride': 1, 'pad': 1}}")
    stride = check_int(f"{fn}: conv_param['stride']", conv_param["stride"], 1)
    pad = check_int(f"{fn}: conv_param['pad']", conv_param["pad"], 0)
    Hp, Wp = H + 2 * pad, W + 2 * pad
    for axis, size, k in (("height", Hp, HH), ("width", Wp, WW)):
        if k > size:
            raise ValueError(
                f"{fn}: filter {axis} {k} exceeds the padded input {axis} {size} "
                f"(x {shape_str(x)}, pad {pad}, w {shape_str(w)})")
        if (size - k) % stride:
            raise ValueError(
                f"{fn}: stride {stride} does not fit: padded input {axis} {size} "
                f"minus filter {axis} {k} must be divisible by the stride "
                f"(x {shape_str(x)}, w {shape_str(w)}, pad {pad})")
    return stride, pad, (Hp - HH) // stride + 1, (Wp - WW) // stride + 1


def conv_forward_naive(x, w, b, conv_param):
    """Convolution by explicit loops over samples, filters and positions.

    x: (N, C, H, W); w: (F, C, HH, WW); b: (F,); conv_param: 'stride', 'pad'
    (zero padding on each side). Output (N, F, H', W') with
    H' = 1 + (H + 2 pad - HH) / stride (must be an integer).
    Returns out and cache (x, w, b, conv_param).
    """
    xp = xp_of(x=x, w=w, b=b)
    s, pad, Ho, Wo = _conv_geometry(x, w, b, conv_param, "conv_forward_naive")
    N, F = x.shape[0], w.shape[0]
    HH, WW = w.shape[2], w.shape[3]
    xpad = pad_hw(xp, x, pad)
    out = zeros_like_shape(xp, x, (N, F, Ho, Wo), dtype=xp.result_type(x, w))
    for n in range(N):
        for f in range(F):
            for i in range(Ho):
                for j in range(Wo):
                    patch = xpad[n, :, i * s:i * s + HH, j * s:j * s + WW]
                    out[n, f, i, j] = xp.sum(patch * w[f, ...]) + b[f]
    return out, (x, w, b, {"stride": s, "pad": pad})


def conv_backward_naive(dout, cache):
    """Backward of :func:`conv_forward_naive` by the same loops: dx, dw, db."""
    x, w, b, conv_param = cache
    xp = xp_of(dout=dout, x=x, w=w)
    s, pad, Ho, Wo = _conv_geometry(x, w, b, conv_param, "conv_backward_naive")
    check_dout("conv_backward_naive", xp, dout, (x.shape[0], w.shape[0], Ho, Wo))
    N, F = x.shape[0], w.shape[0]
    HH, WW = w.shape[2], w.shape[3]
    dt = xp.result_type(x, w)
    if dout.dtype != dt:  # gradients in the layer's own dtype, as the fast backward's
        dout = xp.astype(dout, dt)
    xpad = pad_hw(xp, x, pad)
    dxpad = zeros_like_shape(xp, xpad, xpad.shape, dtype=dt)
    dw = zeros_like_shape(xp, w, w.shape, dtype=dt)
    db = xp.sum(dout, axis=(0, 2, 3))
    for n in range(N):
        for f in range(F):
            for i in range(Ho):
                for j in range(Wo):
                    rows, cols = slice(i * s, i * s + HH), slice(j * s, j * s + WW)
                    g = dout[n, f, i, j]
                    dw[f, ...] += g * xpad[n, :, rows, cols]
                    dxpad[n, :, rows, cols] += g * w[f, ...]
    H, W = x.shape[2], x.shape[3]
    return dxpad[:, :, pad:pad + H, pad:pad + W], dw, db


def conv_forward_fast(x, w, b, conv_param):
    """Convolution as im2col + matmul, or the backend's own convolution.

    Same arguments and output as :func:`conv_forward_naive`; any stride,
    padding and (non-square) filter. Cache: (x, w, b, conv_param, columns or
    what the backend kept to rebuild them).
    """
    xp = xp_of(x=x, w=w, b=b)
    s, pad, Ho, Wo = _conv_geometry(x, w, b, conv_param, "conv_forward_fast")
    geometry = {"stride": s, "pad": pad}
    fast = kernels(x, w, b).conv_forward(x, w, b, s, pad, Ho, Wo)
    if fast is not None:
        out, saved = fast
        return out, (x, w, b, geometry, saved)
    N = x.shape[0]
    F, C, HH, WW = w.shape
    cols = im2col(xp, pad_hw(xp, x, pad), HH, WW, s, Ho, Wo)  # (K, N*P)
    K, P = C * HH * WW, Ho * Wo
    w2 = xp.reshape(w, (F, K))
    if P >= _PER_SAMPLE_MIN_P:
        # one (F, K) @ (K, P) product per sample, read from the columns in
        # place, written straight in N, F, H, W: no copy of the output. Where
        # the planes are large this wins (2 threads, batch 64: 3.3 ms against
        # 13.2 ms for 3 -> 64 channels at 32x32); for small planes the
        # per-sample products are too small and one big product wins
        out = xp.matmul(w2, xp.permute_dims(xp.reshape(cols, (K, N, P)), (1, 0, 2)))
        out += xp.reshape(b, (1, F, 1))
        return xp.reshape(out, (N, F, Ho, Wo)), (x, w, b, geometry, cols)
    out = xp.matmul(w2, cols)
    out += xp.reshape(b, (F, 1))  # in place: no second (F, N*P) temporary
    out = xp.permute_dims(xp.reshape(out, (F, N, Ho, Wo)), (1, 0, 2, 3))
    return out, (x, w, b, geometry, cols)


#: planes of at least this many outputs get one product per sample
_PER_SAMPLE_MIN_P = 256


def conv_backward_fast(dout, cache):
    """Backward of :func:`conv_forward_fast`: dx, dw, db."""
    return conv_backward_fast_params(dout, cache, need_dx=True)


def conv_backward_fast_params(dout, cache, need_dx=False):
    """:func:`conv_backward_fast` that skips dx (returned as None) unless
    ``need_dx``: a network's first layer needs no input gradient, and dx
    costs a matmul and a col2im."""
    x, w, b, conv_param, saved = cache
    xp = xp_of(dout=dout, x=x, w=w)
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    # the geometry the forward saw (its cache holds a copy of conv_param)
    s, pad, Ho, Wo = _conv_geometry(x, w, b, conv_param, "conv_backward_fast")
    check_dout("conv_backward_fast", xp, dout, (N, F, Ho, Wo))
    dt = xp.result_type(x, w)
    if dout.dtype != dt:  # gradients in the layer's own dtype, on every path
        dout = xp.astype(dout, dt)
    k = kernels(dout, x, w)
    fast = k.conv_backward(dout, x, w, saved, s, pad, Ho, Wo, need_dx)
    if fast is not None:
        return fast
    # the columns: kept by the forward, or rebuilt where its backend kept
    # something else and declined the backward
    cols = im2col(xp, pad_hw(xp, x, pad), HH, WW, s, Ho, Wo) \
        if isinstance(saved, KernelState) else saved
    d2 = xp.reshape(xp.permute_dims(dout, (1, 0, 2, 3)), (F, N * Ho * Wo))
    db = xp.sum(d2, axis=1)
    dw = xp.reshape(xp.matmul(d2, xp.matrix_transpose(cols)), w.shape)
    if not need_dx:
        return None, dw, db
    dcols = xp.matmul(xp.matrix_transpose(xp.reshape(w, (F, C * HH * WW))), d2)
    dx = k.conv_input_grad(dcols, N, C, H, W, HH, WW, s, pad, Ho, Wo)
    if dx is not None:
        return dx, dw, db
    dxpad = col2im(xp, dcols, N, C, H + 2 * pad, W + 2 * pad, HH, WW, s, Ho, Wo)
    return dxpad[:, :, pad:pad + H, pad:pad + W], dw, db


# The course's fast_layers module also names the im2col route explicitly.
conv_forward_im2col = conv_forward_fast
conv_backward_im2col = conv_backward_fast
