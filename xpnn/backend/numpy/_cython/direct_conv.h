/* Direct stride-1 convolution of one sample, for layers with few input
   channels (a network's first layer: 3 channels, 7x7 or 3x3 filters), where
   the column matrix im2col builds is wide and shallow and its GEMM runs far
   below the machine's peak.

   Vectors of 32 bytes through GCC/Clang vector extensions. The forward
   computes 2 vectors of an output row for 4 filters at once (8 sums in
   registers, fitting AVX2's 16), broadcasting each filter tap and reading
   the input row at the tap's offset; the weight gradient keeps 3 filters x
   up to 7 taps of one filter row in registers over a whole plane. The
   sums run in a fixed order (no dependence on threads or on the machine but
   for fused multiply-adds where the CPU has them). On x86-64 Linux (glibc)
   with GCC, versions for AVX-512 and AVX2/FMA machines are built beside the
   baseline one and chosen when the module loads.

   Preconditions (checked by the Cython wrappers, never here): stride 1;
   Ho = Hp - KH + 1, Wo = Wp - KW + 1; w holds Fp >= F filters with Fp a
   multiple of XPNN_FB (zero past F); the input stays readable for
   XPNN_SLACK elements past the end of its last row; 1 <= KW <= 7 for the
   weight gradient. */
#include <stddef.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) \
    && defined(__GLIBC__)   /* the per-CPU versions need glibc's ifunc */
#define XPNN_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define XPNN_CLONES
#endif

#define XPNN_FB 4       /* filters per pass */
#define XPNN_JV 2       /* vectors of one output row per pass */
#define XPNN_DFB 3      /* filters per pass of the weight gradient */
#define XPNN_SLACK 64   /* elements past the input's end a pass may read */

typedef float xpnn_vf __attribute__((vector_size(32)));
typedef double xpnn_vd __attribute__((vector_size(32)));

#define XPNN_DIRECT(T, V, L, SFX)                                              \
static inline V xpnn_load_##SFX(const T *p) { V v; memcpy(&v, p, sizeof v); return v; } \
                                                                                      \
/* out[f, i, j] = b[f] + sum_{c,ki,kj} w[f, c, ki, kj] * x[c, i + ki, j + kj] */       \
XPNN_CLONES                                                                           \
static void xpnn_direct_fwd_##SFX(const T *x, const T *w, const T *b, T *out,          \
                                 ptrdiff_t C, ptrdiff_t Hp, ptrdiff_t Wp, ptrdiff_t F, \
                                 ptrdiff_t KH, ptrdiff_t KW) {                         \
    const ptrdiff_t Ho = Hp - KH + 1, Wo = Wp - KW + 1, K = C * KH * KW;              \
    for (ptrdiff_t f0 = 0; f0 < F; f0 += XPNN_FB)                                     \
    for (ptrdiff_t i = 0; i < Ho; i++)                                                \
    for (ptrdiff_t j0 = 0; j0 < Wo; j0 += XPNN_JV * L) {                              \
        V acc[XPNN_FB][XPNN_JV];                                                      \
        for (int q = 0; q < XPNN_FB; q++)                                             \
            for (int v = 0; v < XPNN_JV; v++) acc[q][v] = (V){0};                     \
        for (ptrdiff_t c = 0; c < C; c++)                                             \
        for (ptrdiff_t ki = 0; ki < KH; ki++) {                                       \
            const T *row = x + (c * Hp + i + ki) * Wp + j0;                           \
            const T *wr = w + f0 * K + (c * KH + ki) * KW;                            \
            for (ptrdiff_t kj = 0; kj < KW; kj++) {                                   \
                T wv[XPNN_FB];                                                        \
                for (int q = 0; q < XPNN_FB; q++) wv[q] = wr[q * K + kj];             \
                for (int v = 0; v < XPNN_JV; v++) {                                   \
                    V xv = xpnn_load_##SFX(row + kj + v * L);                         \
                    for (int q = 0; q < XPNN_FB; q++) acc[q][v] += xv * wv[q];        \
                }                                                                     \
            }                                                                         \
        }                                                                             \
        for (int q = 0; q < XPNN_FB && f0 + q < F; q++)                               \
            for (int v = 0; v < XPNN_JV; v++) {                                       \
                ptrdiff_t j = j0 + v * L;                                             \
                T *o = out + ((f0 + q) * Ho + i) * Wo + j;                            \
                V r = acc[q][v] + b[f0 + q];                                          \
                if (j + L <= Wo) memcpy(o, &r, sizeof r);                             \
                else for (ptrdiff_t l = 0; j + l < Wo; l++) o[l] = r[l];              \
            }                                                                         \
    }                                                                                 \
}                                                                                     \
                                                                                      \
/* dw[f, c, ki, kj] = sum_{i,j} d[f, i, j] * x[c, i + ki, j + kj] for filters         \
   f0..f0+NF-1 of one sample; KW and NF compile-time constants after inlining,        \
   so the NF*KW sums stay in registers and each input vector serves NF filters */     \
static inline __attribute__((always_inline)) void xpnn_dw_body_##SFX(                 \
        const T *x, const T *d, T *dw, ptrdiff_t C, ptrdiff_t Hp, ptrdiff_t Wp,       \
        ptrdiff_t KH, const int KW, ptrdiff_t f0, const int NF) {                     \
    const ptrdiff_t Ho = Hp - KH + 1, Wo = Wp - KW + 1;                               \
    for (ptrdiff_t c = 0; c < C; c++)                                                 \
    for (ptrdiff_t ki = 0; ki < KH; ki++) {                                           \
        V acc[XPNN_DFB][7];                                                           \
        for (int q = 0; q < NF; q++)                                                  \
            for (int kj = 0; kj < KW; kj++) acc[q][kj] = (V){0};                      \
        const ptrdiff_t Wv = Wo - Wo % L;  /* columns in whole vectors */             \
        for (ptrdiff_t i = 0; i < Ho; i++) {                                          \
            const T *xr = x + (c * Hp + i + ki) * Wp;                                 \
            const T *dr = d + (f0 * Ho + i) * Wo;                                     \
            for (ptrdiff_t j = 0; j < Wv; j += L) {                                   \
                V dv[XPNN_DFB];                                                       \
                for (int q = 0; q < NF; q++) dv[q] = xpnn_load_##SFX(dr + q * Ho * Wo + j);\
                for (int kj = 0; kj < KW; kj++) {                                     \
                    V xv = xpnn_load_##SFX(xr + j + kj);                              \
                    for (int q = 0; q < NF; q++) acc[q][kj] += dv[q] * xv;            \
                }                                                                     \
            }                                                                         \
        }                                                                             \
        /* each row's last, partial vector, in a loop of its own so that the          \
           one above keeps its sums in registers: lanes past Wo are 0 */              \
        for (ptrdiff_t i = 0; i < Ho && Wv < Wo; i++) {                               \
            const T *xr = x + (c * Hp + i + ki) * Wp;                                 \
            const T *dr = d + (f0 * Ho + i) * Wo;                                     \
            V dv[XPNN_DFB];                                                           \
            for (int q = 0; q < NF; q++) {                                            \
                dv[q] = (V){0};                                                       \
                for (ptrdiff_t l = 0; Wv + l < Wo; l++) dv[q][l] = dr[q * Ho * Wo + Wv + l];\
            }                                                                         \
            for (int kj = 0; kj < KW; kj++) {                                         \
                V xv = (V){0};                                                        \
                for (ptrdiff_t l = 0; Wv + l < Wo; l++) xv[l] = xr[Wv + kj + l];      \
                for (int q = 0; q < NF; q++) acc[q][kj] += dv[q] * xv;                \
            }                                                                         \
        }                                                                             \
        for (int q = 0; q < NF; q++) {                                                \
            T *o = dw + (((f0 + q) * C + c) * KH + ki) * KW;                          \
            for (int kj = 0; kj < KW; kj++) {                                         \
                T s = 0;                                                              \
                for (int l = 0; l < L; l++) s += acc[q][kj][l];                       \
                o[kj] = s;                                                            \
            }                                                                         \
        }                                                                             \
    }                                                                                 \
}                                                                                     \
                                                                                      \
static inline __attribute__((always_inline)) void xpnn_dw_filters_##SFX(              \
        const T *x, const T *d, T *dw, ptrdiff_t C, ptrdiff_t Hp, ptrdiff_t Wp,       \
        ptrdiff_t F, ptrdiff_t KH, const int KW) {                                    \
    ptrdiff_t f0 = 0;                                                                 \
    for (; f0 + XPNN_DFB <= F; f0 += XPNN_DFB)                                        \
        xpnn_dw_body_##SFX(x, d, dw, C, Hp, Wp, KH, KW, f0, XPNN_DFB);                \
    for (; f0 < F; f0++)                                                              \
        xpnn_dw_body_##SFX(x, d, dw, C, Hp, Wp, KH, KW, f0, 1);                       \
}                                                                                     \
                                                                                      \
XPNN_CLONES                                                                           \
static void xpnn_direct_dw_##SFX(const T *x, const T *d, T *dw, ptrdiff_t C,          \
                                ptrdiff_t Hp, ptrdiff_t Wp, ptrdiff_t F, ptrdiff_t KH, \
                                ptrdiff_t KW) {                                       \
    switch (KW) {                                                                     \
    case 1: xpnn_dw_filters_##SFX(x, d, dw, C, Hp, Wp, F, KH, 1); break;              \
    case 2: xpnn_dw_filters_##SFX(x, d, dw, C, Hp, Wp, F, KH, 2); break;              \
    case 3: xpnn_dw_filters_##SFX(x, d, dw, C, Hp, Wp, F, KH, 3); break;              \
    case 4: xpnn_dw_filters_##SFX(x, d, dw, C, Hp, Wp, F, KH, 4); break;              \
    case 5: xpnn_dw_filters_##SFX(x, d, dw, C, Hp, Wp, F, KH, 5); break;              \
    case 6: xpnn_dw_filters_##SFX(x, d, dw, C, Hp, Wp, F, KH, 6); break;              \
    case 7: xpnn_dw_filters_##SFX(x, d, dw, C, Hp, Wp, F, KH, 7); break;              \
    default: break;                                                                   \
    }                                                                                 \
}

XPNN_DIRECT(float, xpnn_vf, 8, f)
XPNN_DIRECT(double, xpnn_vd, 4, d)
