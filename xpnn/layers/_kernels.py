"""im2col / col2im: the compiled kernels on NumPy, strided slices elsewhere.

Column layout (both paths): ``cols[n, (c*kh + i)*kw + j, oy*Wo + ox]``.
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


def im2col(xp, xpad, kh, kw, stride, Ho, Wo):
    """(N, C, Hp, Wp) -> (N, C*kh*kw, Ho*Wo)."""
    if _use_compiled(xpad):
        return _cy.im2col(np.ascontiguousarray(xpad), kh, kw, stride, Ho, Wo)
    N, C = xpad.shape[:2]
    cols = zeros_like_shape(xp, xpad, (N, C, kh, kw, Ho, Wo))
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j, :, :] = xpad[window(i, j, stride, Ho, Wo)]
    return xp.reshape(cols, (N, C * kh * kw, Ho * Wo))


def col2im(xp, dcols, C, Hp, Wp, kh, kw, stride, Ho, Wo):
    """(N, C*kh*kw, Ho*Wo) -> (N, C, Hp, Wp), summing overlapping windows.
    Within one kernel offset the strided slice has no repeated element, so a
    plain slice add is exact: no scatter-add is needed."""
    if _use_compiled(dcols):
        return _cy.col2im(np.ascontiguousarray(dcols), C, Hp, Wp, kh, kw, stride, Ho, Wo)
    N = dcols.shape[0]
    d6 = xp.reshape(dcols, (N, C, kh, kw, Ho, Wo))
    dx = zeros_like_shape(xp, dcols, (N, C, Hp, Wp))
    for i in range(kh):
        for j in range(kw):
            dx[window(i, j, stride, Ho, Wo)] += d6[:, :, i, j, :, :]
    return dx
