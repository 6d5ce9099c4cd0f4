/* The elementwise part of one recurrent step in float32, one pass over the
   step's values where NumPy takes a dozen (each reading and writing whole
   (N, H) arrays): the LSTM's gates and cell forward and their gradients
   backward, the tanh RNN's activation and its gradient.

   tanh is a rational function of x (odd numerator of degree 9, even
   denominator of degree 8, fitted for this file to tanh's relative error on
   [0, 9]; clamped to +-9.5, where it passes 1 and is clipped to +-1, as
   float32 rounds tanh there): at most 6 ulp
   from the exact value, under 1 ulp on average, and only multiply-adds and
   a division, so the loops vectorise (NumPy's own float32 tanh: 1.4 ulp).
   The sigmoid is 0.5 * tanh(x / 2) + 0.5, as in the portable path. NaN goes
   in and comes out.

   Arrays are rows of unit stride; each has its own row stride (in
   elements). The loops are built for AVX-512, AVX2/FMA and the baseline and
   chosen when the module loads (x86-64 Linux with GCC). */
#include <stddef.h>

/* no output overlaps an input: without saying so, GCC will not vectorise
   loops that write seven arrays */
typedef const float *__restrict__ xpnn_in;
typedef float *__restrict__ xpnn_out;

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) \
    && defined(__GLIBC__)   /* the per-CPU versions need glibc's ifunc */
#define XPNN_GATE_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define XPNN_GATE_CLONES
#endif

static inline float xpnn_tanhf(float x) {
    const float c = x < -9.5f ? -9.5f : (x > 9.5f ? 9.5f : x);
    const float u = c * c;
    const float p = 1.0f + u * (0.13384491f + u * (0.0034995982f + u * (2.0671094e-05f
                    + u * 1.3433381e-08f)));
    const float q = 1.0f + u * (0.46717814f + u * (0.025892509f + u * (0.00032920184f
                    + u * 7.8102943e-07f)));
    const float r = c * p / q;
    /* NaN passes the clamp's compares as itself; keep it */
    return x != x ? x : (r > 1.0f ? 1.0f : (r < -1.0f ? -1.0f : r));
}

static inline float xpnn_sigmoidf(float x) { return 0.5f * xpnn_tanhf(0.5f * x) + 0.5f; }

/* LSTM forward: a = xa_t + hw (N, 4H; gates i, f, o, g in H-column blocks);
   i, f, o = sigmoid, g = tanh; c = f * c_prev + i * g; tc = tanh(c);
   h = o * tc. */
XPNN_GATE_CLONES
static void xpnn_lstm_fwd(xpnn_in xa, ptrdiff_t lxa, xpnn_in hw, ptrdiff_t lhw, xpnn_in cp,
                          ptrdiff_t lcp, ptrdiff_t N, ptrdiff_t H, xpnn_out h, xpnn_out c,
                          xpnn_out gi, xpnn_out gf, xpnn_out go, xpnn_out gg, xpnn_out tc) {
    for (ptrdiff_t n = 0; n < N; n++) {
        const float *x = xa + n * lxa, *w = hw + n * lhw, *cr = cp + n * lcp;
        float *hn = h + n * H, *cn = c + n * H, *in = gi + n * H, *fn = gf + n * H;
        float *on = go + n * H, *gn = gg + n * H, *tn = tc + n * H;
        for (ptrdiff_t j = 0; j < H; j++) {
            const float i = xpnn_sigmoidf(x[j] + w[j]);
            const float f = xpnn_sigmoidf(x[H + j] + w[H + j]);
            const float o = xpnn_sigmoidf(x[2 * H + j] + w[2 * H + j]);
            const float g = xpnn_tanhf(x[3 * H + j] + w[3 * H + j]);
            const float cc = f * cr[j] + i * g;
            const float t = xpnn_tanhf(cc);
            in[j] = i; fn[j] = f; on[j] = o; gn[j] = g; cn[j] = cc; tn[j] = t;
            hn[j] = o * t;
        }
    }
}

/* LSTM backward of one step: d = dh_t + dh_next; dc = dc_next + d * o *
   (1 - tc^2); da = (dc g i (1 - i), dc c_prev f (1 - f), d tc o (1 - o),
   dc i (1 - g^2)); dc_prev = dc * f. */
XPNN_GATE_CLONES
static void xpnn_lstm_bwd(xpnn_in dh, ptrdiff_t ldh, xpnn_in dhn, ptrdiff_t ldhn, xpnn_in dcn,
                          ptrdiff_t ldcn, xpnn_in cp, ptrdiff_t lcp, xpnn_in gi, xpnn_in gf,
                          xpnn_in go, xpnn_in gg, xpnn_in tc, ptrdiff_t lg, ptrdiff_t N,
                          ptrdiff_t H, xpnn_out da, xpnn_out dcp) {
    for (ptrdiff_t n = 0; n < N; n++) {
        const float *d1 = dh + n * ldh, *d2 = dhn + n * ldhn, *dcr = dcn + n * ldcn;
        const float *cr = cp + n * lcp, *in = gi + n * lg, *fn = gf + n * lg;
        const float *on = go + n * lg, *gn = gg + n * lg, *tn = tc + n * lg;
        float *dan = da + n * 4 * H, *dcpn = dcp + n * H;
        for (ptrdiff_t j = 0; j < H; j++) {
            const float d = d1[j] + d2[j];
            const float i = in[j], f = fn[j], o = on[j], g = gn[j], t = tn[j];
            const float dc = dcr[j] + d * o * (1.0f - t * t);
            dan[j] = dc * g * i * (1.0f - i);
            dan[H + j] = dc * cr[j] * f * (1.0f - f);
            dan[2 * H + j] = d * t * o * (1.0f - o);
            dan[3 * H + j] = dc * i * (1.0f - g * g);
            dcpn[j] = dc * f;
        }
    }
}

/* tanh RNN forward: h = tanh(xa_t + hw) */
XPNN_GATE_CLONES
static void xpnn_rnn_fwd(xpnn_in xa, ptrdiff_t lxa, xpnn_in hw, ptrdiff_t lhw, ptrdiff_t N,
                         ptrdiff_t H, xpnn_out h) {
    for (ptrdiff_t n = 0; n < N; n++) {
        const float *x = xa + n * lxa, *w = hw + n * lhw;
        float *hn = h + n * H;
        for (ptrdiff_t j = 0; j < H; j++)
            hn[j] = xpnn_tanhf(x[j] + w[j]);
    }
}

/* tanh RNN backward of one step: da = (dh_t + dnext) * (1 - h_t^2) */
XPNN_GATE_CLONES
static void xpnn_rnn_bwd(xpnn_in dh, ptrdiff_t ldh, xpnn_in dn, ptrdiff_t ldn, xpnn_in hs,
                         ptrdiff_t lh, ptrdiff_t N, ptrdiff_t H, xpnn_out da) {
    for (ptrdiff_t n = 0; n < N; n++) {
        const float *d1 = dh + n * ldh, *d2 = dn + n * ldn, *hn = hs + n * lh;
        float *dan = da + n * H;
        for (ptrdiff_t j = 0; j < H; j++)
            dan[j] = (d1[j] + d2[j]) * (1.0f - hn[j] * hn[j]);
    }
}
