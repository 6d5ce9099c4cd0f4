"""A benchmark peer: the course reference "fast" layers' algorithm,
implemented here independently. im2col gathers with fancy indices built
per call, col2im scatters with ``np.add.at``, and 2x2 max pooling uses a
reshape with a broadcast equality mask. Benchmark use only."""
from __future__ import annotations

import numpy as np


def _indices(x_shape, fh, fw, pad, stride):
    N, C, H, W = x_shape
    Ho, Wo = (H + 2 * pad - fh) // stride + 1, (W + 2 * pad - fw) // stride + 1
    i0 = np.tile(np.repeat(np.arange(fh), fw), C)
    i1 = stride * np.repeat(np.arange(Ho), Wo)
    j0 = np.tile(np.arange(fw), fh * C)
    j1 = stride * np.tile(np.arange(Wo), Ho)
    i = i0.reshape(-1, 1) + i1.reshape(1, -1)
    j = j0.reshape(-1, 1) + j1.reshape(1, -1)
    k = np.repeat(np.arange(C), fh * fw).reshape(-1, 1)
    return k, i, j, Ho, Wo


def conv_forward(x, w, b, stride, pad):
    F, C, fh, fw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    k, i, j, Ho, Wo = _indices(x.shape, fh, fw, pad, stride)
    cols = xp[:, k, i, j].transpose(1, 2, 0).reshape(fh * fw * C, -1)
    out = (w.reshape(F, -1) @ cols + b.reshape(-1, 1)).reshape(F, Ho, Wo, x.shape[0])
    return out.transpose(3, 0, 1, 2), (x, w, stride, pad, cols)


def conv_backward(dout, cache):
    x, w, stride, pad, cols = cache
    N, C, H, W = x.shape
    F, _, fh, fw = w.shape
    db = dout.sum(axis=(0, 2, 3))
    d = dout.transpose(1, 2, 3, 0).reshape(F, -1)
    dw = (d @ cols.T).reshape(w.shape)
    dcols = w.reshape(F, -1).T @ d
    k, i, j, _, _ = _indices(x.shape, fh, fw, pad, stride)
    dxp = np.zeros((N, C, H + 2 * pad, W + 2 * pad), dtype=x.dtype)
    dcr = dcols.reshape(C * fh * fw, -1, N).transpose(2, 0, 1)
    np.add.at(dxp, (slice(None), k, i, j), dcr)
    return dxp[:, :, pad:pad + H, pad:pad + W] if pad else dxp, dw, db


def max_pool_forward(x):
    N, C, H, W = x.shape
    xr = x.reshape(N, C, H // 2, 2, W // 2, 2)
    out = xr.max(axis=3).max(axis=4)
    return out, (x, xr, out)


def max_pool_backward(dout, cache):
    x, xr, out = cache
    dxr = np.zeros_like(xr)
    mask = xr == out[:, :, :, None, :, None]
    dxr[mask] = np.broadcast_to(dout[:, :, :, None, :, None], dxr.shape)[mask]
    dxr /= mask.sum(axis=(3, 5), keepdims=True)  # ties share the gradient
    return dxr.reshape(x.shape)


def three_layer_step(params, X, y, filter_size):
    """conv - relu - 2x2 pool - affine - relu - affine - softmax, fwd + bwd."""
    W1, b1, W2, b2, W3, b3 = (params[k] for k in ("W1", "b1", "W2", "b2", "W3", "b3"))
    c, cc = conv_forward(X, W1, b1, 1, (filter_size - 1) // 2)
    r = np.maximum(c, 0)
    p, pc = max_pool_forward(r)
    h = p.reshape(len(X), -1) @ W2 + b2
    hr = np.maximum(h, 0)
    s = hr @ W3 + b3
    s = s - s.max(axis=1, keepdims=True)
    prob = np.exp(s)
    prob /= prob.sum(axis=1, keepdims=True)
    loss = -np.log(prob[np.arange(len(y)), y]).mean()
    ds = prob
    ds[np.arange(len(y)), y] -= 1
    ds /= len(y)
    grads = {"W3": hr.T @ ds, "b3": ds.sum(0)}
    dh = (ds @ W3.T) * (h > 0)
    grads["W2"], grads["b2"] = p.reshape(len(X), -1).T @ dh, dh.sum(0)
    dp = (dh @ W2.T).reshape(p.shape)
    dr = max_pool_backward(dp, pc) * (c > 0)
    _, grads["W1"], grads["b1"] = conv_backward(dr, cc)
    return loss, grads
