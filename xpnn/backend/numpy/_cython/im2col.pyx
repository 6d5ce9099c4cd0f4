# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Hot loops of the NumPy backend: im2col / col2im and max pooling.

Column layout: ``cols[(c*kh + i)*kw + j, n*Ho*Wo + oy*Wo + ox] =
xpad[n, c, oy*s + i, ox*s + j]``, so a convolution is ONE matmul
``w.reshape(F, K) @ cols`` and the weight gradient ``dout2 @ cols.T`` is
another, with no copy of the columns. All sizes are integers (the historical
course kernel computed them as floats) and kernels may be non-square.
The loops are serial: NumPy's matmul owns the threads.
"""
import numpy as np
cimport cython
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cython cimport floating


cdef _check_windows(str fn, Py_ssize_t H, Py_ssize_t W, Py_ssize_t kh, Py_ssize_t kw,
                    Py_ssize_t stride, Py_ssize_t Ho, Py_ssize_t Wo):
    """Every window lies inside the (H, W) plane: the loops below index
    without bounds checks, so a kernel refuses any geometry it was not
    built for instead of reading or writing out of bounds."""
    if kh < 1 or kw < 1 or stride < 1 or Ho < 0 or Wo < 0 or (
            Ho > 0 and (Ho - 1) * stride + kh > H) or (Wo > 0 and (Wo - 1) * stride + kw > W):
        raise ValueError(f"{fn}: windows of {kh}x{kw}, stride {stride}, giving {Ho}x{Wo} "
                         f"outputs, do not fit a {H}x{W} input")


cdef _checked_out(str fn, out, tuple shape, dtype):
    """A caller's output buffer, refused unless it is exactly what the
    kernel would have allocated (shape, dtype, C-contiguous)."""
    if not isinstance(out, np.ndarray) or out.shape != shape or out.dtype != dtype or \
            not out.flags.c_contiguous or not out.flags.writeable:
        got = (f"{'read-only ' if not out.flags.writeable else ''}"
               f"{'' if out.flags.c_contiguous else 'non-contiguous '}"
               f"{out.dtype.name} array of shape {out.shape}"
               if isinstance(out, np.ndarray) else type(out).__name__)
        raise ValueError(f"{fn}: out must be a writeable C-contiguous {np.dtype(dtype).name} "
                         f"array of shape {shape}, got a {got}")
    return out


def im2col(const floating[:, :, :, ::1] xpad, Py_ssize_t kh, Py_ssize_t kw,
           Py_ssize_t stride, Py_ssize_t Ho, Py_ssize_t Wo, out=None):
    """(N, C, Hp, Wp) padded input -> (C*kh*kw, N*Ho*Wo) columns, written
    into ``out`` when given (a buffer reused from call to call)."""
    _check_windows("im2col", xpad.shape[2], xpad.shape[3], kh, kw, stride, Ho, Wo)
    cdef Py_ssize_t N = xpad.shape[0], C = xpad.shape[1]
    cdef Py_ssize_t K = C * kh * kw, P = Ho * Wo
    dtype = np.float32 if floating is float else np.float64
    cols_arr = np.empty((K, N * P), dtype=dtype) if out is None else \
        _checked_out("im2col", out, (K, N * P), dtype)
    cdef floating[:, ::1] cols = cols_arr
    cdef Py_ssize_t row, c, i, j, n, oy, ox, base, y
    with nogil:
        for row in range(K):
            c = row // (kh * kw)
            i = (row // kw) % kh
            j = row % kw
            for n in range(N):
                for oy in range(Ho):
                    base = n * P + oy * Wo
                    y = oy * stride + i
                    if stride == 1:
                        for ox in range(Wo):
                            cols[row, base + ox] = xpad[n, c, y, ox + j]
                    else:
                        for ox in range(Wo):
                            cols[row, base + ox] = xpad[n, c, y, ox * stride + j]
    return cols_arr


def col2im(const floating[:, ::1] cols, Py_ssize_t N, Py_ssize_t C, Py_ssize_t Hp,
           Py_ssize_t Wp, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t stride, Py_ssize_t Ho,
           Py_ssize_t Wo, out=None):
    """(C*kh*kw, N*Ho*Wo) column gradients -> (N, C, Hp, Wp), summing overlaps;
    written into ``out`` when given (its old values are overwritten).
    Each batch item owns its output plane (the loops are serial, see above)."""
    _check_windows("col2im", Hp, Wp, kh, kw, stride, Ho, Wo)
    if N < 0 or C < 0 or cols.shape[0] != C * kh * kw or cols.shape[1] != N * Ho * Wo:
        raise ValueError(f"col2im: columns of shape ({cols.shape[0]}, {cols.shape[1]}) do not "
                         f"match ({C * kh * kw}, {N * Ho * Wo}) for N={N}, C={C}, a {kh}x{kw} "
                         f"window and {Ho}x{Wo} outputs")
    dtype = np.float32 if floating is float else np.float64
    out_arr = np.empty((N, C, Hp, Wp), dtype=dtype) if out is None else \
        _checked_out("col2im", out, (N, C, Hp, Wp), dtype)
    cdef floating[:, :, :, ::1] dst = out_arr
    cdef Py_ssize_t P = Ho * Wo
    cdef Py_ssize_t n, c, i, j, oy, ox, row, base, y
    with nogil:
        for n in range(N):
            for c in range(C):
                for y in range(Hp):
                    for ox in range(Wp):
                        dst[n, c, y, ox] = 0
                for i in range(kh):
                    for j in range(kw):
                        row = (c * kh + i) * kw + j
                        for oy in range(Ho):
                            base = n * P + oy * Wo
                            y = oy * stride + i
                            if stride == 1:
                                for ox in range(Wo):
                                    dst[n, c, y, ox + j] += cols[row, base + ox]
                            else:
                                for ox in range(Wo):
                                    dst[n, c, y, ox * stride + j] += cols[row, base + ox]
    return out_arr


def max_pool_forward(const floating[:, :, :, ::1] x, Py_ssize_t ph, Py_ssize_t pw,
                     Py_ssize_t stride, Py_ssize_t Ho, Py_ssize_t Wo):
    """Max over each window and the flat in-plane index (h*W + w) of its first
    maximum in row-major window order (a NaN counts as the maximum)."""
    _check_windows("max_pool_forward", x.shape[2], x.shape[3], ph, pw, stride, Ho, Wo)
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    dtype = np.float32 if floating is float else np.float64
    out_arr = np.empty((N, C, Ho, Wo), dtype=dtype)
    idx_arr = np.empty((N, C, Ho, Wo), dtype=np.int32)
    if N * C * Ho * Wo == 0:
        return out_arr, idx_arr
    cdef floating[:, :, :, ::1] out = out_arr
    cdef int[:, :, :, ::1] idx = idx_arr
    cdef const floating* src = &x[0, 0, 0, 0]
    cdef floating* dst = &out[0, 0, 0, 0]
    cdef int* arg = &idx[0, 0, 0, 0]
    cdef const floating* p
    cdef Py_ssize_t plane, oy, ox, i, j, at, best_at, o
    cdef floating best, v
    cdef bint take
    if ph == 2 and pw == 2 and stride == 2:
        _max_pool_2x2(src, dst, arg, N * C, H, W, Ho, Wo)
        return out_arr, idx_arr
    with nogil:
        for plane in range(N * C):
            for oy in range(Ho):
                for ox in range(Wo):
                    at = oy * stride * W + ox * stride   # window corner, in-plane
                    p = src + plane * H * W + at
                    best = p[0]
                    best_at = at
                    for i in range(ph):
                        for j in range(pw):
                            v = p[i * W + j]
                            # branchless (random data defeats branch prediction):
                            # take v if larger, or if it is the first NaN
                            take = (v > best) | ((v != v) & (best == best))
                            best_at = (at + i * W + j) if take else best_at
                            best = v if take else best
                    o = (plane * Ho + oy) * Wo + ox
                    dst[o] = best
                    arg[o] = <int>best_at
    return out_arr, idx_arr


cdef extern from *:
    """
    /* One output row of 2x2/stride-2 max pooling, first maximum in row-major
       order (a, b / c, d): plain C selects the compiler turns into vector
       blends. Returns nonzero when the row holds a NaN (redone by the caller). */
    #define XPNN_POOL_ROW(T, NAME)                                               \
    static int NAME(const T *r0, const T *r1, T *dst, int *arg, Py_ssize_t Wo,   \
                    int at, int w) {                                              \
        int nan = 0;                                                              \
        for (Py_ssize_t ox = 0; ox < Wo; ox++) {                                  \
            T a = r0[2 * ox], b = r0[2 * ox + 1];                                 \
            T c = r1[2 * ox], d = r1[2 * ox + 1];                                 \
            int t1 = b > a, t2 = d > c;                                           \
            T m1 = t1 ? b : a, m2 = t2 ? d : c;                                   \
            int t = m2 > m1;                                                      \
            dst[ox] = t ? m2 : m1;                                                \
            arg[ox] = at + 2 * (int)ox + (t ? w + t2 : t1);                       \
            nan |= (a != a) | (b != b) | (c != c) | (d != d);                     \
        }                                                                         \
        return nan;                                                               \
    }
    XPNN_POOL_ROW(float, xpnn_pool_row_f)
    XPNN_POOL_ROW(double, xpnn_pool_row_d)
    """
    int xpnn_pool_row_f(const float* r0, const float* r1, float* dst, int* arg,
                        Py_ssize_t Wo, int at, int w) noexcept nogil
    int xpnn_pool_row_d(const double* r0, const double* r1, double* dst, int* arg,
                        Py_ssize_t Wo, int at, int w) noexcept nogil


cdef void _max_pool_2x2(const floating* src, floating* dst, int* arg, Py_ssize_t planes,
                        Py_ssize_t H, Py_ssize_t W, Py_ssize_t Ho, Py_ssize_t Wo) noexcept nogil:
    """2x2 windows, stride 2: each output row in one vectorised pass; a row
    holding a NaN is redone by the general rule, where the first NaN wins."""
    cdef Py_ssize_t plane, oy, ox, o
    cdef const floating* r0
    cdef const floating* r1
    cdef floating a, b, c
    cdef int k1, at, w = <int>W, nan
    for plane in range(planes):
        for oy in range(Ho):
            r0 = src + plane * H * W + 2 * oy * W
            r1 = r0 + W
            o = (plane * Ho + oy) * Wo
            at = <int>(2 * oy * W)
            if floating is float:
                nan = xpnn_pool_row_f(r0, r1, dst + o, arg + o, Wo, at, w)
            else:
                nan = xpnn_pool_row_d(r0, r1, dst + o, arg + o, Wo, at, w)
            if nan:   # rare
                for ox in range(Wo):
                    a = r0[2 * ox]
                    b = r0[2 * ox + 1]
                    c = r1[2 * ox]
                    if (a != a) | (b != b) | (c != c) | (r1[2 * ox + 1] != r1[2 * ox + 1]):
                        k1 = 0 if a != a else (1 if b != b else (w if c != c else w + 1))
                        dst[o + ox] = r0[2 * ox + k1]
                        arg[o + ox] = at + 2 * <int>ox + k1


def max_pool_backward(const floating[:, :, :, ::1] dout, const int[:, :, :, ::1] idx,
                      Py_ssize_t H, Py_ssize_t W):
    """Send each window's gradient to its recorded maximum; overlapping
    windows add up. Each (n, c) plane is independent. An argmax outside the
    plane is refused (checked as it is read, not in extra passes)."""
    cdef Py_ssize_t d
    for d in range(4):
        if dout.shape[d] != idx.shape[d]:
            raise ValueError("max_pool_backward: dout and the recorded argmax differ in shape")
    if H < 0 or W < 0:
        raise ValueError(f"max_pool_backward: a {H}x{W} plane does not exist")
    cdef Py_ssize_t N = dout.shape[0], C = dout.shape[1]
    cdef Py_ssize_t Ho = dout.shape[2], Wo = dout.shape[3]
    dtype = np.float32 if floating is float else np.float64
    dx_arr = np.zeros((N, C, H, W), dtype=dtype)
    if N * C * Ho * Wo == 0:
        return dx_arr
    if H * W == 0:
        raise ValueError(f"max_pool_backward: recorded argmax outside the {H}x{W} plane")
    cdef floating[:, :, :, ::1] dx = dx_arr
    cdef Py_ssize_t plane, n, c, oy, ox, HW = H * W
    cdef int k, bad = 0
    cdef floating* xrow
    cdef const floating* drow
    cdef const int* irow
    with nogil:
        for plane in range(N * C):
            n = plane // C
            c = plane % C
            xrow = &dx[n, c, 0, 0]          # the (H, W) plane is contiguous: dx is ours
            for oy in range(Ho):
                drow = &dout[n, c, oy, 0]
                irow = &idx[n, c, oy, 0]
                for ox in range(Wo):
                    k = irow[ox]
                    if k < 0 or k >= HW:
                        bad = 1
                        break
                    xrow[k] += drow[ox]
                if bad:
                    break
            if bad:
                break
    if bad:
        raise ValueError(f"max_pool_backward: recorded argmax outside the {H}x{W} plane")
    return dx_arr


def channel_affine(const floating[:, :, ::1] u, const floating[::1] a,
                   const floating[::1] b, const floating[:, :, ::1] v=None,
                   const floating[::1] k=None):
    """out[n, c, l] = a[c] * u[n, c, l] + b[c] (+ k[c] * v[n, c, l]) in one
    pass: batch norm's output and input gradient without temporaries.
    Plain contiguous loops, so the compiler vectorises them."""
    if a.shape[0] != u.shape[1] or b.shape[0] != u.shape[1] or (k is not None and (
            v is None or k.shape[0] != u.shape[1])) or (v is not None and (
            k is None or v.shape[0] != u.shape[0] or v.shape[1] != u.shape[1]
            or v.shape[2] != u.shape[2])):
        raise ValueError("channel_affine: coefficients must have one entry per channel and "
                         "v the shape of u")
    cdef Py_ssize_t N = u.shape[0], C = u.shape[1], L = u.shape[2], n, c, l, row
    dtype = np.float32 if floating is float else np.float64
    out_arr = np.empty((N, C, L), dtype=dtype)
    if N * C * L == 0:
        return out_arr
    cdef floating[:, :, ::1] out = out_arr
    cdef floating* po = &out[0, 0, 0]
    cdef const floating* pu = &u[0, 0, 0]
    cdef const floating* pv = NULL
    cdef const floating* pa = &a[0]
    cdef const floating* pb = &b[0]
    cdef const floating* pk = NULL
    cdef floating ac, bc, kc
    if v is not None:
        pv = &v[0, 0, 0]
        pk = &k[0]
    with nogil:
        if L == 1:  # (N, C): the channel is the contiguous axis
            for n in range(N):
                if pv == NULL:
                    for c in range(C):
                        po[n * C + c] = pa[c] * pu[n * C + c] + pb[c]
                else:
                    for c in range(C):
                        po[n * C + c] = pa[c] * pu[n * C + c] + pk[c] * pv[n * C + c] + pb[c]
        else:
            for n in range(N):
                for c in range(C):
                    ac = pa[c]
                    bc = pb[c]
                    row = (n * C + c) * L
                    if pv == NULL:
                        for l in range(row, row + L):
                            po[l] = ac * pu[l] + bc
                    else:
                        kc = pk[c]
                        for l in range(row, row + L):
                            po[l] = ac * pu[l] + kc * pv[l] + bc
    return out_arr


cdef extern from "direct_conv.h":
    int XPNN_FB
    int XPNN_SLACK
    void xpnn_direct_fwd_f(const float* x, const float* w, const float* b, float* out,
                           Py_ssize_t C, Py_ssize_t Hp, Py_ssize_t Wp, Py_ssize_t F,
                           Py_ssize_t KH, Py_ssize_t KW) noexcept nogil
    void xpnn_direct_fwd_d(const double* x, const double* w, const double* b, double* out,
                           Py_ssize_t C, Py_ssize_t Hp, Py_ssize_t Wp, Py_ssize_t F,
                           Py_ssize_t KH, Py_ssize_t KW) noexcept nogil
    void xpnn_direct_dw_f(const float* x, const float* d, float* dw, Py_ssize_t C,
                          Py_ssize_t Hp, Py_ssize_t Wp, Py_ssize_t F, Py_ssize_t KH,
                          Py_ssize_t KW) noexcept nogil
    void xpnn_direct_dw_d(const double* x, const double* d, double* dw, Py_ssize_t C,
                          Py_ssize_t Hp, Py_ssize_t Wp, Py_ssize_t F, Py_ssize_t KH,
                          Py_ssize_t KW) noexcept nogil

#: the direct kernels take filters in groups of DIRECT_FB (the weight matrix
#: padded with zero rows) and may read DIRECT_SLACK elements past the input
DIRECT_FB = XPNN_FB
DIRECT_SLACK = XPNN_SLACK
#: the widest filter the direct weight gradient handles
DIRECT_MAX_KW = 7


cdef _check_direct(str fn, Py_ssize_t size, Py_ssize_t need, Py_ssize_t N, Py_ssize_t C,
                   Py_ssize_t Hp, Py_ssize_t Wp, Py_ssize_t KH, Py_ssize_t KW,
                   Py_ssize_t n0, Py_ssize_t n1):
    if min(N, C, Hp, Wp) < 1 or KH < 1 or KW < 1 or KH > Hp or KW > Wp:
        raise ValueError(f"{fn}: {KH}x{KW} filters do not fit a padded input of shape "
                         f"{(N, C, Hp, Wp)}")
    if size < need:
        raise ValueError(f"{fn}: the flat input holds {size} elements, {need} needed")
    if not 0 <= n0 <= n1 <= N:
        raise ValueError(f"{fn}: samples [{n0}, {n1}) outside a batch of {N}")


def conv_direct_forward(const floating[::1] xflat, Py_ssize_t N, Py_ssize_t C, Py_ssize_t Hp,
                        Py_ssize_t Wp, const floating[:, ::1] w, const floating[::1] b,
                        floating[:, :, :, ::1] out, Py_ssize_t KH, Py_ssize_t KW,
                        Py_ssize_t n0, Py_ssize_t n1):
    """Stride-1 convolution of samples n0..n1-1 written into ``out`` (N, F,
    Hp-KH+1, Wp-KW+1). ``xflat`` holds the padded input (N, C, Hp, Wp) and
    DIRECT_SLACK more elements; ``w`` is (Fp, C*KH*KW), Fp >= F a multiple
    of DIRECT_FB, rows past F zero. Releases the GIL (callers run it on
    several threads, one range of samples each)."""
    _check_direct("conv_direct_forward", xflat.shape[0], N * C * Hp * Wp + XPNN_SLACK,
                  N, C, Hp, Wp, KH, KW, n0, n1)
    cdef Py_ssize_t F = out.shape[1], Ho = Hp - KH + 1, Wo = Wp - KW + 1, n
    if out.shape[0] != N or out.shape[2] != Ho or out.shape[3] != Wo or b.shape[0] != F or \
            w.shape[1] != C * KH * KW or w.shape[0] < F or w.shape[0] % XPNN_FB:
        raise ValueError(f"conv_direct_forward: out {tuple(out.shape)[:4]}, weights "
                         f"{tuple(w.shape)[:2]} and bias {b.shape[0]} do not match an input of "
                         f"shape {(N, C, Hp, Wp)} and {KH}x{KW} filters")
    if F == 0:
        return
    with nogil:
        for n in range(n0, n1):
            if floating is float:
                xpnn_direct_fwd_f(&xflat[n * C * Hp * Wp], &w[0, 0], &b[0], &out[n, 0, 0, 0],
                                  C, Hp, Wp, F, KH, KW)
            else:
                xpnn_direct_fwd_d(&xflat[n * C * Hp * Wp], &w[0, 0], &b[0], &out[n, 0, 0, 0],
                                  C, Hp, Wp, F, KH, KW)


def conv_direct_weight_grad(const floating[::1] xflat, Py_ssize_t N, Py_ssize_t C,
                            Py_ssize_t Hp, Py_ssize_t Wp, const floating[:, :, :, ::1] dout,
                            floating[:, ::1] dwp, Py_ssize_t KH, Py_ssize_t KW,
                            Py_ssize_t n0, Py_ssize_t n1):
    """Each sample's own weight gradient, ``dwp[n] = (F, C*KH*KW)`` flat, for
    n in n0..n1-1 (summed over the batch by the caller, in a fixed order).
    Stride 1, KW <= DIRECT_MAX_KW. Releases the GIL."""
    _check_direct("conv_direct_weight_grad", xflat.shape[0], N * C * Hp * Wp,
                  N, C, Hp, Wp, KH, KW, n0, n1)
    cdef Py_ssize_t F = dout.shape[1], Ho = Hp - KH + 1, Wo = Wp - KW + 1, n
    if KW > DIRECT_MAX_KW:
        raise ValueError(f"conv_direct_weight_grad: filters at most {DIRECT_MAX_KW} wide, "
                         f"got {KW}")
    if dout.shape[0] != N or dout.shape[2] != Ho or dout.shape[3] != Wo or \
            dwp.shape[0] != N or dwp.shape[1] != F * C * KH * KW:
        raise ValueError(f"conv_direct_weight_grad: dout {tuple(dout.shape)[:4]} and partial "
                         f"gradients {tuple(dwp.shape)[:2]} do not match an input of shape "
                         f"{(N, C, Hp, Wp)} and {KH}x{KW} filters")
    if F == 0:
        return
    with nogil:
        for n in range(n0, n1):
            if floating is float:
                xpnn_direct_dw_f(&xflat[n * C * Hp * Wp], &dout[n, 0, 0, 0], &dwp[n, 0],
                                 C, Hp, Wp, F, KH, KW)
            else:
                xpnn_direct_dw_d(&xflat[n * C * Hp * Wp], &dout[n, 0, 0, 0], &dwp[n, 0],
                                 C, Hp, Wp, F, KH, KW)


cdef extern from "step_gemm.h":
    int xpnn_sg_level() noexcept nogil
    int xpnn_sg_nr_f_v4, xpnn_sg_nr_f_v3, xpnn_sg_nr_f_v0
    int xpnn_sg_nr_d_v4, xpnn_sg_nr_d_v3, xpnn_sg_nr_d_v0
    void xpnn_sg_pack_f_v4(const float*, Py_ssize_t, Py_ssize_t, Py_ssize_t, int, float*,
                           Py_ssize_t, Py_ssize_t) noexcept nogil
    void xpnn_sg_pack_f_v3(const float*, Py_ssize_t, Py_ssize_t, Py_ssize_t, int, float*,
                           Py_ssize_t, Py_ssize_t) noexcept nogil
    void xpnn_sg_pack_f_v0(const float*, Py_ssize_t, Py_ssize_t, Py_ssize_t, int, float*,
                           Py_ssize_t, Py_ssize_t) noexcept nogil
    void xpnn_sg_pack_d_v4(const double*, Py_ssize_t, Py_ssize_t, Py_ssize_t, int, double*,
                           Py_ssize_t, Py_ssize_t) noexcept nogil
    void xpnn_sg_pack_d_v3(const double*, Py_ssize_t, Py_ssize_t, Py_ssize_t, int, double*,
                           Py_ssize_t, Py_ssize_t) noexcept nogil
    void xpnn_sg_pack_d_v0(const double*, Py_ssize_t, Py_ssize_t, Py_ssize_t, int, double*,
                           Py_ssize_t, Py_ssize_t) noexcept nogil
    void xpnn_sg_run_f_v4(const float*, Py_ssize_t, Py_ssize_t, Py_ssize_t, const float*,
                          Py_ssize_t, float*, Py_ssize_t, Py_ssize_t, Py_ssize_t) noexcept nogil
    void xpnn_sg_run_f_v3(const float*, Py_ssize_t, Py_ssize_t, Py_ssize_t, const float*,
                          Py_ssize_t, float*, Py_ssize_t, Py_ssize_t, Py_ssize_t) noexcept nogil
    void xpnn_sg_run_f_v0(const float*, Py_ssize_t, Py_ssize_t, Py_ssize_t, const float*,
                          Py_ssize_t, float*, Py_ssize_t, Py_ssize_t, Py_ssize_t) noexcept nogil
    void xpnn_sg_run_d_v4(const double*, Py_ssize_t, Py_ssize_t, Py_ssize_t, const double*,
                          Py_ssize_t, double*, Py_ssize_t, Py_ssize_t, Py_ssize_t) noexcept nogil
    void xpnn_sg_run_d_v3(const double*, Py_ssize_t, Py_ssize_t, Py_ssize_t, const double*,
                          Py_ssize_t, double*, Py_ssize_t, Py_ssize_t, Py_ssize_t) noexcept nogil
    void xpnn_sg_run_d_v0(const double*, Py_ssize_t, Py_ssize_t, Py_ssize_t, const double*,
                          Py_ssize_t, double*, Py_ssize_t, Py_ssize_t, Py_ssize_t) noexcept nogil

#: the step product's version this CPU runs: 4 (AVX-512), 3 (AVX2 with FMA)
#: or 0 (the baseline); a lower level may be asked for, never a higher one
STEP_LEVEL = xpnn_sg_level()


def step_panel_width(bint double, int level):
    """Columns per packed panel of the step product at ``level``."""
    _check_level(level)
    if double:
        return xpnn_sg_nr_d_v4 if level == 4 else xpnn_sg_nr_d_v3 if level == 3 else \
            xpnn_sg_nr_d_v0
    return xpnn_sg_nr_f_v4 if level == 4 else xpnn_sg_nr_f_v3 if level == 3 else xpnn_sg_nr_f_v0


cdef _check_level(int level):
    if level not in (0, 3, 4) or level > STEP_LEVEL:
        raise ValueError(f"step product level {level}: this CPU runs 0 to {STEP_LEVEL} "
                         f"(4 AVX-512, 3 AVX2/FMA, 0 the baseline)")


cdef Py_ssize_t _panels(str fn, Py_ssize_t K, Py_ssize_t N, Py_ssize_t size,
                        int nr) except -1:
    """The panels of B (K, N); the packed buffer must hold them all."""
    cdef Py_ssize_t P = (N + nr - 1) // nr
    if size < P * K * nr:
        raise ValueError(f"{fn}: the packed buffer holds {size} elements, {P * K * nr} needed "
                         f"for B ({K}, {N})")
    return P


ctypedef void (*_pool_job_t)(int, void*, int) noexcept nogil
ctypedef void (*_pool_run_t)(int, _pool_job_t, int, size_t, void*, int) noexcept nogil

cdef struct _StepJob:
    const void* a
    const void* w
    const void* bp
    void* c
    Py_ssize_t M, K, N, ldw
    Py_ssize_t q0, q1
    int level, dbl, pack, trans


cdef void _step_job(int thread_num, void* data, int arg) noexcept nogil:
    """One job of the pool: pack or multiply panels j.q0..j.q1-1."""
    cdef _StepJob* j = <_StepJob*>data
    cdef const float* wf = <const float*>j.w
    cdef const double* wd = <const double*>j.w
    cdef const float* af = <const float*>j.a
    cdef const double* ad = <const double*>j.a
    cdef float* bf = <float*>j.bp
    cdef double* bd = <double*>j.bp
    cdef float* cf = <float*>j.c
    cdef double* cd = <double*>j.c
    if j.q0 >= j.q1:
        return
    if j.pack and j.dbl:
        if j.level == 4:
            xpnn_sg_pack_d_v4(wd, j.K, j.N, j.ldw, j.trans, bd, j.q0, j.q1)
        elif j.level == 3:
            xpnn_sg_pack_d_v3(wd, j.K, j.N, j.ldw, j.trans, bd, j.q0, j.q1)
        else:
            xpnn_sg_pack_d_v0(wd, j.K, j.N, j.ldw, j.trans, bd, j.q0, j.q1)
    elif j.pack:
        if j.level == 4:
            xpnn_sg_pack_f_v4(wf, j.K, j.N, j.ldw, j.trans, bf, j.q0, j.q1)
        elif j.level == 3:
            xpnn_sg_pack_f_v3(wf, j.K, j.N, j.ldw, j.trans, bf, j.q0, j.q1)
        else:
            xpnn_sg_pack_f_v0(wf, j.K, j.N, j.ldw, j.trans, bf, j.q0, j.q1)
    elif j.dbl:
        if j.level == 4:
            xpnn_sg_run_d_v4(ad, j.M, j.K, j.K, bd, j.N, cd, j.N, j.q0, j.q1)
        elif j.level == 3:
            xpnn_sg_run_d_v3(ad, j.M, j.K, j.K, bd, j.N, cd, j.N, j.q0, j.q1)
        else:
            xpnn_sg_run_d_v0(ad, j.M, j.K, j.K, bd, j.N, cd, j.N, j.q0, j.q1)
    else:
        if j.level == 4:
            xpnn_sg_run_f_v4(af, j.M, j.K, j.K, bf, j.N, cf, j.N, j.q0, j.q1)
        elif j.level == 3:
            xpnn_sg_run_f_v3(af, j.M, j.K, j.K, bf, j.N, cf, j.N, j.q0, j.q1)
        else:
            xpnn_sg_run_f_v0(af, j.M, j.K, j.K, bf, j.N, cf, j.N, j.q0, j.q1)


cdef _step_jobs(_StepJob proto, Py_ssize_t panels, int threads, size_t pool):
    """Split panels [0, panels) over ``threads`` jobs and run them: job 0 on
    this thread, the others on the pool at address ``pool`` (blas_pool.h's
    run function; 0: all jobs here, one after another)."""
    cdef int n = max(1, min(threads, panels)), i
    cdef _StepJob* jobs = <_StepJob*>PyMem_Malloc(n * sizeof(_StepJob))
    if jobs == NULL:
        raise MemoryError()
    try:
        for i in range(n):
            jobs[i] = proto
            jobs[i].q0 = panels * i // n
            jobs[i].q1 = panels * (i + 1) // n
        with nogil:
            if pool != 0 and n > 1:
                (<_pool_run_t>pool)(1, _step_job, n, sizeof(_StepJob), jobs, 0)
            else:
                for i in range(n):
                    _step_job(i, &jobs[i], 0)
    finally:
        PyMem_Free(jobs)


def step_pack(const floating[:, ::1] w, bint trans, floating[::1] bp, int level,
                  int threads, size_t pool):
    """Pack B for :func:`step_product` at ``level``: B = w (K, N), or w.T
    when ``trans`` (w (N, K)). ``bp`` holds ceil(N / NR) * K * NR elements,
    NR = :func:`step_panel_width`. The panels are split over ``threads``
    threads of the pool at address ``pool`` (blas_pool.h's run function; 0:
    this thread only). Releases the GIL."""
    cdef bint dbl = floating is double
    nr = step_panel_width(dbl, level)
    cdef _StepJob j
    j.K = w.shape[1] if trans else w.shape[0]
    j.N = w.shape[0] if trans else w.shape[1]
    cdef Py_ssize_t P = _panels("step_pack", j.K, j.N, bp.shape[0], nr)
    if P == 0 or j.K == 0:
        return
    j.a = NULL
    j.c = NULL
    j.w = &w[0, 0]
    j.bp = &bp[0]
    j.M = 0
    j.ldw = w.shape[1]
    j.level, j.dbl, j.pack, j.trans = level, dbl, 1, trans
    _step_jobs(j, P, threads, pool)


def step_product(const floating[:, ::1] a, const floating[::1] bp, floating[:, ::1] c,
                     int level, int threads, size_t pool):
    """c (M, N) = a (M, K) @ B, B packed by :func:`step_pack` at the same
    ``level``; the panels split over ``threads`` threads of the pool at
    ``pool`` as there. Each sum runs over k in order: the result does not
    depend on the split. Releases the GIL."""
    cdef bint dbl = floating is double
    nr = step_panel_width(dbl, level)
    cdef _StepJob j
    j.M, j.K, j.N = a.shape[0], a.shape[1], c.shape[1]
    if c.shape[0] != j.M:
        raise ValueError(f"step_product: c has {c.shape[0]} rows, a {j.M}")
    cdef Py_ssize_t P = _panels("step_product", j.K, j.N, bp.shape[0], nr)
    if j.M == 0 or P == 0:
        return
    if j.K == 0:
        c[:, :] = 0
        return
    j.a = &a[0, 0]
    j.bp = &bp[0]
    j.c = &c[0, 0]
    j.w = NULL
    j.ldw = 0
    j.level, j.dbl, j.pack, j.trans = level, dbl, 0, 0
    _step_jobs(j, P, threads, pool)


cdef extern from "step_gates.h":
    void xpnn_lstm_fwd(const float* xa, Py_ssize_t lxa, const float* hw, Py_ssize_t lhw,
                       const float* cp, Py_ssize_t lcp, Py_ssize_t N, Py_ssize_t H,
                       float* h, float* c, float* gi, float* gf, float* go, float* gg,
                       float* tc) noexcept nogil
    void xpnn_lstm_bwd(const float* dh, Py_ssize_t ldh, const float* dhn, Py_ssize_t ldhn,
                       const float* dcn, Py_ssize_t ldcn, const float* cp, Py_ssize_t lcp,
                       const float* gi, const float* gf, const float* go, const float* gg,
                       const float* tc, Py_ssize_t lg, Py_ssize_t N, Py_ssize_t H,
                       float* da, float* dcp) noexcept nogil
    void xpnn_rnn_fwd(const float* xa, Py_ssize_t lxa, const float* hw, Py_ssize_t lhw,
                      Py_ssize_t N, Py_ssize_t H, float* h) noexcept nogil
    void xpnn_rnn_bwd(const float* dh, Py_ssize_t ldh, const float* dn, Py_ssize_t ldn,
                      const float* hs, Py_ssize_t lh, Py_ssize_t N, Py_ssize_t H,
                      float* da) noexcept nogil


cdef Py_ssize_t _row_stride(str fn, str name, const float[:, :] a, Py_ssize_t N,
                            Py_ssize_t H) except -1:
    """The row stride (in elements) of a float32 (N, H) array with unit
    column stride."""
    if a.shape[0] != N or a.shape[1] != H:
        raise ValueError(f"{fn}: {name} has shape {(a.shape[0], a.shape[1])}, expected "
                         f"{(N, H)}")
    if (H > 1 and a.strides[1] != sizeof(float)) or a.strides[0] % sizeof(float):
        raise ValueError(f"{fn}: {name} must have rows of unit stride (strides "
                         f"{(a.strides[0], a.strides[1])})")
    return a.strides[0] // sizeof(float)


def lstm_gates_forward(const float[:, :] xa_t, const float[:, :] hw, const float[:, :] c_prev):
    """(h, c, i, f, o, g, tanh(c)) of an LSTM step, each (N, H) float32, from
    its input part xa_t (N, 4H), hw = h_prev @ Wh (N, 4H) and c_prev (N, H),
    in one pass (see step_gates.h). Releases the GIL."""
    cdef Py_ssize_t N = c_prev.shape[0], H = c_prev.shape[1]
    cdef Py_ssize_t lxa = _row_stride("lstm_gates_forward", "xa_t", xa_t, N, 4 * H)
    cdef Py_ssize_t lhw = _row_stride("lstm_gates_forward", "hw", hw, N, 4 * H)
    cdef Py_ssize_t lcp = _row_stride("lstm_gates_forward", "c_prev", c_prev, N, H)
    out_arr = np.empty((7, N, H), dtype=np.float32)
    cdef float[:, :, ::1] out = out_arr
    if N and H:
        with nogil:
            xpnn_lstm_fwd(&xa_t[0, 0], lxa, &hw[0, 0], lhw, &c_prev[0, 0], lcp, N, H,
                          &out[0, 0, 0], &out[1, 0, 0], &out[2, 0, 0], &out[3, 0, 0],
                          &out[4, 0, 0], &out[5, 0, 0], &out[6, 0, 0])
    return tuple(out_arr)


def lstm_gates_backward(const float[:, :] dh_t, const float[:, :] dh_next,
                        const float[:, :] dc_next, const float[:, :] c_prev,
                        const float[:, :] i, const float[:, :] f, const float[:, :] o,
                        const float[:, :] g, const float[:, :] tc):
    """(da (N, 4H), dc_prev (N, H)) of an LSTM step from the upstream dh_t,
    the gradients from the step after and the forward's values (the five
    gates sharing one row stride), in one pass. Releases the GIL."""
    cdef Py_ssize_t N = c_prev.shape[0], H = c_prev.shape[1]
    cdef str fn = "lstm_gates_backward"
    cdef Py_ssize_t ldh = _row_stride(fn, "dh_t", dh_t, N, H)
    cdef Py_ssize_t ldhn = _row_stride(fn, "dh_next", dh_next, N, H)
    cdef Py_ssize_t ldcn = _row_stride(fn, "dc_next", dc_next, N, H)
    cdef Py_ssize_t lcp = _row_stride(fn, "c_prev", c_prev, N, H)
    cdef Py_ssize_t lg = _row_stride(fn, "i", i, N, H)
    for name, gate in (("f", f), ("o", o), ("g", g), ("tc", tc)):
        if _row_stride(fn, name, gate, N, H) != lg:
            raise ValueError(f"{fn}: the gates must share one row stride")
    da_arr = np.empty((N, 4 * H), dtype=np.float32)
    dcp_arr = np.empty((N, H), dtype=np.float32)
    cdef float[:, ::1] da = da_arr
    cdef float[:, ::1] dcp = dcp_arr
    if N and H:
        with nogil:
            xpnn_lstm_bwd(&dh_t[0, 0], ldh, &dh_next[0, 0], ldhn, &dc_next[0, 0], ldcn,
                          &c_prev[0, 0], lcp, &i[0, 0], &f[0, 0], &o[0, 0], &g[0, 0],
                          &tc[0, 0], lg, N, H, &da[0, 0], &dcp[0, 0])
    return da_arr, dcp_arr


def rnn_gates_forward(const float[:, :] xa_t, const float[:, :] hw):
    """tanh(xa_t + hw) (N, H) float32 in one pass. Releases the GIL."""
    cdef Py_ssize_t N = hw.shape[0], H = hw.shape[1]
    cdef Py_ssize_t lxa = _row_stride("rnn_gates_forward", "xa_t", xa_t, N, H)
    cdef Py_ssize_t lhw = _row_stride("rnn_gates_forward", "hw", hw, N, H)
    h_arr = np.empty((N, H), dtype=np.float32)
    cdef float[:, ::1] h = h_arr
    if N and H:
        with nogil:
            xpnn_rnn_fwd(&xa_t[0, 0], lxa, &hw[0, 0], lhw, N, H, &h[0, 0])
    return h_arr


def rnn_gates_backward(const float[:, :] dh_t, const float[:, :] dnext, const float[:, :] h_t):
    """(dh_t + dnext) * (1 - h_t**2) (N, H) float32 in one pass. Releases the
    GIL."""
    cdef Py_ssize_t N = h_t.shape[0], H = h_t.shape[1]
    cdef Py_ssize_t ldh = _row_stride("rnn_gates_backward", "dh_t", dh_t, N, H)
    cdef Py_ssize_t ldn = _row_stride("rnn_gates_backward", "dnext", dnext, N, H)
    cdef Py_ssize_t lh = _row_stride("rnn_gates_backward", "h_t", h_t, N, H)
    da_arr = np.empty((N, H), dtype=np.float32)
    cdef float[:, ::1] da = da_arr
    if N and H:
        with nogil:
            xpnn_rnn_bwd(&dh_t[0, 0], ldh, &dnext[0, 0], ldn, &h_t[0, 0], lh, N, H, &da[0, 0])
    return da_arr
