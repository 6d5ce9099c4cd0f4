/* The matrix product of a recurrent step: c (M, N) = a (M, K) @ B (K, N)
   for the few rows of one time step (a batch of sequences, M ~ 25-100)
   against a weight matrix used for every step of the sequence.

   OpenBLAS packs B again on every call and splits the few rows poorly over
   its threads; here B is packed once per sequence into panels of NR
   columns (panel p holds B[k, p*NR + j] at p*K*NR + k*NR + j, zero past N),
   and each call computes MR rows x NR columns at a time in registers,
   broadcasting a[i, k] against the panel's row k. Panels are independent, so
   callers split them over threads. Every sum runs over k in order, one
   fused multiply-add at a time where the CPU has them: results do not
   depend on the split.

   Three versions of each function, chosen when the module loads (x86-64
   Linux with GCC): AVX-512 (64-byte vectors), AVX2/FMA (32-byte) and the
   baseline (16-byte); each has its own NR and MR, so a packed B is used by
   the version that packed it. */
#include <stddef.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define XPNN_SG_V4 __attribute__((target("arch=x86-64-v4")))
#define XPNN_SG_V3 __attribute__((target("arch=x86-64-v3")))
#define XPNN_SG_HAVE_X86 1
#else
#define XPNN_SG_V4
#define XPNN_SG_V3
#define XPNN_SG_HAVE_X86 0
#endif

/* T element type, V its vector type of L elements, NV vectors per panel row
   (NR = NV * L), MR rows per block, ATTR the target, SFX the name suffix */
#define XPNN_STEP_GEMM(T, V, L, NV, MR, ATTR, SFX)                                \
enum { xpnn_sg_nr_##SFX = (NV) * (L) };                                             \
/* the vector at any element's alignment (panels need not be 64-byte aligned; \
   copied through memcpy instead, GCC kept the panel row in memory) */           \
typedef V xpnn_sg_u_##SFX __attribute__((aligned(sizeof(T)), may_alias));           \
                                                                                    \
/* panels q0..q1-1 of bp (panels * K * NR) from B (K, N) with row stride ldb      \
   (trans = 0), or from B^T, i.e. W (N, K) with row stride ldb (trans = 1) */       \
ATTR static void xpnn_sg_pack_##SFX(const T *w, ptrdiff_t K, ptrdiff_t N,           \
                                    ptrdiff_t ldb, int trans, T *bp,                \
                                    ptrdiff_t q0, ptrdiff_t q1) {                   \
    const ptrdiff_t NR = (NV) * (L);                                                \
    for (ptrdiff_t p0 = q0 * NR; p0 < N && p0 < q1 * NR; p0 += NR) {                \
        T *dst = bp + (p0 / NR) * K * NR;                                           \
        const ptrdiff_t nc = N - p0 < NR ? N - p0 : NR;                             \
        if (!trans) {                                                               \
            for (ptrdiff_t k = 0; k < K; k++) {                                     \
                memcpy(dst + k * NR, w + k * ldb + p0, nc * sizeof(T));             \
                for (ptrdiff_t j = nc; j < NR; j++) dst[k * NR + j] = 0;            \
            }                                                                       \
        } else {   /* in tiles of 16 k: the tile's rows of dst stay in cache */   \
            for (ptrdiff_t k0 = 0; k0 < K; k0 += 16) {                              \
                const ptrdiff_t kn = K - k0 < 16 ? K - k0 : 16;                     \
                for (ptrdiff_t j = 0; j < NR; j++) {                                \
                    const T *row = w + (p0 + j) * ldb + k0;                         \
                    T *d = dst + k0 * NR + j;                                       \
                    if (j < nc) for (ptrdiff_t k = 0; k < kn; k++) d[k * NR] = row[k]; \
                    else for (ptrdiff_t k = 0; k < kn; k++) d[k * NR] = 0;          \
                }                                                                   \
            }                                                                       \
        }                                                                           \
    }                                                                               \
}                                                                                   \
                                                                                    \
/* rows i0..i0+R-1 of c, panel p (R a constant after inlining) */                   \
ATTR static inline __attribute__((always_inline)) void xpnn_sg_block_##SFX(         \
        const T *a, ptrdiff_t lda, const T *panel, ptrdiff_t K, T *c,               \
        ptrdiff_t ldc, ptrdiff_t nc, const int R) {                                 \
    V acc[MR][NV];                                                                  \
    for (int i = 0; i < R; i++)                                                     \
        for (int v = 0; v < (NV); v++) acc[i][v] = (V){0};                          \
    for (ptrdiff_t k = 0; k < K; k++) {                                             \
        const xpnn_sg_u_##SFX *b = (const xpnn_sg_u_##SFX *)(panel + k * (NV) * (L)); \
        for (int i = 0; i < R; i++) {                                               \
            const T s = a[i * lda + k];                                             \
            for (int v = 0; v < (NV); v++) acc[i][v] += b[v] * s;                   \
        }                                                                           \
    }                                                                               \
    /* values, not addresses, of acc leave the loop: its address taken, GCC      \
       would keep acc in memory through the k loop */                             \
    for (int i = 0; i < R; i++)                                                     \
        for (int v = 0; v < (NV); v++) {                                            \
            const V r = acc[i][v];                                                  \
            const ptrdiff_t j = v * (L);                                            \
            if (j + (L) <= nc) memcpy(c + i * ldc + j, &r, sizeof r);               \
            else for (ptrdiff_t l = 0; j + l < nc; l++) c[i * ldc + j + l] = r[l];  \
        }                                                                           \
}                                                                                   \
                                                                                    \
/* one function per row count R <= MR: inlined into one function, the      \
   blocks' sums were kept in memory through the k loop (GCC 12) */                \
XPNN_SG_ROWS(T, SFX, ATTR, MR, 1) XPNN_SG_ROWS(T, SFX, ATTR, MR, 2)                 \
XPNN_SG_ROWS(T, SFX, ATTR, MR, 3) XPNN_SG_ROWS(T, SFX, ATTR, MR, 4)                 \
XPNN_SG_ROWS(T, SFX, ATTR, MR, 5) XPNN_SG_ROWS(T, SFX, ATTR, MR, 6)                 \
                                                                                    \
/* c[:, p*NR : ...] for panels p0..p1-1: c (M, N) row stride ldc, a (M, K) row      \
   stride lda, bp packed by xpnn_sg_pack_ */                                        \
ATTR static void xpnn_sg_run_##SFX(const T *a, ptrdiff_t M, ptrdiff_t K,            \
                                   ptrdiff_t lda, const T *bp, ptrdiff_t N,         \
                                   T *c, ptrdiff_t ldc, ptrdiff_t p0, ptrdiff_t p1) { \
    const ptrdiff_t NR = (NV) * (L);                                                \
    void (*const rows[7])(const T *, ptrdiff_t, const T *, ptrdiff_t, T *,          \
                          ptrdiff_t, ptrdiff_t) = {                                 \
        0, xpnn_sg_rows1_##SFX, xpnn_sg_rows2_##SFX, xpnn_sg_rows3_##SFX,           \
        xpnn_sg_rows4_##SFX, xpnn_sg_rows5_##SFX, xpnn_sg_rows6_##SFX};             \
    for (ptrdiff_t p = p0; p < p1; p++) {                                           \
        const T *panel = bp + p * K * NR;                                           \
        const ptrdiff_t nc = N - p * NR < NR ? N - p * NR : NR;                     \
        for (ptrdiff_t i = 0; i < M; i += (MR)) {                                   \
            const ptrdiff_t r = M - i < (MR) ? M - i : (MR);                        \
            rows[r](a + i * lda, lda, panel, K, c + i * ldc + p * NR, ldc, nc);     \
        }                                                                           \
    }                                                                               \
}

/* rows R of a block (R <= MR <= 6) */
#define XPNN_SG_ROWS(T, SFX, ATTR, MR, R)                                           \
ATTR static __attribute__((noinline)) void xpnn_sg_rows##R##_##SFX(                 \
        const T *a, ptrdiff_t lda, const T *panel, ptrdiff_t K, T *c, ptrdiff_t ldc, \
        ptrdiff_t nc) {                                                             \
    xpnn_sg_block_##SFX(a, lda, panel, K, c, ldc, nc, (R) < (MR) ? (R) : (MR));     \
}

typedef float xpnn_sg_f16 __attribute__((vector_size(64)));
typedef float xpnn_sg_f8 __attribute__((vector_size(32)));
typedef float xpnn_sg_f4 __attribute__((vector_size(16)));
typedef double xpnn_sg_d8 __attribute__((vector_size(64)));
typedef double xpnn_sg_d4 __attribute__((vector_size(32)));
typedef double xpnn_sg_d2 __attribute__((vector_size(16)));

/* registers: AVX-512 has 32 (6 x 4 sums + 4), AVX2 and the baseline 16
   (4 x 3 sums + 3) */
XPNN_STEP_GEMM(float, xpnn_sg_f16, 16, 4, 6, XPNN_SG_V4, f_v4)
XPNN_STEP_GEMM(float, xpnn_sg_f8, 8, 3, 4, XPNN_SG_V3, f_v3)
XPNN_STEP_GEMM(float, xpnn_sg_f4, 4, 3, 4, , f_v0)
XPNN_STEP_GEMM(double, xpnn_sg_d8, 8, 4, 6, XPNN_SG_V4, d_v4)
XPNN_STEP_GEMM(double, xpnn_sg_d4, 4, 3, 4, XPNN_SG_V3, d_v3)
XPNN_STEP_GEMM(double, xpnn_sg_d2, 2, 3, 4, , d_v0)

/* which version this CPU runs: 4 (AVX-512), 3 (AVX2/FMA) or 0 */
static int xpnn_sg_level(void) {
#if XPNN_SG_HAVE_X86
    __builtin_cpu_init();
#if __GNUC__ >= 12   /* the level names: every feature of the level, and the OS's support */
    if (__builtin_cpu_supports("x86-64-v4")) return 4;
    if (__builtin_cpu_supports("x86-64-v3")) return 3;
#else
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq")
        && __builtin_cpu_supports("avx512vl")) return 4;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
        && __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2")) return 3;
#endif
#endif
    return 0;
}
