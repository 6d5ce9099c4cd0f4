"""CUDA kernels for the CuPy backend, compiled on first use.

- im2col: one thread per column element.
- col2im in gather form: one thread per input pixel sums the column entries
  that read it, so there are no atomics and the result is deterministic.
- max pooling: the forward records each window's first maximum as a flat
  in-plane index; the backward is again a gather, one thread per input pixel
  over the windows that can contain it.

CuPy is reached through :mod:`xpnn.backend` (the one module that imports it).
"""
from __future__ import annotations

from .. import backend

_kernels: dict = {}

_IM2COL = r"""
long long P = (long long)Ho * Wo, NP = (long long)N * P;
long long row = i / NP, q = i % NP;
long long n = q / P, p = q % P;
int oy = p / Wo, ox = p % Wo;
int c = row / (kh * kw), ij = row % (kh * kw), ki = ij / kw, kj = ij % kw;
col = xpad[((n * C + c) * Hp + oy * s + ki) * Wp + ox * s + kj];
"""

_COL2IM = r"""
long long P = (long long)Ho * Wo, NP = (long long)N * P;
int x = i % Wp, y = (i / Wp) % Hp;
long long c = (i / ((long long)Wp * Hp)) % C, n = i / ((long long)Wp * Hp * C);
T acc = 0;
for (int ki = 0; ki < kh; ki++) {
    int ty = y - ki;
    if (ty < 0 || ty % s) continue;
    int oy = ty / s;
    if (oy >= Ho) continue;
    for (int kj = 0; kj < kw; kj++) {
        int tx = x - kj;
        if (tx < 0 || tx % s) continue;
        int ox = tx / s;
        if (ox >= Wo) continue;
        long long row = (c * kh + ki) * kw + kj;
        acc += cols[row * NP + n * P + (long long)oy * Wo + ox];
    }
}
dx = acc;
"""

_POOL_FWD = r"""
int ox = i % Wo, oy = (i / Wo) % Ho;
long long base = (i / ((long long)Wo * Ho)) * H * W;
int y0 = oy * s, x0 = ox * s;
int best_at = y0 * W + x0;
T best = x[base + best_at];
for (int ki = 0; ki < ph; ki++) {
    for (int kj = 0; kj < pw; kj++) {
        int at = (y0 + ki) * W + x0 + kj;
        T v = x[base + at];
        if (v > best || (v != v && best == best)) { best = v; best_at = at; }
    }
}
out = best;
idx = best_at;
"""

_POOL_BWD = r"""
int xx = i % W, y = (i / W) % H;
long long plane = i / ((long long)W * H);
int me = y * W + xx;
int oy_lo = y - ph + 1 <= 0 ? 0 : (y - ph + s) / s;
int ox_lo = xx - pw + 1 <= 0 ? 0 : (xx - pw + s) / s;
int oy_hi = min(y / s, Ho - 1), ox_hi = min(xx / s, Wo - 1);
T acc = 0;
for (int oy = oy_lo; oy <= oy_hi; oy++) {
    for (int ox = ox_lo; ox <= ox_hi; ox++) {
        long long o = (plane * Ho + oy) * Wo + ox;
        if (idx[o] == me) acc += dout[o];
    }
}
dx = acc;
"""


def _kernel(name):
    if name not in _kernels:
        cp = backend.cupy_module()
        geo = "int32 kh, int32 kw, int32 s, int32 Ho, int32 Wo"
        specs = {
            "im2col": (f"raw T xpad, int32 N, int32 C, int32 Hp, int32 Wp, {geo}", "T col",
                       _IM2COL),
            "col2im": (f"raw T cols, int32 N, int32 C, int32 Hp, int32 Wp, {geo}", "T dx",
                       _COL2IM),
            "pool_fwd": ("raw T x, int32 H, int32 W, int32 ph, int32 pw, int32 s, int32 Ho, "
                         "int32 Wo", "T out, int32 idx", _POOL_FWD),
            "pool_bwd": ("raw T dout, raw int32 idx, int32 H, int32 W, int32 ph, int32 pw, "
                         "int32 s, int32 Ho, int32 Wo", "T dx", _POOL_BWD),
        }
        ins, outs, body = specs[name]
        _kernels[name] = cp.ElementwiseKernel(ins, outs, body, f"xpnn_{name}")
    return _kernels[name]


def im2col(xpad, kh, kw, stride, Ho, Wo):
    cp = backend.cupy_module()
    N, C, Hp, Wp = xpad.shape
    cols = cp.empty((C * kh * kw, N * Ho * Wo), dtype=xpad.dtype)
    _kernel("im2col")(cp.ascontiguousarray(xpad), N, C, Hp, Wp, kh, kw, stride, Ho, Wo, cols)
    return cols


def col2im(dcols, N, C, Hp, Wp, kh, kw, stride, Ho, Wo):
    cp = backend.cupy_module()
    dx = cp.empty((N, C, Hp, Wp), dtype=dcols.dtype)
    _kernel("col2im")(cp.ascontiguousarray(dcols), N, C, Hp, Wp, kh, kw, stride, Ho, Wo, dx)
    return dx


def max_pool_forward(x, ph, pw, stride, Ho, Wo):
    cp = backend.cupy_module()
    N, C, H, W = x.shape
    out = cp.empty((N, C, Ho, Wo), dtype=x.dtype)
    idx = cp.empty((N, C, Ho, Wo), dtype=cp.int32)
    _kernel("pool_fwd")(cp.ascontiguousarray(x), H, W, ph, pw, stride, Ho, Wo, out, idx)
    return out, idx


def max_pool_backward(dout, idx, H, W, ph, pw, stride):
    cp = backend.cupy_module()
    N, C, Ho, Wo = dout.shape
    dx = cp.empty((N, C, H, W), dtype=dout.dtype)
    _kernel("pool_bwd")(cp.ascontiguousarray(dout), idx, H, W, ph, pw, stride, Ho, Wo, dx)
    return dx
