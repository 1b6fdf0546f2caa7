/* The fp32 products of attention (runtime/gemm_f32.h), plain and with B transposed: every path
 * this CPU runs and the reference, against the product evaluated in double, at every tile edge
 * (rows 1..9, columns 1..70 across the 4/16/32-column tiles), strides wider than the operands,
 * k = 0, and both overwrite and accumulate. Bound: each element is a sum of k fp32 products (plus the old C),
 * so it lies within (k + 1) u (|c| + sum |a b|) of the exact value, u = 2^-24. Writing past a
 * row's n columns would show in the guard columns, which must stay untouched. */
#include "test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "dot.h"
#include "gemm_f32.h"

#define TEST_RNG_SEED 0x6a09e667f3bcc909ull
#include "test_rng.h"

enum { GUARD = 5 };

typedef void gemm_fn(int m, int n, int k, const float *a, size_t lda, const float *b,
                     size_t ldb, float *c, size_t ldc, bool accumulate);

/* nt: b is stored transposed, (n, k) with row stride ldb, as gemm_f32_nt takes it. */
static int check_shape(int m, int n, int k, bool accumulate, gemm_fn *gemm, bool nt)
{
    const size_t lda = (size_t)k + 3, ldb = nt ? (size_t)k + 2 : (size_t)n + GUARD;
    const size_t ldc = (size_t)n + GUARD, b_len = nt ? (size_t)n * ldb : (size_t)k * ldb;
    float *a = malloc(((size_t)m * lda + 1) * sizeof(float));
    float *b = malloc((b_len + 1) * sizeof(float));
    float *c = malloc((size_t)m * ldc * sizeof(float));
    float *c0 = malloc((size_t)m * ldc * sizeof(float));
    for (size_t i = 0; i < (size_t)m * lda; i++)
        a[i] = rng_uniform(-1, 1);
    for (size_t i = 0; i < b_len; i++)
        b[i] = rng_uniform(-2, 2);
    for (size_t i = 0; i < (size_t)m * ldc; i++)
        c[i] = c0[i] = rng_uniform(-1, 1);
    gemm(m, n, k, a, lda, b, ldb, c, ldc, accumulate);
    int bad = 0;
    for (int i = 0; i < m; i++) {
        for (int j = 0; j < n; j++) {
            const double old = accumulate ? c0[(size_t)i * ldc + (size_t)j] : 0;
            double exact = old, mag = fabs(old);
            for (int p = 0; p < k; p++) {
                const double prod =
                    (double)a[(size_t)i * lda + (size_t)p] *
                    b[nt ? (size_t)j * ldb + (size_t)p : (size_t)p * ldb + (size_t)j];
                exact += prod;
                mag += fabs(prod);
            }
            bad += !(fabs(c[(size_t)i * ldc + (size_t)j] - exact) <= (k + 1) * ldexp(1, -24) * mag);
        }
        for (int j = n; j < (int)ldc; j++) /* the guard columns */
            bad += c[(size_t)i * ldc + (size_t)j] != c0[(size_t)i * ldc + (size_t)j];
    }
    free(a);
    free(b);
    free(c);
    free(c0);
    return bad;
}

TEST(gemm_matches_the_exact_product_at_every_tile_edge)
{
    static const int ks[] = {0, 1, 7, 13, 64, 192};
    struct { const char *name; gemm_fn *fn; bool nt, runs; } paths[] = {
        {"reference", gemm_f32_ref, false, true},
        {"dispatch", gemm_f32, false, true},
        {"nt reference", gemm_f32_nt_ref, true, true},
        {"nt dispatch", gemm_f32_nt, true, true},
#if defined(__x86_64__)
        {"avx2", gemm_f32_avx2, false, dsq_dot_have_avx2()},
        {"avx512", gemm_f32_avx512, false, dsq_dot_have_avx512()},
        {"nt avx2", gemm_f32_nt_avx2, true, dsq_dot_have_avx2()},
        {"nt avx512", gemm_f32_nt_avx512, true, dsq_dot_have_avx512()},
#endif
    };
    printf("  paths run:");
    fflush(stdout);
    for (size_t pi = 0; pi < sizeof paths / sizeof *paths; pi++) {
        if (!paths[pi].runs)
            continue;
        printf(" %s,", paths[pi].name);
        for (int acc = 0; acc < 2; acc++)
            for (size_t ki = 0; ki < sizeof ks / sizeof *ks; ki++) {
                int bad = 0;
                for (int m = 1; m <= 13; m++) /* two tiles of six rows and one over */
                    for (int n = 1; n <= 70; n += (n < 40 ? 1 : 7))
                        bad += check_shape(m, n, ks[ki], acc, paths[pi].fn, paths[pi].nt);
                CHECK_MSG(bad == 0, "%s, k %d, %s: %d elements off", paths[pi].name, ks[ki],
                          acc ? "accumulate" : "overwrite", bad);
            }
    }
    printf("\n");
}
