# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""im2col / col2im for the NumPy backend.

Layout: ``cols[n, (c*kh + i)*kw + j, oy*Wo + ox] = xpad[n, c, oy*s + i, ox*s + j]``,
so a convolution is the batched matmul ``w.reshape(F, -1) @ cols``. All sizes
are integers (the historical course kernel computed them as floats) and the
kernel may be non-square. Each batch item is independent, so the batch loop
runs in parallel without races.
"""
import numpy as np
cimport cython
from cython cimport floating
from cython.parallel cimport prange


def im2col(floating[:, :, :, ::1] xpad, Py_ssize_t kh, Py_ssize_t kw,
           Py_ssize_t stride, Py_ssize_t Ho, Py_ssize_t Wo):
    """(N, C, Hp, Wp) padded input -> (N, C*kh*kw, Ho*Wo) columns."""
    cdef Py_ssize_t N = xpad.shape[0], C = xpad.shape[1]
    dtype = np.float32 if floating is float else np.float64
    cols_arr = np.empty((N, C * kh * kw, Ho * Wo), dtype=dtype)
    cdef floating[:, :, ::1] cols = cols_arr
    cdef Py_ssize_t n, c, i, j, oy, ox, row, base
    for n in prange(N, nogil=True, schedule='static'):
        for c in range(C):
            for i in range(kh):
                for j in range(kw):
                    row = (c * kh + i) * kw + j
                    for oy in range(Ho):
                        base = oy * Wo
                        for ox in range(Wo):
                            cols[n, row, base + ox] = xpad[n, c, oy * stride + i, ox * stride + j]
    return cols_arr


def col2im(floating[:, :, ::1] cols, Py_ssize_t C, Py_ssize_t Hp, Py_ssize_t Wp,
           Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t stride, Py_ssize_t Ho, Py_ssize_t Wo):
    """(N, C*kh*kw, Ho*Wo) column gradients -> (N, C, Hp, Wp), summing overlaps."""
    cdef Py_ssize_t N = cols.shape[0]
    dtype = np.float32 if floating is float else np.float64
    out_arr = np.zeros((N, C, Hp, Wp), dtype=dtype)
    cdef floating[:, :, :, ::1] out = out_arr
    cdef Py_ssize_t n, c, i, j, oy, ox, row, base
    for n in prange(N, nogil=True, schedule='static'):
        for c in range(C):
            for i in range(kh):
                for j in range(kw):
                    row = (c * kh + i) * kw + j
                    for oy in range(Ho):
                        base = oy * Wo
                        for ox in range(Wo):
                            out[n, c, oy * stride + i, ox * stride + j] += cols[n, row, base + ox]
    return out_arr
