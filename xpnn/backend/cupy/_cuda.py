"""CUDA kernels for the CuPy backend, compiled on first use.

- im2col (CONV_ELEMENTWISE): one thread per column element, reading the
  unpadded input (zeros outside it).
- col2im in gather form: one thread per input pixel sums the column entries
  that read it, so there are no atomics and the result is deterministic.
- max pooling: the forward records each window's first maximum as a flat
  in-plane index; the backward is again a gather, one thread per input pixel
  over the windows that can contain it.

CuPy is reached through :func:`._load.cupy_module`.
"""
from __future__ import annotations

from ._load import cupy_module

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


# The convolution as the GPU runs it with fused kernels: im2col reads the
# unpadded input (no padded copy), the matmul's (F, N*P) result becomes the
# N, C, H, W output with its bias in one pass, and the gather-form col2im
# writes the unpadded input gradient directly.
CONV_ELEMENTWISE = {
    "im2col_pad": ("raw T x, int32 N, int32 C, int32 H, int32 W, int32 kh, int32 kw, "
                   "int32 s, int32 pad, int32 Ho, int32 Wo", "T col",
                   r"""
long long P = (long long)Ho * Wo, NP = (long long)N * P;
long long row = i / NP, q = i % NP;
long long n = q / P, p = q % P;
int oy = p / Wo, ox = p % Wo;
int c = row / (kh * kw), ij = row % (kh * kw), ki = ij / kw, kj = ij % kw;
int y = oy * s + ki - pad, xx = ox * s + kj - pad;
col = (y >= 0 && y < H && xx >= 0 && xx < W) ? x[((n * C + c) * H + y) * W + xx] : (T)0;
"""),
    "col2im_unpad": ("raw T cols, int32 N, int32 C, int32 H, int32 W, int32 kh, int32 kw, "
                     "int32 s, int32 pad, int32 Ho, int32 Wo", "T dx",
                     r"""
long long P = (long long)Ho * Wo, NP = (long long)N * P;
int x = i % W + pad, y = (i / W) % H + pad;
long long c = (i / ((long long)W * H)) % C, n = i / ((long long)W * H * C);
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
"""),
    "bias_nchw": ("raw T out2, raw T b, int32 N, int32 F, int32 P", "T out",
                  r"""
long long p = i % P, f = (i / P) % F, n = i / ((long long)P * F);
out = out2[(f * N + n) * (long long)P + p] + b[f];
"""),
}


_POOL_GEOMETRY = "int32 H, int32 W, int32 ph, int32 pw, int32 s, int32 Ho, int32 Wo"

#: max pooling, and max pooling followed by a ReLU (ReLU -> pool, which models
#: and sandwiches run as pool -> ReLU): the ReLU is NumPy's ``maximum(v, 0)`` (NaN
#: and -0.0 kept); its backward passes dout where the output is > 0, which
#: is exactly where the pooled value was
POOL_SPECS = {
    "pool_fwd": (f"raw T x, {_POOL_GEOMETRY}", "T out, int32 idx", _POOL_FWD),
    "pool_relu_fwd": (f"raw T x, {_POOL_GEOMETRY}", "T out, int32 idx",
                      _POOL_FWD.replace("out = best;",
                                        "out = (best >= (T)0 || best != best) ? best : (T)0;")),
    "pool_bwd": (f"raw T dout, raw int32 idx, {_POOL_GEOMETRY}", "T dx", _POOL_BWD),
    "pool_relu_bwd": (f"raw T dout, raw int32 idx, raw T out, {_POOL_GEOMETRY}", "T dx",
                      _POOL_BWD.replace("if (idx[o] == me)",
                                        "if (idx[o] == me && out[o] > (T)0)")),
}


def max_pool_forward(x, ph, pw, stride, Ho, Wo, relu=False, kernel=None, xp=None):
    """(out, flat in-plane argmax); with ``relu``, out is ReLU(max pool).
    ``kernel`` and ``xp`` stand in for the CUDA kernels and CuPy (host tests)."""
    kernel, cp = kernel or _get, xp or cupy_module()
    N, C, H, W = x.shape
    out = cp.empty((N, C, Ho, Wo), dtype=x.dtype)
    idx = cp.empty((N, C, Ho, Wo), dtype=cp.int32)
    kernel("pool_relu_fwd" if relu else "pool_fwd")(cp.ascontiguousarray(x), H, W, ph, pw,
                                                    stride, Ho, Wo, out, idx)
    return out, idx


def max_pool_backward(dout, idx, H, W, ph, pw, stride, relu_out=None, kernel=None, xp=None):
    """The input gradient from the recorded argmax; with ``relu_out`` (the
    forward's ReLU(max pool) output) the ReLU's backward too, in the same
    kernel."""
    kernel, cp = kernel or _get, xp or cupy_module()
    N, C, Ho, Wo = dout.shape
    dx = cp.empty((N, C, H, W), dtype=dout.dtype)
    d = cp.ascontiguousarray(dout)
    if relu_out is None:
        kernel("pool_bwd")(d, idx, H, W, ph, pw, stride, Ho, Wo, dx)
    else:
        kernel("pool_relu_bwd")(d, idx, cp.ascontiguousarray(relu_out), H, W, ph, pw, stride,
                                Ho, Wo, dx)
    return dx


# ------------------------------------------------------------------ batch norm
# Training-mode batch norm in 5 launches forward and 3 backward (the array
# expressions take about 20 each). x is viewed as (N, C, L); statistics are
# per channel, reduced over N and L. The centred input is never stored: the
# backward recomputes x - mean inside its kernels. The expressions follow
# the array path's operation order (only the order of the sums differs).
#
# A per-channel sum runs in two passes, both elementwise kernels: S threads
# per channel each add every S-th element of the channel ("partials"), then
# one thread per channel adds its S partials in order, inside the kernel
# that uses the sum. The order of every addition is fixed, so results repeat
# exactly (no atomics); and with S chosen to fill the GPU, the first pass
# runs at memory speed. (CuPy's ReductionKernel over axes (0, 2) with a per-
# channel operand ran ~50x slower: 3.4 ms for a 64-channel 32x32 batch of
# 256 on an H100.) Where L >= 32 a channel's S threads are adjacent and read
# adjacent elements; else the C channels' threads are adjacent (each reads
# a run of channels of one sample).

#: partials for x of (N, C, L): thread i -> (channel c, part p); adds, into
#: each accumulator, its expression over elements p, p + S, ... of channel c
_PARTIAL = r"""
long long c, p;
if (cmajor) { c = i / S; p = i % S; } else { p = i / C; c = i % C; }
long long NL = N * L;
@init@
for (long long e = p; e < NL; e += S) {
    long long n = e / L;
    long long at = (n * C + c) * L + (e - n * L);
    @add@
}
@store@
"""

#: the partials of channel i added in order, into acc_<name>
_SUM_PARTS = r"""
T acc_@name@ = 0;
for (long long k = 0; k < S; k++) acc_@name@ += @name@[cmajor ? i * S + k : k * C + i];
"""

_PART_ARGS = "int64 N, int32 C, int64 L, int64 S, int32 cmajor"
_SUM_ARGS = "int64 S, int32 C, int32 cmajor"


def _fill(template, **parts):  # pragma: no mutate block (runs at import)
    for key, text in parts.items():
        template = template.replace(f"@{key}@", text)
    return template


def _sum_parts(*names):  # pragma: no mutate block (runs at import)
    return "".join(_fill(_SUM_PARTS, name=n) for n in names)


#: elementwise kernels (inputs, outputs, body), per channel or per element
BN_ELEMENTWISE = {
    # forward, pass 1 twice: sums of x, then of squared deviations
    "bn_part_sum": (f"raw T x, {_PART_ARGS}", "T part",
                    _fill(_PARTIAL, init="T acc = 0;", add="acc += x[at];",
                          store="part = acc;")),
    "bn_part_sqdev": (f"raw T x, raw T mean, {_PART_ARGS}", "T part",
                      _fill(_PARTIAL, init="T acc = 0; T m = mean[c];",
                            add="T d = x[at] - m; acc += d * d;", store="part = acc;")),
    # per channel: the mean
    "bn_mean": (f"raw T part, {_SUM_ARGS}, float64 M", "T mean",
                _sum_parts("part") + "mean = acc_part / (T)M;"),
    # per channel: variance, 1/std, scale and the running statistics
    "bn_stats": (f"raw T part, {_SUM_ARGS}, T mean, T gamma, T rm, T rv, float64 M, "
                 "float64 eps, float64 mom, float64 one_minus_mom",
                 "T var, T inv, T scale, T rm_out, T rv_out",
                 _sum_parts("part") +
                 "T v = acc_part / (T)M;\n"
                 "T s = (T)1 / sqrt(v + (T)eps);\n"
                 "var = v;\n"
                 "inv = s;\n"
                 "scale = gamma * s;\n"
                 "rm_out = (T)mom * rm + (T)one_minus_mom * mean;\n"
                 "rv_out = (T)mom * rv + (T)one_minus_mom * v;"),
    # per element: the normalised, scaled and shifted output
    "bn_apply": ("T x, T m, T scale, T beta", "T out",
                 "out = (x - m) * scale + beta;"),
    # backward, pass 1: sums of dout and of dout * (x - mean), in one read
    "bn_part_back": (f"raw T d, raw T x, raw T mean, {_PART_ARGS}", "T part_d, T part_r",
                     _fill(_PARTIAL, init="T acc_d = 0, acc_r = 0; T m = mean[c];",
                           add="T g = d[at]; acc_d += g; acc_r += g * (x[at] - m);",
                           store="part_d = acc_d; part_r = acc_r;")),
    # per channel: dgamma, dbeta and the input gradient's coefficients
    "bn_coef": (f"raw T part_d, raw T part_r, {_SUM_ARGS}, T gamma, T inv, float64 M",
                "T dgamma, T dbeta, T gi, T bco, T kco",
                _sum_parts("part_d", "part_r") +
                "T dg = acc_part_r * inv;\n"
                "T g = gamma * inv;\n"
                "dgamma = dg;\n"
                "dbeta = acc_part_d;\n"
                "gi = g;\n"
                "bco = -g * acc_part_d / (T)M;\n"
                "kco = -g * inv * dg / (T)M;"),
    # per element: the input gradient
    "bn_dx": ("T d, T x, T m, T gi, T bco, T kco", "T dx",
              "dx = d * gi + bco + (x - m) * kco;"),
    # softmax cross-entropy, per row (one thread a row): max, log-sum-exp and
    # the label's log-probability; labels must be in range (checked before)
    "softmax_rows": ("raw T x, raw S y, int32 C", "T m_row, T lse_row, T lp_row",
                     "long long base = i * (long long)C;\n"
                     "T m = x[base];\n"
                     "for (int j = 1; j < C; j++) { T v = x[base + j]; m = v > m ? v : m; }\n"
                     "T acc = 0;\n"
                     "for (int j = 0; j < C; j++) acc += exp(x[base + j] - m);\n"
                     "T L = log(acc);\n"
                     "m_row = m;\n"
                     "lse_row = L;\n"
                     "lp_row = x[base + y[i]] - m - L;"),
    # ... and its gradient, per element, the row values broadcast
    "softmax_dx": ("T x, T m, T lse, S y, int32 C, float64 N", "T dx",
                   "T hot = (long long)(i % C) == (long long)y ? (T)1 : (T)0;\n"
                   "dx = (exp(x - m - lse) - hot) / (T)N;"),
    # ReLU's backward in one pass (the array form is a compare and a select)
    "relu_bwd": ("T d, T x", "T dx", "dx = x > (T)0 ? d : (T)0;"),
}

#: one launch per recurrent step each way (besides the step's product h @ Wh
#: or da @ Wh.T): the gates from the step's input part xa (N, T, k*H) at step
#: t and hw = h @ Wh; the backward from the upstream dh (N, T, H) at step t.
#: Sigmoid as 0.5 * tanh(a / 2) + 0.5, as the portable path computes it.
_STEP = "int32 H, int32 Tn, int32 t"
RNN_ELEMENTWISE = {
    # per (n, j) of N x H: a step of the tanh RNN
    "rnn_fwd": (f"raw T xa, T hw, {_STEP}", "T h",
                "long long n = i / H, j = i % H;\n"
                "h = tanh(xa[(n * Tn + t) * (long long)H + j] + hw);"),
    # per (n, j): the pre-activation gradient (dh_t + dnext) * (1 - h_t^2)
    "rnn_bwd": (f"raw T dh, T dnext, raw T out, {_STEP}", "T da",
                "long long n = i / H, j = i % H;\n"
                "long long at = (n * Tn + t) * (long long)H + j;\n"
                "T h = out[at];\n"
                "da = (dh[at] + dnext) * ((T)1 - h * h);"),
    # per (n, j) of N x H: an LSTM step's gates (i, f, o, g), cell and output
    "lstm_fwd": (f"raw T xa, raw T hw, T c_prev, {_STEP}",
                 "T h, T c_next, T gi, T gf, T go, T gg, T tc",
                 "long long n = i / H, j = i % H;\n"
                 "long long ax = (n * Tn + t) * 4LL * H + j, ah = n * 4LL * H + j;\n"
                 "T si = (T)0.5 * tanh((T)0.5 * (xa[ax] + hw[ah])) + (T)0.5;\n"
                 "T sf = (T)0.5 * tanh((T)0.5 * (xa[ax + H] + hw[ah + H])) + (T)0.5;\n"
                 "T so = (T)0.5 * tanh((T)0.5 * (xa[ax + 2 * H] + hw[ah + 2 * H])) + (T)0.5;\n"
                 "T sg = tanh(xa[ax + 3 * H] + hw[ah + 3 * H]);\n"
                 "T c = sf * c_prev + si * sg;\n"
                 "T t_c = tanh(c);\n"
                 "gi = si; gf = sf; go = so; gg = sg; tc = t_c; c_next = c;\n"
                 "h = so * t_c;"),
    # per (n, q*H + j) of N x 4H: gate q's pre-activation gradient; the
    # q = 0 threads also write dc * f, the next (earlier) step's dc_next.
    # dc_next has rows of ldc values: H, or 4H when it is the previous launch's dcf
    "lstm_bwd": (f"raw T dh, raw T dh_next, raw T dc_next, int32 ldc, raw T c_prev, "
                 f"raw T gi, raw T gf, raw T go, raw T gg, raw T tc, {_STEP}",
                 "T da, T dcf",
                 "long long n = i / (4LL * H), k = i % (4LL * H);\n"
                 "int q = (int)(k / H); long long j = k % H, at = n * (long long)H + j;\n"
                 "T dht = dh[(n * Tn + t) * (long long)H + j] + dh_next[at];\n"
                 "T vi = gi[at], vf = gf[at], vo = go[at], vg = gg[at], vt = tc[at];\n"
                 "T dc = dc_next[n * (long long)ldc + j] + dht * vo * ((T)1 - vt * vt);\n"
                 "T r;\n"
                 "if (q == 0) r = dc * vg * vi * ((T)1 - vi);\n"
                 "else if (q == 1) r = dc * c_prev[at] * vf * ((T)1 - vf);\n"
                 "else if (q == 2) r = dht * vt * vo * ((T)1 - vo);\n"
                 "else r = dc * vi * ((T)1 - vg * vg);\n"
                 "da = r;\n"
                 "dcf = q == 0 ? dc * vf : (T)0;"),
}

_compiled: dict = {}


def _get(name):
    """The compiled CUDA kernel ``name`` (of any table here), built once."""
    if name not in _compiled:
        cp = cupy_module()
        if name in BN_ELEMENTWISE or name in RNN_ELEMENTWISE:
            ins, outs, body = {**BN_ELEMENTWISE, **RNN_ELEMENTWISE}[name]
            _compiled[name] = cp.ElementwiseKernel(ins, outs, body, f"xpnn_{name}",
                                                options=("--fmad=false",))
        else:
            ins, outs, body = {**POOL_SPECS, **CONV_ELEMENTWISE}[name]
            _compiled[name] = cp.ElementwiseKernel(ins, outs, body, f"xpnn_{name}")
    return _compiled[name]


def _col(v):
    return v.reshape(1, -1, 1)


#: threads of the first pass of a per-channel sum, about (enough to keep
#: an H100's memory busy; a channel gets at most one per element)
PARTIAL_THREADS = 1 << 16


def _partials(N, C, L):
    """(S, cmajor): threads per channel and their arrangement (see above)."""
    return max(1, min(N * L, PARTIAL_THREADS // C)), int(L >= 32)


def _channel_mean(a3, M, kernel, xp):
    """Per-channel sum of a contiguous (N, C, L) array over N and L, divided
    by M, in the two fixed-order passes; also the partials buffer and its
    (S, cmajor) arrangement, for a second sum of the same shape."""
    N, C, L = a3.shape
    S, cmajor = _partials(N, C, L)
    part = xp.empty((C * S,), dtype=a3.dtype)
    out = xp.empty((C,), dtype=a3.dtype)
    kernel("bn_part_sum")(a3, N, C, L, S, cmajor, part)
    kernel("bn_mean")(part, S, C, cmajor, float(M), out)
    return out, part, S, cmajor


def bn_train_forward(x, gamma, beta, rm, rv, eps, momentum, kernel=None, xp=None):
    """x (N, C) or (N, C, H, W) -> (out, mean, var, inv_std, running_mean,
    running_var): out shaped like x, the rest per channel, shape (C,).
    ``kernel`` and ``xp`` default to the CUDA kernels and CuPy; the host
    tests pass compiled host versions of the same kernels and NumPy."""
    kernel, xp = kernel or _get, xp or cupy_module()
    x3 = xp.ascontiguousarray(x).reshape(x.shape[0], x.shape[1], -1)
    N, C, L = x3.shape
    M = N * L
    mean, part, S, cmajor = _channel_mean(x3, M, kernel, xp)
    kernel("bn_part_sqdev")(x3, mean, N, C, L, S, cmajor, part)
    var, inv, scale, rm_new, rv_new = kernel("bn_stats")(
        part, S, C, cmajor, mean, gamma, rm, rv, float(M), float(eps), float(momentum),
        1.0 - float(momentum))
    out = kernel("bn_apply")(x3, _col(mean), _col(scale), _col(beta))
    return out.reshape(x.shape), mean, var, inv, rm_new, rv_new


def bn_train_backward(dout, x, mean, gamma, inv, kernel=None, xp=None):
    """Gradients of :func:`bn_train_forward`: dx (x's shape), dgamma, dbeta."""
    kernel, xp = kernel or _get, xp or cupy_module()
    x3 = xp.ascontiguousarray(x).reshape(x.shape[0], x.shape[1], -1)
    d3 = xp.ascontiguousarray(dout).reshape(x3.shape)
    N, C, L = x3.shape
    S, cmajor = _partials(N, C, L)
    part_d = xp.empty((C * S,), dtype=x.dtype)
    part_r = xp.empty_like(part_d)
    kernel("bn_part_back")(d3, x3, mean, N, C, L, S, cmajor, part_d, part_r)
    dgamma, dbeta, gi, bco, kco = kernel("bn_coef")(part_d, part_r, S, C, cmajor, gamma, inv,
                                                    float(N * L))
    dx = kernel("bn_dx")(d3, x3, _col(mean), _col(gi), _col(bco), _col(kco))
    return dx.reshape(x.shape), dgamma, dbeta


def softmax_loss(x, y, kernel=None, xp=None):
    """(loss, dx) of softmax cross-entropy in 4 launches; x (N, C)."""
    kernel, xp = kernel or _get, xp or cupy_module()
    x = xp.ascontiguousarray(x)
    N, C = x.shape
    m = xp.empty((N,), dtype=x.dtype)
    lse, lp = xp.empty_like(m), xp.empty_like(m)
    kernel("softmax_rows")(x, xp.ascontiguousarray(y), C, m, lse, lp)
    dx = kernel("softmax_dx")(x, m[:, None], lse[:, None], y[:, None], C, float(N))
    return -xp.sum(lp) / N, dx


def rnn_step_forward(xa, t, hw, kernel=None, xp=None):
    """h_t (N, H) of a tanh RNN in one launch; xa (N, T, H) contiguous."""
    N, Tn, H = xa.shape
    return (kernel or _get)("rnn_fwd")(xa, hw, H, Tn, t)


def rnn_step_backward(dh, t, dnext, out, kernel=None, xp=None):
    """The step's pre-activation gradient (N, H) in one launch."""
    N, Tn, H = out.shape
    return (kernel or _get)("rnn_bwd")(dh, dnext, out, H, Tn, t)


def lstm_step_forward(xa, t, hw, c_prev, kernel=None, xp=None):
    """(h, c_next, (i, f, o, g, tanh(c_next))) of an LSTM step in one launch."""
    N, Tn, H4 = xa.shape
    h, c, gi, gf, go, gg, tc = (kernel or _get)("lstm_fwd")(xa, hw, c_prev, H4 // 4, Tn, t)
    return h, c, (gi, gf, go, gg, tc)


def lstm_step_backward(dh, t, dh_next, dc_next, c_prev, gates, kernel=None, xp=None):
    """(da (N, 4H), dc_prev) of an LSTM step in one launch. dc_prev is (N, 4H)
    with the cell gradient in its first H columns (the rest zero); dc_next
    is (N, H) or such an (N, 4H) array from the step after."""
    xp = xp or cupy_module()
    N, Tn, H = dh.shape
    da = xp.empty((N, 4 * H), dtype=dh.dtype)
    dcf = xp.empty_like(da)
    (kernel or _get)("lstm_bwd")(dh, dh_next, dc_next, int(dc_next.shape[1]), c_prev, *gates,
                                 H, Tn, t, da, dcf)
    return da, dcf


def relu_backward(dout, x, kernel=None, xp=None):
    """ReLU's backward in one pass."""
    return (kernel or _get)("relu_bwd")(dout, x)


def conv_forward(x, w, b, s, pad, Ho, Wo, kernel=None, xp=None):
    """(out (N, F, Ho, Wo), cols (C*kh*kw, N*Ho*Wo)) in 3 launches: im2col
    from the unpadded input, one matmul, bias and layout in one pass.
    ``kernel``/``xp`` as for :func:`bn_train_forward`."""
    kernel, xp = kernel or _get, xp or cupy_module()
    N = x.shape[0]
    F, C, kh, kw = w.shape
    cols = columns(x, kh, kw, s, pad, Ho, Wo, kernel, xp)
    out2 = w.reshape(F, C * kh * kw) @ cols
    out = xp.empty((N, F, Ho, Wo), dtype=x.dtype)
    kernel("bias_nchw")(out2, xp.ascontiguousarray(b), N, F, Ho * Wo, out)
    return out, cols


def columns(x, kh, kw, s, pad, Ho, Wo, kernel=None, xp=None):
    """The column matrix (C*kh*kw, N*Ho*Wo) of x, read unpadded."""
    kernel, xp = kernel or _get, xp or cupy_module()
    x = xp.ascontiguousarray(x)
    N, C, H, W = x.shape
    cols = xp.empty((C * kh * kw, N * Ho * Wo), dtype=x.dtype)
    kernel("im2col_pad")(x, N, C, H, W, kh, kw, s, pad, Ho, Wo, cols)
    return cols


def channel_sum(a, kernel=None, xp=None):
    """Per-channel sum of an (N, C, ...) array, in fixed order (the batch
    norm's two passes)."""
    kernel, xp = kernel or _get, xp or cupy_module()
    a3 = xp.ascontiguousarray(a).reshape(a.shape[0], a.shape[1], -1)
    return _channel_mean(a3, 1, kernel, xp)[0]


def conv_input_grad(dcols, N, C, H, W, kh, kw, s, pad, Ho, Wo, kernel=None, xp=None):
    """The input gradient (N, C, H, W) from the column gradient, unpadded."""
    kernel, xp = kernel or _get, xp or cupy_module()
    dx = xp.empty((N, C, H, W), dtype=dcols.dtype)
    kernel("col2im_unpad")(xp.ascontiguousarray(dcols), N, C, H, W, kh, kw, s, pad, Ho, Wo, dx)
    return dx


def im2col_backward(dout, x, w, cols, s, pad, Ho, Wo):
    """(dx, dw) of the im2col route from the forward's columns, as the
    portable layer computes them on a GPU (the reference cuDNN's passes are
    checked against)."""
    N, C, H, W = x.shape
    F, _, kh, kw = w.shape
    d2 = dout.transpose(1, 0, 2, 3).reshape(F, N * Ho * Wo)
    dw = (d2 @ cols.T).reshape(w.shape)
    dcols = w.reshape(F, C * kh * kw).T @ d2
    return conv_input_grad(dcols, N, C, H, W, kh, kw, s, pad, Ho, Wo), dw
