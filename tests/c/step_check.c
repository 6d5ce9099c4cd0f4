/* The recurrent step's kernels against plain loops, on odd sizes: the step
   product of step_gemm.h (packing B or B^T, then every row count) in float32
   and float64, and the gates of step_gates.h (LSTM and tanh RNN, forward and
   backward; float32, their only type) against libm's tanh in double. Built
   for whatever machine compiles it (tests/test_portability.py builds it
   natively and for aarch64, run under qemu-user). Every version this CPU
   can run is checked: the baseline always, AVX2 and AVX-512 where present.
   Prints one line per case; exits 1 if any differs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "step_gemm.h"
#include "step_gates.h"

static unsigned long long seed = 54321;
static double next(void) {   /* the same numbers on every machine */
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(seed >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

/* c = a @ B (trans 0: w is B (K, N)) or a @ W^T (trans 1: w is W (N, K)) */
#define GEMM_CHECK(T, SFX, TOL)                                                       \
static int gemm_##SFX(const char *level, ptrdiff_t M, ptrdiff_t K, ptrdiff_t N,      \
                      int trans) {                                                  \
    const ptrdiff_t NR = xpnn_sg_nr_##SFX, panels = (N + NR - 1) / NR;                \
    const ptrdiff_t lda = K + 3, ldc = N + 2;      /* row strides past the width */  \
    T *a = malloc(M * lda * sizeof(T)), *w = malloc(K * N * sizeof(T));               \
    T *bp = malloc((panels * K * NR + 1) * sizeof(T));                                \
    T *c = malloc(M * ldc * sizeof(T));                                               \
    for (ptrdiff_t i = 0; i < M * lda; i++) a[i] = (T)next();                         \
    for (ptrdiff_t i = 0; i < K * N; i++) w[i] = (T)next();                           \
    for (ptrdiff_t i = 0; i < M * ldc; i++) c[i] = (T)7;  /* the gaps must stay 7 */  \
    const ptrdiff_t ldb = trans ? K : N;                                              \
    /* packed and run in two halves, as two threads split the panels */              \
    xpnn_sg_pack_##SFX(w, K, N, ldb, trans, bp, 0, panels / 2);                       \
    xpnn_sg_pack_##SFX(w, K, N, ldb, trans, bp, panels / 2, panels);                  \
    xpnn_sg_run_##SFX(a, M, K, lda, bp, N, c, ldc, 0, panels / 2);                    \
    xpnn_sg_run_##SFX(a, M, K, lda, bp, N, c, ldc, panels / 2, panels);               \
    double worst = 0;                                                                 \
    int gaps = 1;                                                                     \
    for (ptrdiff_t i = 0; i < M; i++) {                                               \
        for (ptrdiff_t j = 0; j < N; j++) {                                           \
            double s = 0, mag = 0;                                                    \
            for (ptrdiff_t k = 0; k < K; k++) {                                       \
                double t = (double)a[i * lda + k] * (trans ? w[j * K + k] : w[k * N + j]); \
                s += t; mag += fabs(t);                                               \
            }                                                                         \
            double e = fabs(c[i * ldc + j] - s) / (mag + 1e-30);                      \
            if (!(e <= worst)) worst = e;          /* NaN counts as the worst */      \
        }                                                                             \
        for (ptrdiff_t j = N; j < ldc; j++) gaps &= c[i * ldc + j] == (T)7;           \
    }                                                                                 \
    int ok = worst <= TOL && gaps;                                                    \
    printf("%s gemm " #T " %s M=%td K=%td N=%td trans=%d %.1e%s\n", ok ? "ok" : "FAIL", \
           level, M, K, N, trans, worst, gaps ? "" : " (wrote past a row)");          \
    free(a); free(w); free(bp); free(c);                                              \
    return ok;                                                                        \
}

GEMM_CHECK(float, f_v0, 1e-6)
GEMM_CHECK(double, d_v0, 1e-14)
GEMM_CHECK(float, f_v3, 1e-6)
GEMM_CHECK(double, d_v3, 1e-14)
GEMM_CHECK(float, f_v4, 1e-6)
GEMM_CHECK(double, d_v4, 1e-14)

static double sig(double x) { return 0.5 * tanh(0.5 * x) + 0.5; }

static float *randn(ptrdiff_t n, double scale) {
    float *p = malloc(n * sizeof(float));
    for (ptrdiff_t i = 0; i < n; i++) p[i] = (float)(scale * next());
    return p;
}

/* |got - want| over the size of the terms want is made of (a sum of
   magnitudes: float32 rounds each term, and a difference of near-equal
   terms is only as exact as they are); the worst so far in *worst */
static void err(float got, double want, double scale, double *worst) {
    double e = fabs(got - want) / (scale + 1e-30);
    if (!(e <= *worst)) *worst = e;
}

/* the gates on N rows of H: forward against libm's tanh, backward against
   the formulas on the forward's own gates, in double; pre-activations up to
   +-12 (past the clamp), and a NaN, which must come out */
static int gates(ptrdiff_t N, ptrdiff_t H) {
    const ptrdiff_t lx = 4 * H + 1, lw = 4 * H + 2, lc = H + 3;
    float *xa = randn(N * lx, 6.0), *hw = randn(N * lw, 6.0), *cp = randn(N * lc, 2.0);
    float *h = malloc(N * H * sizeof(float)), *c = malloc(N * H * sizeof(float));
    float *g[5];
    for (int k = 0; k < 5; k++) g[k] = malloc(N * H * sizeof(float));
    xa[0] = NAN;
    xpnn_lstm_fwd(xa, lx, hw, lw, cp, lc, N, H, h, c, g[0], g[1], g[2], g[3], g[4]);
    double wf = 0, wb = 0, wr = 0;
    int nan_kept = isnan(h[0]) && isnan(c[0]);
    for (ptrdiff_t n = 0; n < N; n++) for (ptrdiff_t j = 0; j < H; j++) {
        if (n == 0 && j == 0) continue;
        const float *x = xa + n * lx, *w = hw + n * lw;
        const ptrdiff_t q = n * H + j;
        for (int k = 0; k < 4; k++) {      /* i, f, o: sigmoid; g: tanh */
            double a = (double)x[k * H + j] + w[k * H + j];
            err(g[k][q], k < 3 ? sig(a) : tanh(a), 1 + fabs(x[k * H + j]) + fabs(w[k * H + j]),
                &wf);
        }
        double fc = (double)g[1][q] * cp[n * lc + j], ig = (double)g[0][q] * g[3][q];
        err(c[q], fc + ig, fabs(fc) + fabs(ig), &wf);
        err(g[4][q], tanh(c[q]), 1, &wf);
        err(h[q], (double)g[2][q] * g[4][q], fabs(g[2][q] * g[4][q]), &wf);
    }
    float *dh = randn(N * H, 1.0), *dhn = randn(N * H, 1.0), *dcn = randn(N * H, 1.0);
    float *da = malloc(N * 4 * H * sizeof(float)), *dcp = malloc(N * H * sizeof(float));
    xpnn_lstm_bwd(dh, H, dhn, H, dcn, H, cp, lc, g[0], g[1], g[2], g[3], g[4], H, N, H, da,
                  dcp);
    for (ptrdiff_t n = 0; n < N; n++) for (ptrdiff_t j = 0; j < H; j++) {
        if (n == 0 && j == 0) continue;
        const ptrdiff_t q = n * H + j, r = n * 4 * H + j;
        double d = (double)dh[q] + dhn[q], sd = fabs(dh[q]) + fabs(dhn[q]);
        double i = g[0][q], f = g[1][q], o = g[2][q], gg = g[3][q], t = g[4][q];
        double cc = cp[n * lc + j];
        double dc = dcn[q] + d * o * (1 - t * t), sdc = fabs(dcn[q]) + sd * o * (1 + t * t);
        err(da[r], dc * gg * i * (1 - i), sdc * fabs(gg) * i * (1 + i), &wb);
        err(da[r + H], dc * cc * f * (1 - f), sdc * fabs(cc) * f * (1 + f), &wb);
        err(da[r + 2 * H], d * t * o * (1 - o), sd * fabs(t) * o * (1 + o), &wb);
        err(da[r + 3 * H], dc * i * (1 - gg * gg), sdc * i * (1 + gg * gg), &wb);
        err(dcp[q], dc * f, sdc * f, &wb);
    }
    xpnn_rnn_fwd(xa, lx, hw, lw, N, H, h);
    nan_kept &= isnan(h[0]);
    xpnn_rnn_bwd(dh, H, dhn, H, h, H, N, H, da);
    for (ptrdiff_t n = 0; n < N; n++) for (ptrdiff_t j = 0; j < H; j++) {
        if (n == 0 && j == 0) continue;
        const ptrdiff_t q = n * H + j;
        const double x = xa[n * lx + j], w = hw[n * lw + j], hh = h[q];
        err(h[q], tanh(x + w), 1 + fabs(x) + fabs(w), &wr);
        err(da[q], ((double)dh[q] + dhn[q]) * (1 - hh * hh),
            (fabs(dh[q]) + fabs(dhn[q])) * (1 + hh * hh), &wr);
    }
    /* tanh is within 6 ulp (4e-7); a few float32 roundings after it */
    int ok = wf <= 1e-6 && wb <= 1e-6 && wr <= 1e-6 && nan_kept;
    printf("%s gates float N=%td H=%td lstm forward %.1e backward %.1e rnn %.1e%s\n",
           ok ? "ok" : "FAIL", N, H, wf, wb, wr, nan_kept ? "" : " (NaN lost)");
    free(xa); free(hw); free(cp); free(h); free(c); free(dh); free(dhn); free(dcn);
    free(da); free(dcp);
    for (int k = 0; k < 5; k++) free(g[k]);
    return ok;
}

int main(void) {
    /* (M, K, N): one row, every row count up to a block and past it, widths
       short of a panel, one past it, many panels, K of 1 and odd */
    static const ptrdiff_t sizes[][3] = {
        {1, 1, 1}, {5, 7, 3}, {7, 33, 17}, {25, 50, 100}, {13, 16, 65}, {6, 9, 33},
    };
    const int level = xpnn_sg_level();
    int all = 1;
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        const ptrdiff_t M = sizes[s][0], K = sizes[s][1], N = sizes[s][2];
        for (int trans = 0; trans < 2; trans++) {
            all &= gemm_f_v0("baseline", M, K, N, trans);
            all &= gemm_d_v0("baseline", M, K, N, trans);
            if (level >= 3 || !XPNN_SG_HAVE_X86) {   /* elsewhere: the generic build */
                all &= gemm_f_v3("v3", M, K, N, trans);
                all &= gemm_d_v3("v3", M, K, N, trans);
            }
            if (level >= 4 || !XPNN_SG_HAVE_X86) {
                all &= gemm_f_v4("v4", M, K, N, trans);
                all &= gemm_d_v4("v4", M, K, N, trans);
            }
        }
    }
    static const ptrdiff_t shapes[][2] = {{1, 1}, {3, 5}, {25, 17}, {4, 64}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        all &= gates(shapes[s][0], shapes[s][1]);
    return all ? 0 : 1;
}
