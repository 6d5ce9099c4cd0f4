"""Every kernel of the compiled extension (im2col.pyx) on seeded odd-sized
inputs, float32 and float64, its results saved to an .npz:

    python run_extension.py DIR OUT.npz

DIR holds the built ``im2col`` module. It needs NumPy alone (no xpnn), so
that tests/test_portability.py can run it with an aarch64 Python and NumPy
under qemu-user on an aarch64 build of the extension, and again natively,
and compare the two."""
import sys

import numpy as np

sys.path.insert(0, sys.argv[1])
import im2col as ext  # noqa: E402

r = np.random.RandomState(7)
out = {}


class _Exact:
    """Seeded numbers that every machine makes alike: multiples of 2**-20
    in [-4, 4) from integers (normal draws go through libm's log, which
    rounds differently on aarch64), exact in float32 and float64."""

    def randn(self, *shape):
        return r.randint(-2 ** 22, 2 ** 22, size=shape) / 2.0 ** 20


g = _Exact()


def c(a):
    return np.ascontiguousarray(a)


for dt in (np.float32, np.float64):
    name = np.dtype(dt).name
    # columns and their adjoint: odd planes, stride 2, a 3x2 window
    xpad = c(g.randn(3, 5, 9, 11).astype(dt))
    kh, kw, s = 3, 2, 2
    Ho, Wo = (9 - kh) // s + 1, (11 - kw) // s + 1
    cols = ext.im2col(xpad, kh, kw, s, Ho, Wo)
    out[f"im2col_{name}"] = np.asarray(cols)
    dcols = c(g.randn(*cols.shape).astype(dt))
    out[f"col2im_{name}"] = np.asarray(ext.col2im(dcols, 3, 5, 9, 11, kh, kw, s, Ho, Wo))
    # max pooling, overlapping windows (3x3 stride 2), ties and a NaN
    x = c(g.randn(2, 3, 9, 7).astype(dt))
    x[0, 0, :3, :3] = 1.5
    x[1, 2, 4, 4] = np.nan
    p, idx = ext.max_pool_forward(x, 3, 3, 2, 4, 3)
    out[f"pool_{name}"], out[f"pool_idx_{name}"] = np.asarray(p), np.asarray(idx)
    dp = c(g.randn(*np.asarray(p).shape).astype(dt))
    out[f"pool_back_{name}"] = np.asarray(ext.max_pool_backward(dp, c(np.asarray(idx)), 9, 7))
    # the channel affine, with and without the second term
    u, v = c(g.randn(4, 5, 13).astype(dt)), c(g.randn(4, 5, 13).astype(dt))
    a, b, k = (c(g.randn(5).astype(dt)) for _ in range(3))
    out[f"affine_{name}"] = np.asarray(ext.channel_affine(u, a, b))
    out[f"affine2_{name}"] = np.asarray(ext.channel_affine(u, a, b, v, k))
    # the direct convolution: 3 channels, a 3x3 and a 7x7 filter, odd widths
    for KH, KW, Hp, Wp, F in ((3, 3, 13, 11, 5), (7, 7, 15, 17, 9)):
        N, C = 2, 3
        fb, slack = ext.DIRECT_FB, ext.DIRECT_SLACK
        Fp = -(-F // fb) * fb
        xflat = np.zeros(N * C * Hp * Wp + slack, dt)
        xflat[:N * C * Hp * Wp] = g.randn(N * C * Hp * Wp)
        w = np.zeros((Fp, C * KH * KW), dt)
        w[:F] = g.randn(F, C * KH * KW)
        bias = c(g.randn(F).astype(dt))
        o = np.zeros((N, F, Hp - KH + 1, Wp - KW + 1), dt)
        ext.conv_direct_forward(xflat, N, C, Hp, Wp, w, bias, o, KH, KW, 0, N)
        out[f"direct_{KH}_{name}"] = o
        if KW <= ext.DIRECT_MAX_KW:
            d = c(g.randn(*o.shape).astype(dt))
            dwp = np.zeros((N, F * C * KH * KW), dt)
            ext.conv_direct_weight_grad(xflat, N, C, Hp, Wp, d, dwp, KH, KW, 0, N)
            out[f"direct_dw_{KH}_{name}"] = dwp
    # the recurrent step's product at the baseline level (every machine has it)
    for trans in (0, 1):
        K, N, M = 33, 70, 7
        w = c(g.randn(*((N, K) if trans else (K, N))).astype(dt))
        nr = ext.step_panel_width(dt == np.float64, 0)
        bp = np.zeros(-(-N // nr) * K * nr, dt)
        ext.step_pack(w, trans, bp, 0, 1, 0)
        a = c(g.randn(M, K).astype(dt))
        cc = np.zeros((M, N), dt)
        ext.step_product(a, bp, cc, 0, 1, 0)
        out[f"step_{trans}_{name}"] = cc

# the gates, float32 only (their one type)
N, H = 5, 9
xa, hw = g.randn(N, 4 * H).astype(np.float32) * 4, g.randn(N, 4 * H).astype(np.float32) * 4
cp = g.randn(N, H).astype(np.float32)
fwd = ext.lstm_gates_forward(xa, hw, cp)
for i, v in enumerate(fwd):
    out[f"lstm_fwd_{i}"] = np.asarray(v)
dh, dn, dc = (g.randn(N, H).astype(np.float32) for _ in range(3))
for i, v in enumerate(ext.lstm_gates_backward(dh, dn, dc, cp, *fwd[2:])):
    out[f"lstm_bwd_{i}"] = np.asarray(v)
h = np.asarray(ext.rnn_gates_forward(xa[:, :H], hw[:, :H]))
out["rnn_fwd"] = h
out["rnn_bwd"] = np.asarray(ext.rnn_gates_backward(dh, dn, h))

# the step product's version this CPU runs (aarch64: the baseline, 0)
out["step_level"] = np.array(ext.STEP_LEVEL)
np.savez(sys.argv[2], **out)
print(f"{len(out)} results, numpy {np.__version__}")
