"""Kernels the array API lacks: the compiled ones on NumPy, portable
strided-slice versions elsewhere.

Column layout (both paths): ``cols[(c*kh + i)*kw + j, n*Ho*Wo + oy*Wo + ox]``,
shape (C*kh*kw, N*Ho*Wo), so a convolution and its weight gradient are each
a single matmul.
"""
from __future__ import annotations

import warnings

import numpy as np

from .. import backend
from ._util import window, zeros_like_shape

try:
    from .._cython import im2col as _cy
except ImportError as _exc:  # pragma: no cover - exercised when not built
    _cy = None
    _IMPORT_ERROR = _exc
else:
    _IMPORT_ERROR = None

_warned = False


def has_compiled() -> bool:
    """True when the Cython extension was built and imported."""
    return _cy is not None


def _use_compiled(x) -> bool:
    global _warned
    if not backend.is_host(x) or x.dtype not in (np.float32, np.float64):
        return False
    if _cy is None:
        if not _warned:
            _warned = True
            warnings.warn(
                "xpnn's compiled im2col extension is missing "
                f"({_IMPORT_ERROR}); using the slower portable path. Build it "
                "with: pip install -e . (needs a C compiler, Cython and NumPy)",
                RuntimeWarning, stacklevel=3)
        return False
    return True


def compiled_kernels(*arrays):
    """The compiled host kernels when they serve all of ``arrays`` (NumPy
    arrays of one floating dtype, the extension built), else None."""
    if not all(_use_compiled(a) for a in arrays) or len({a.dtype for a in arrays}) != 1:
        return None
    return _cy


def contiguous(x):
    """A C-contiguous version of x on the host (kernels and reshapes want
    it); other backends manage layout themselves."""
    return np.ascontiguousarray(x) if backend.is_host(x) else x


def _on_gpu(x) -> bool:
    return backend.backend_of(x) == "cupy"


def _route(x):
    """Which implementation serves ``x``: the CUDA kernels (``_cuda``), the
    compiled host ones (``_cy``), or None for the portable array-API path."""
    if _on_gpu(x):
        from . import _cuda
        return _cuda
    return _cy if _use_compiled(x) else None


def fused_enabled(*arrays) -> bool:
    """Whether xpnn's fused CUDA kernels serve these arrays (CuPy arrays of
    one floating dtype, XPNN_NO_FUSED_KERNELS unset)."""
    if not all(_on_gpu(a) for a in arrays):
        return False
    from . import _cuda
    return _cuda.fused_enabled(*arrays)


def im2col(xp, xpad, kh, kw, stride, Ho, Wo):
    """(N, C, Hp, Wp) -> (C*kh*kw, N*Ho*Wo)."""
    k = _route(xpad)
    if k is not None:
        return k.im2col(contiguous(xpad), kh, kw, stride, Ho, Wo)
    N, C = xpad.shape[:2]
    cols = zeros_like_shape(xp, xpad, (C, kh, kw, N, Ho, Wo))
    for i in range(kh):
        for j in range(kw):
            cols[:, i, j, ...] = xp.permute_dims(xpad[window(i, j, stride, Ho, Wo)],
                                                 (1, 0, 2, 3))
    return xp.reshape(cols, (C * kh * kw, N * Ho * Wo))


def col2im(xp, dcols, N, C, Hp, Wp, kh, kw, stride, Ho, Wo):
    """(C*kh*kw, N*Ho*Wo) -> (N, C, Hp, Wp), summing overlapping windows.
    Within one kernel offset the strided slice has no repeated element, so a
    plain slice add is exact: no scatter-add is needed."""
    k = _route(dcols)
    if k is not None:
        return k.col2im(contiguous(dcols), N, C, Hp, Wp, kh, kw, stride, Ho, Wo)
    d6 = xp.reshape(dcols, (C, kh, kw, N, Ho, Wo))
    dx = zeros_like_shape(xp, dcols, (N, C, Hp, Wp))
    for i in range(kh):
        for j in range(kw):
            dx[window(i, j, stride, Ho, Wo)] += xp.permute_dims(d6[:, i, j, ...], (1, 0, 2, 3))
    return dx


def max_pool_forward(x, ph, pw, stride, Ho, Wo):
    """Compiled max pooling: (out, flat in-plane argmax), or None when the
    portable path must be used."""
    k = _route(x)
    return None if k is None else k.max_pool_forward(contiguous(x), ph, pw, stride, Ho, Wo)


def max_pool_backward(dout, idx, H, W, ph, pw, stride):
    """Backward of :func:`max_pool_forward` from its recorded argmax."""
    if _on_gpu(dout):
        from . import _cuda
        return _cuda.max_pool_backward(dout, idx, H, W, ph, pw, stride)
    return _cy.max_pool_backward(contiguous(dout), idx, H, W)


def channel_affine(u, a, b, v=None, k=None):
    """``a*u + b (+ k*v)`` with per-channel coefficients (axis 1) in one
    compiled pass, or None when the portable path must be used: also when
    the arrays' dtypes differ, so that the result's dtype follows the usual
    promotion (float32 data, float64 gamma: float64) on every path."""
    given = [t for t in (u, a, b, v, k) if t is not None]
    if not _use_compiled(u) or not all(isinstance(t, np.ndarray) and t.dtype == u.dtype
                                       for t in given):
        return None
    N, C = u.shape[0], u.shape[1]
    c = np.ascontiguousarray
    u3 = c(u).reshape(N, C, -1)
    v3 = None if v is None else c(v).reshape(N, C, -1)
    kk = None if k is None else c(k)
    return _cy.channel_affine(u3, c(a), c(b), v3, kk).reshape(u.shape)
