"""im2col and col2im, which the array API lacks: the backend's kernel where
it has one, else strided slices (one per kernel offset; within one offset
no element repeats, so no scatter-add is needed).

Column layout (every backend): ``cols[(c*kh + i)*kw + j, n*Ho*Wo + oy*Wo +
ox]``, shape (C*kh*kw, N*Ho*Wo), so a convolution and its weight gradient
are each a single matmul.
"""
from __future__ import annotations

from ..backend import kernels
from ._util import window, zeros_like_shape


def im2col(xp, xpad, kh, kw, stride, Ho, Wo):
    """(N, C, Hp, Wp) -> (C*kh*kw, N*Ho*Wo)."""
    cols = kernels(xpad).im2col(xpad, kh, kw, stride, Ho, Wo)
    if cols is not None:
        return cols
    N, C = xpad.shape[:2]
    cols = zeros_like_shape(xp, xpad, (C, kh, kw, N, Ho, Wo))
    for i in range(kh):
        for j in range(kw):
            cols[:, i, j, ...] = xp.permute_dims(xpad[window(i, j, stride, Ho, Wo)],
                                                 (1, 0, 2, 3))
    return xp.reshape(cols, (C * kh * kw, N * Ho * Wo))


def col2im(xp, dcols, N, C, Hp, Wp, kh, kw, stride, Ho, Wo):
    """(C*kh*kw, N*Ho*Wo) -> (N, C, Hp, Wp), summing overlapping windows."""
    dx = kernels(dcols).col2im(dcols, N, C, Hp, Wp, kh, kw, stride, Ho, Wo)
    if dx is not None:
        return dx
    d6 = xp.reshape(dcols, (C, kh, kw, N, Ho, Wo))
    dx = zeros_like_shape(xp, dcols, (N, C, Hp, Wp))
    for i in range(kh):
        for j in range(kw):
            dx[window(i, j, stride, Ho, Wo)] += xp.permute_dims(d6[:, i, j, ...], (1, 0, 2, 3))
    return dx
