/* The direct convolution kernels of direct_conv.h against a plain loop, on
   odd sizes, float32 and float64: built for whatever machine compiles it
   (tests/test_portability.py builds it natively and for aarch64, run under
   qemu-user). Prints one line per case; exits 1 if any differs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "direct_conv.h"

static unsigned long long seed = 12345;
static double next(void) {   /* the same numbers on every machine */
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(seed >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

#define CHECK(T, SFX, TOL)                                                            \
static int check_##SFX(ptrdiff_t C, ptrdiff_t Hp, ptrdiff_t Wp, ptrdiff_t F,            \
                       ptrdiff_t KH, ptrdiff_t KW) {                                  \
    const ptrdiff_t Ho = Hp - KH + 1, Wo = Wp - KW + 1, K = C * KH * KW;              \
    const ptrdiff_t Fp = (F + XPNN_FB - 1) / XPNN_FB * XPNN_FB;                       \
    T *x = calloc(C * Hp * Wp + XPNN_SLACK, sizeof(T));                               \
    T *w = calloc(Fp * K, sizeof(T)), *b = calloc(F, sizeof(T));                      \
    T *out = calloc(F * Ho * Wo, sizeof(T)), *d = calloc(F * Ho * Wo, sizeof(T));     \
    T *dw = calloc(F * K, sizeof(T));                                                 \
    for (ptrdiff_t i = 0; i < C * Hp * Wp; i++) x[i] = (T)next();                     \
    for (ptrdiff_t i = 0; i < F * K; i++) w[i] = (T)next();                           \
    for (ptrdiff_t i = 0; i < F; i++) b[i] = (T)next();                               \
    for (ptrdiff_t i = 0; i < F * Ho * Wo; i++) d[i] = (T)next();                     \
    xpnn_direct_fwd_##SFX(x, w, b, out, C, Hp, Wp, F, KH, KW);                        \
    double worst = 0;                                                                 \
    for (ptrdiff_t f = 0; f < F; f++) for (ptrdiff_t i = 0; i < Ho; i++)              \
    for (ptrdiff_t j = 0; j < Wo; j++) {                                              \
        double s = b[f], mag = fabs((double)b[f]);                                   \
        for (ptrdiff_t c = 0; c < C; c++) for (ptrdiff_t ki = 0; ki < KH; ki++)       \
        for (ptrdiff_t kj = 0; kj < KW; kj++) {                                       \
            double t = (double)w[f * K + (c * KH + ki) * KW + kj] *                   \
                       x[(c * Hp + i + ki) * Wp + j + kj];                            \
            s += t; mag += fabs(t);                                                   \
        }                                                                             \
        double e = fabs(out[(f * Ho + i) * Wo + j] - s) / (mag + 1e-30);              \
        if (e > worst) worst = e;                                                     \
    }                                                                                 \
    double worst_dw = 0;                                                              \
    if (KW <= 7) {                                                                    \
        xpnn_direct_dw_##SFX(x, d, dw, C, Hp, Wp, F, KH, KW);                         \
        for (ptrdiff_t f = 0; f < F; f++) for (ptrdiff_t c = 0; c < C; c++)           \
        for (ptrdiff_t ki = 0; ki < KH; ki++) for (ptrdiff_t kj = 0; kj < KW; kj++) { \
            double s = 0, mag = 0;                                                    \
            for (ptrdiff_t i = 0; i < Ho; i++) for (ptrdiff_t j = 0; j < Wo; j++) {   \
                double t = (double)d[(f * Ho + i) * Wo + j] *                         \
                           x[(c * Hp + i + ki) * Wp + j + kj];                        \
                s += t; mag += fabs(t);                                               \
            }                                                                         \
            double e = fabs(dw[((f * C + c) * KH + ki) * KW + kj] - s) / (mag + 1e-30);\
            if (e > worst_dw) worst_dw = e;                                           \
        }                                                                             \
    }                                                                                 \
    int ok = worst <= TOL && worst_dw <= TOL;                                         \
    printf("%s " #T " C=%td Hp=%td Wp=%td F=%td K=%tdx%td forward %.1e dw %.1e\n",     \
           ok ? "ok" : "FAIL", C, Hp, Wp, F, KH, KW, worst, worst_dw);                \
    free(x); free(w); free(b); free(out); free(d); free(dw);                          \
    return ok;                                                                        \
}

CHECK(float, f, 1e-5)
CHECK(double, d, 1e-13)

int main(void) {
    /* (C, Hp, Wp, F, KH, KW): first layers (3 channels, 3x3 and 7x7), odd
       widths past and short of a vector, filters not a multiple of a pass */
    static const ptrdiff_t cases[][6] = {
        {3, 34, 34, 16, 3, 3}, {3, 13, 11, 5, 3, 3}, {1, 10, 10, 1, 1, 1},
        {3, 38, 38, 8, 7, 7}, {2, 9, 17, 7, 2, 5}, {4, 6, 25, 3, 3, 6}, {1, 8, 8, 9, 3, 2},
    };
    int all = 1;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const ptrdiff_t *c = cases[k];
        all &= check_f(c[0], c[1], c[2], c[3], c[4], c[5]);
        all &= check_d(c[0], c[1], c[2], c[3], c[4], c[5]);
    }
    return all ? 0 : 1;
}
