/* Fused dot kernels (quant/dot.h) and the CPU matmul built on them: the AVX2 path and the scalar
 * reference against the widened reference (dsq_dequant_row, then a double-precision dot), with
 * element order checked exactly on one-hot vectors; the fast row widening against
 * dsq_dequant_row, bit for bit; then a timing print.
 *
 * Error bound. With u = 2^-24 and S = sum over k of |w_k x_k| (for q4, |d q_k x_k| + |m x_k|, as
 * the kernels sum the d and m terms apart), any order of fp32 sums of K terms, plus the few
 * roundings per group for d and m, stays within (K + 8) u S of the exact value to first order;
 * the widened row is exact except q4's d q + m (one rounding, within u S). So each path vs the
 * double dot of the widened row: |diff| <= (K + 8) u S; AVX2 vs reference: twice that. A wrong
 * element order or a dropped term misses by a sizeable part of S, far above the bound
 * ((K + 8) u <= 7e-4 for K <= 11008). */
#include "test.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <omp.h>

#include "backend.h"
#include "backend_cpu.h"
#include "dequant.h"
#include "dot.h"
#include "float16.h"
#include "q4.h"
#include "q8.h"
#include "types.h"

#define TEST_RNG_SEED 0x9e3779b97f4a7c15ull
#include "test_rng.h"

static int rng_int(int lo, int hi) /* inclusive */
{
    return lo + (int)(rng_next() % (uint64_t)(hi - lo + 1));
}

static const uint32_t all_types[] = {DSQ_TYPE_F32, DSQ_TYPE_F16, DSQ_TYPE_BF16,
                                     DSQ_TYPE_Q8,  DSQ_TYPE_Q4,  DSQ_TYPE_Q6};
#define N_TYPES (sizeof all_types / sizeof all_types[0])
static const uint32_t all_groups[] = {32, 64, 128};

static bool is_quant(uint32_t type)
{
    return type == DSQ_TYPE_Q8 || type == DSQ_TYPE_Q4 || type == DSQ_TYPE_Q6;
}

/* Activations: mostly of order 1, some exact zeros, about 1% outliers 50x larger. */
static void random_x(float *x, uint64_t n)
{
    for (uint64_t k = 0; k < n; k++) {
        float v = rng_uniform(-1, 1) + rng_uniform(-1, 1) + rng_uniform(-1, 1);
        uint64_t c = rng_next() % 100;
        x[k] = c == 0 ? 50 * v : c == 1 ? 0 : v;
    }
}

/* A (rows, cols) tensor of random contents in the type's layout; free() it. */
static void *random_matrix(uint32_t type, uint64_t rows, uint64_t cols, uint32_t group)
{
    uint64_t bytes = 0;
    if (!dsq_type_nbytes(type, rows, cols, group, &bytes))
        return NULL;
    uint8_t *m = malloc(bytes ? bytes : 1);
    const uint64_t n = rows * cols;
    switch (type) {
    case DSQ_TYPE_F32:
        for (uint64_t i = 0; i < n; i++)
            ((float *)m)[i] = rng_uniform(-0.1f, 0.1f);
        break;
    case DSQ_TYPE_F16:
    case DSQ_TYPE_BF16:
        for (uint64_t i = 0; i < n; i++) {
            /* some tiny values: f16 subnormals */
            float v = rng_next() % 50 ? rng_uniform(-0.1f, 0.1f) : rng_uniform(-3e-6f, 3e-6f);
            ((uint16_t *)m)[i] = type == DSQ_TYPE_F16 ? dsq_f32_to_f16(v) : dsq_f32_to_bf16(v);
        }
        break;
    case DSQ_TYPE_Q8: {
        for (uint64_t i = 0; i < n; i++)
            ((int8_t *)m)[i] = (int8_t)rng_int(-127, 127);
        uint16_t *d = (uint16_t *)(m + n);
        for (uint64_t g = 0; g < n / group; g++)
            d[g] = dsq_f32_to_f16(rng_uniform(-0.002f, 0.002f));
        break;
    }
    case DSQ_TYPE_Q4: {
        for (uint64_t i = 0; i < n / 2; i++)
            m[i] = (uint8_t)rng_next();
        uint16_t *dm = (uint16_t *)(m + n / 2);
        for (uint64_t g = 0; g < n / group; g++) {
            float d = rng_uniform(0.0005f, 0.02f);
            dm[2 * g] = dsq_f32_to_f16(d);
            dm[2 * g + 1] = dsq_f32_to_f16(d * rng_uniform(-15, 5));
        }
        break;
    }
    case DSQ_TYPE_Q6: { /* any bytes are valid codes in both planes */
        for (uint64_t i = 0; i < 3 * n / 4; i++)
            m[i] = (uint8_t)rng_next();
        uint16_t *d = (uint16_t *)(m + 3 * n / 4);
        for (uint64_t g = 0; g < n / group; g++)
            d[g] = dsq_f32_to_f16(rng_uniform(-0.004f, 0.004f));
        break;
    }
    }
    return m;
}

/* exact: the widened row (dsq_dequant_row) dotted with x in double. mag: S of the bound above. */
static void widened_dot(uint32_t type, const void *base, uint64_t rows, uint64_t cols,
                        uint32_t group, uint64_t r, const float *x, double *exact, double *mag)
{
    float *w = malloc(cols * sizeof(float));
    dsq_dequant_row(type, base, rows, cols, group, r, w);
    double e = 0, s = 0;
    for (uint64_t k = 0; k < cols; k++) {
        e += (double)w[k] * x[k];
        if (type == DSQ_TYPE_Q4) {
            const uint8_t b = ((const uint8_t *)base)[(r * cols + k) / 2];
            const int q = k & 1 ? b >> 4 : b & 15;
            const uint16_t *dm =
                dsq_q4_scales(base, rows, cols) + 2 * (r * (cols / group) + k / group);
            s += (fabs((double)dsq_f16_to_f32(dm[0]) * q) + fabs(dsq_f16_to_f32(dm[1]))) *
                 fabs(x[k]);
        } else {
            s += fabs((double)w[k] * x[k]);
        }
    }
    free(w);
    *exact = e;
    *mag = s;
}

static double bound(uint64_t cols, double mag)
{
    return (double)(cols + 8) * ldexp(1, -24) * mag;
}

static bool have_avx2(void)
{
#if defined(__x86_64__)
    return dsq_dot_have_avx2();
#else
    return false;
#endif
}

static float dot_avx2(uint32_t type, const void *base, uint64_t rows, uint64_t cols, uint32_t group,
                      uint64_t r, const float *x, const float *xsum)
{
#if defined(__x86_64__)
    return dsq_dot_row_avx2(type, base, rows, cols, group, r, x, xsum);
#else
    return dsq_dot_row_ref(type, base, rows, cols, group, r, x, xsum);
#endif
}

TEST(xsums_only_for_q4)
{
    CHECK_EQ_INT(dsq_dot_xsum_len(DSQ_TYPE_Q4, 1408, 64), 22);
    CHECK_EQ_INT(dsq_dot_xsum_len(DSQ_TYPE_Q8, 1408, 64), 0);
    CHECK_EQ_INT(dsq_dot_xsum_len(DSQ_TYPE_F32, 1408, 0), 0);
    float x[128], s[4] = {-1, -1, -1, -1};
    for (int k = 0; k < 128; k++)
        x[k] = (float)k;
    dsq_dot_xsums(DSQ_TYPE_Q4, x, 128, 32, s);
    CHECK(s[0] == 496 && s[1] == 1520 && s[2] == 2544 && s[3] == 3568);
    s[0] = -1;
    dsq_dot_xsums(DSQ_TYPE_Q8, x, 128, 32, s);
    CHECK(s[0] == -1);
}

/* With x one-hot at k every path must return element k exactly (one nonzero product, and d q is
 * exact in fp32), so this pins element order: nibbles, sign extension, lanes, tails. */
TEST(one_hot_gives_each_element_exactly)
{
    const uint64_t rows = 3, cols = 256;
    float *x = calloc(cols, sizeof(float)), *w = malloc(cols * sizeof(float));
    float xsum[8];
    for (size_t t = 0; t < N_TYPES; t++) {
        for (size_t gi = 0; gi < 3; gi++) {
            const uint32_t type = all_types[t], group = is_quant(type) ? all_groups[gi] : 0;
            const uint64_t c = is_quant(type) ? cols : cols - 3 * gi; /* float tails too */
            void *m = random_matrix(type, rows, c, group);
            int bad = 0;
            for (uint64_t r = 0; r < rows; r++) {
                dsq_dequant_row(type, m, rows, c, group, r, w);
                for (uint64_t k = 0; k < c; k++) {
                    x[k] = 1;
                    dsq_dot_xsums(type, x, c, group, xsum);
                    bad += dsq_dot_row_ref(type, m, rows, c, group, r, x, xsum) != w[k];
                    bad += dsq_dot_row_ref(type, m, rows, c, group, r, x, NULL) != w[k];
                    if (have_avx2()) {
                        bad += dot_avx2(type, m, rows, c, group, r, x, xsum) != w[k];
                        bad += dot_avx2(type, m, rows, c, group, r, x, NULL) != w[k];
                    }
                    x[k] = 0;
                }
            }
            CHECK_MSG(bad == 0, "%s group %u: %d elements differ", dsq_type_info(type)->name, group,
                      bad);
            free(m);
        }
    }
    free(x);
    free(w);
}

/* The largest error seen, in units of u S, per type: paths vs exact, AVX2 vs reference. */
static double worst_ref[N_TYPES], worst_avx[N_TYPES], worst_pair[N_TYPES];

static void check_shape(size_t ti, uint32_t group, uint64_t rows, uint64_t cols)
{
    const uint32_t type = all_types[ti];
    void *m = random_matrix(type, rows, cols, group);
    CHECK(m != NULL);
    if (!m)
        return;
    float *x = malloc(cols * sizeof(float));
    float *xsum = malloc((dsq_dot_xsum_len(type, cols, group) + 1) * sizeof(float));
    int bad = 0;
    for (int v = 0; v < 2; v++) {
        random_x(x, cols);
        dsq_dot_xsums(type, x, cols, group, xsum);
        for (uint64_t r = 0; r < rows; r++) {
            double exact, mag;
            widened_dot(type, m, rows, cols, group, r, x, &exact, &mag);
            const double b = bound(cols, mag), unit = ldexp(mag, -24);
            const float ref = dsq_dot_row_ref(type, m, rows, cols, group, r, x, xsum);
            bad += ref != dsq_dot_row_ref(type, m, rows, cols, group, r, x, NULL);
            bad += !(fabs(ref - exact) <= b);
            if (unit > 0 && fabs(ref - exact) / unit > worst_ref[ti])
                worst_ref[ti] = fabs(ref - exact) / unit;
            if (!have_avx2())
                continue;
            const float avx[2] = {dot_avx2(type, m, rows, cols, group, r, x, xsum),
                                  dot_avx2(type, m, rows, cols, group, r, x, NULL)};
            for (int i = 0; i < 2; i++) {
                bad += !(fabs(avx[i] - exact) <= b);
                bad += !(fabs((double)avx[i] - ref) <= 2 * b);
                if (unit > 0 && fabs(avx[i] - exact) / unit > worst_avx[ti])
                    worst_avx[ti] = fabs(avx[i] - exact) / unit;
                if (unit > 0 && fabs((double)avx[i] - ref) / unit > worst_pair[ti])
                    worst_pair[ti] = fabs((double)avx[i] - ref) / unit;
            }
        }
    }
    CHECK_MSG(bad == 0, "%s group %u, %llu x %llu: %d dots out of bound", dsq_type_info(type)->name,
              group, (unsigned long long)rows, (unsigned long long)cols, bad);
    free(m);
    free(x);
    free(xsum);
}

TEST(paths_agree_with_widened_reference)
{
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        const uint32_t type = all_types[ti];
        for (size_t gi = 0; gi < 3; gi++) {
            const uint32_t g = all_groups[gi], group = is_quant(type) ? g : 0;
            check_shape(ti, group, 4, 1408);
            check_shape(ti, group, 2, (10944 + g / 2) / g * g); /* 10944 or the nearest multiple */
            for (int i = 0; i < 4; i++)
                check_shape(ti, group, (uint64_t)rng_int(1, 6), (uint64_t)rng_int(1, 48) * g);
            if (!is_quant(type))
                for (int i = 0; i < 4; i++)
                    check_shape(ti, 0, (uint64_t)rng_int(1, 4), (uint64_t)rng_int(1, 300));
        }
    }
    printf("max |error| in units of 2^-24 S (bound: K + 8, K up to 11008):\n");
    for (size_t ti = 0; ti < N_TYPES; ti++)
        printf("  %-5s reference vs exact %7.2f   avx2 vs exact %7.2f   avx2 vs reference %7.2f\n",
               dsq_type_info(all_types[ti])->name, worst_ref[ti], worst_avx[ti], worst_pair[ti]);
}

TEST(dispatch_picks_avx2_when_present_and_can_be_forced)
{
    const uint64_t rows = 2, cols = 1408;
    void *m = random_matrix(DSQ_TYPE_Q4, rows, cols, 64);
    float x[1408];
    random_x(x, cols);
    CHECK_STR_CONTAINS(dsq_dot_path(), have_avx2() ? "avx2" : "scalar");
    const float best = dsq_dot_row(DSQ_TYPE_Q4, m, rows, cols, 64, 1, x, NULL);
    CHECK(best == (have_avx2() ? dot_avx2(DSQ_TYPE_Q4, m, rows, cols, 64, 1, x, NULL)
                               : dsq_dot_row_ref(DSQ_TYPE_Q4, m, rows, cols, 64, 1, x, NULL)));
    dsq_dot_force_reference(true);
    CHECK_STR_CONTAINS(dsq_dot_path(), "scalar");
    CHECK(dsq_dot_row(DSQ_TYPE_Q4, m, rows, cols, 64, 1, x, NULL) ==
          dsq_dot_row_ref(DSQ_TYPE_Q4, m, rows, cols, 64, 1, x, NULL));
    dsq_dot_force_reference(false);
    CHECK_STR_CONTAINS(dsq_dot_path(), have_avx2() ? "avx2" : "scalar");
    free(m);
}

/* dsq_dequant_row_fast gives dsq_dequant_row's floats bit for bit (quant/dequant.h says why they
 * can be equal), on the AVX2 path and when forced to the reference: every type and group, odd
 * row counts, float rows whose length leaves a scalar tail. */
static int dequant_mismatches(uint32_t type, uint32_t group, uint64_t rows, uint64_t cols)
{
    void *m = random_matrix(type, rows, cols, group);
    float *want = malloc(cols * sizeof(float)), *got = malloc(cols * sizeof(float));
    int bad = 0;
    for (uint64_t r = 0; r < rows; r++) {
        dsq_dequant_row(type, m, rows, cols, group, r, want);
        dsq_dequant_row_fast(type, m, rows, cols, group, r, got);
        bad += memcmp(want, got, cols * sizeof(float)) != 0;
    }
    free(m);
    free(want);
    free(got);
    return bad;
}

TEST(fast_dequant_equals_reference_bit_for_bit)
{
    for (int forced = 0; forced < 2; forced++) {
        dsq_dot_force_reference(forced);
        for (size_t ti = 0; ti < N_TYPES; ti++) {
            const uint32_t type = all_types[ti];
            int bad = 0;
            for (size_t gi = 0; gi < 3; gi++) {
                const uint32_t g = all_groups[gi], group = is_quant(type) ? g : 0;
                bad += dequant_mismatches(type, group, 3, 512);
                for (int i = 0; i < 4; i++)
                    bad += dequant_mismatches(type, group, (uint64_t)rng_int(1, 7),
                                              (uint64_t)rng_int(1, 48) * g);
                if (!is_quant(type))
                    bad += dequant_mismatches(type, 0, (uint64_t)rng_int(1, 5),
                                              (uint64_t)rng_int(1, 300));
            }
            if (bad)
                printf("  %s%s: %d rows differ\n", dsq_type_info(type)->name,
                       forced ? " (forced reference)" : "", bad);
            CHECK_EQ_INT(bad, 0);
        }
    }
    dsq_dot_force_reference(false);
}

/* dsq_dequant_rows_sum is, bit for bit, the rows widened by dsq_dequant_row and added to y one
 * after another: x[i] times each value then the add, on the reference, and one fused
 * multiply-add per value on the AVX2 path (what attention's widen-and-axpy gave before it). Every
 * type and group, odd row counts and lengths (plain floats with a scalar tail), forced and not. */
static int rows_sum_mismatches(uint32_t type, uint32_t group, int n, uint64_t cols, bool fused)
{
    const uint64_t rows = (uint64_t)n + 3;
    void *m = random_matrix(type, rows, cols, group);
    float *x = malloc((size_t)n * sizeof(float)), *row = malloc(cols * sizeof(float));
    float *want = calloc(cols, sizeof(float)), *got = malloc(cols * sizeof(float));
    random_x(x, (uint64_t)n);
    for (int i = 0; i < n; i++) {
        dsq_dequant_row(type, m, rows, cols, group, 2 + (uint64_t)i, row);
        for (uint64_t k = 0; k < cols; k++) {
            const float product = x[i] * row[k];
            want[k] = fused ? fmaf(x[i], row[k], want[k]) : want[k] + product;
        }
    }
    dsq_dequant_rows_sum(type, m, rows, cols, group, 2, n, x, got, row);
    const int bad = memcmp(want, got, cols * sizeof(float)) != 0;
    free(m);
    free(x);
    free(row);
    free(want);
    free(got);
    return bad;
}

TEST(rows_sum_is_the_widened_rows_added_in_order)
{
    for (int forced = 0; forced < 2; forced++) {
        dsq_dot_force_reference(forced);
        const bool fused = !forced && have_avx2();
        for (size_t ti = 0; ti < N_TYPES; ti++) {
            const uint32_t type = all_types[ti];
            int bad = 0;
            for (size_t gi = 0; gi < 3; gi++) {
                const uint32_t g = all_groups[gi], group = is_quant(type) ? g : 0;
                bad += rows_sum_mismatches(type, group, 128, 512, fused); /* a V2 W_UK head */
                for (int i = 0; i < 4; i++)
                    bad += rows_sum_mismatches(type, group, rng_int(1, 9),
                                               (uint64_t)rng_int(1, 12) * g, fused);
                if (!is_quant(type))
                    bad += rows_sum_mismatches(type, 0, rng_int(1, 5), (uint64_t)rng_int(1, 300),
                                               fused);
            }
            CHECK_MSG(bad == 0, "%s%s: %d sums differ", dsq_type_info(type)->name,
                      forced ? " (forced reference)" : "", bad);
        }
    }
    dsq_dot_force_reference(false);
}

/* The float tiles (f32, bf16, f16 rows by 1-2 tokens on AVX2, 1-4 on AVX-512) against the exact
 * dot of each row and token, at odd row counts and lengths that leave a scalar tail. */
TEST(float_tile_within_bound_of_exact)
{
    const bool avx512 = dsq_dot_have_avx512();
    printf("  tiles run: avx2%s\n", avx512 ? " avx512" : "");
    if (!have_avx2()) {
        printf("  skipped: no AVX2\n");
        return;
    }
    const uint64_t rows = 7, lens[] = {203, 1408};
    const uint32_t plain[] = {DSQ_TYPE_F32, DSQ_TYPE_BF16, DSQ_TYPE_F16};
    for (size_t li = 0; li < 2; li++)
        for (size_t ti = 0; ti < 3; ti++) {
            const uint64_t cols = lens[li];
            const uint32_t type = plain[ti];
            void *w = random_matrix(type, rows, cols, 0);
            float *x = malloc(4 * cols * sizeof(float));
            random_x(x, 4 * cols);
            const float *xs[4] = {x, x + cols, x + 2 * cols, x + 3 * cols};
            int bad = 0;
            for (int wide = 0; wide <= avx512; wide++)
                for (int nt = 1; nt <= (wide ? 4 : 2); nt++)
                    for (int nr = 1; nr <= 4; nr++)
                        for (uint64_t r0 = 0; r0 + (uint64_t)nr <= rows; r0 += (uint64_t)nr + 1) {
                            float out[4][4];
                            if (wide)
                                dsq_dot_tile_avx512(type, w, cols, r0, nr, xs, nt, out[0], 4);
                            else
                                dsq_dot_tile_avx2(type, w, cols, r0, nr, xs, nt, out[0], 4);
                            for (int t = 0; t < nt; t++)
                                for (int i = 0; i < nr; i++) {
                                    double exact, mag;
                                    widened_dot(type, w, rows, cols, 0, r0 + (uint64_t)i, xs[t],
                                                &exact, &mag);
                                    bad += !(fabs(out[t][i] - exact) <= bound(cols, mag));
                                }
                        }
            CHECK_MSG(bad == 0, "%s cols %llu: %d outside the bound", dsq_type_info(type)->name,
                      (unsigned long long)cols, bad);
            free(w);
            free(x);
        }
}

/* The backend's matmul with f32 activations: every (token, row) within the bound of the exact
 * dot, serial and parallel sizes, row counts that are not a multiple of the row block; forced to
 * the reference it gives the reference's bits. (tests/test_qdot.c covers int8 activations.) */
TEST(cpu_matmul_matches_reference)
{
    dsq_cpu_set_int8_activations(false);
    const int shapes[][3] = {{37, 256, 3}, {300, 1408, 4}}; /* rows, cols, tokens */
    for (size_t s = 0; s < 2; s++) {
        const int rows = shapes[s][0], cols = shapes[s][1], n = shapes[s][2];
        float *x = malloc((size_t)n * cols * sizeof(float));
        float *y = malloc((size_t)n * rows * sizeof(float));
        random_x(x, (uint64_t)n * cols);
        for (size_t ti = 0; ti < N_TYPES; ti++) {
            const uint32_t type = all_types[ti], group = is_quant(type) ? 64 : 0;
            dsq_matrix w = {random_matrix(type, rows, cols, group), type, rows, cols, group, NULL};
            for (int forced = 0; forced < 2; forced++) {
                dsq_dot_force_reference(forced);
                dsq_backend_cpu.matmul(&w, x, y, n);
                int bad = 0;
                for (int t = 0; t < n; t++) {
                    for (int r = 0; r < rows; r++) {
                        const float *xt = x + (size_t)t * cols, got = y[(size_t)t * rows + r];
                        double exact, mag;
                        widened_dot(type, w.data, rows, cols, group, r, xt, &exact, &mag);
                        bad += !(fabs(got - exact) <= bound(cols, mag));
                        if (forced)
                            bad += got !=
                                   dsq_dot_row_ref(type, w.data, rows, cols, group, r, xt, NULL);
                    }
                }
                CHECK_MSG(bad == 0, "%s %dx%d n=%d forced=%d: %d wrong", dsq_type_info(type)->name,
                          rows, cols, n, forced, bad);
            }
            dsq_dot_force_reference(false);
            free((void *)w.data);
        }
        free(x);
        free(y);
    }
    dsq_cpu_set_int8_activations(true);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The matmul before the fused kernels, on one thread: widen each row, then an f32 dot per token. */
static void widen_matmul(const dsq_matrix *w, const float *x, float *y, int n)
{
    float *row = malloc((size_t)w->cols * sizeof(float));
    for (int r = 0; r < w->rows; r++) {
        dsq_dequant_row(w->type, w->data, (uint64_t)w->rows, (uint64_t)w->cols, w->group,
                        (uint64_t)r, row);
        for (int t = 0; t < n; t++) {
            float sum = 0;
            const float *xt = x + (size_t)t * w->cols;
#pragma omp simd reduction(+ : sum)
            for (int k = 0; k < w->cols; k++)
                sum += row[k] * xt[k];
            y[(size_t)t * w->rows + r] = sum;
        }
    }
    free(row);
}

/* One thread, fused kernels over every row of w for n tokens. */
static void fused_matmul_1t(const dsq_matrix *w, const float *x, float *y, int n)
{
    const uint64_t ns = dsq_dot_xsum_len(w->type, (uint64_t)w->cols, w->group);
    float *xsum = malloc(((size_t)n * ns + 1) * sizeof(float));
    for (int t = 0; t < n; t++)
        dsq_dot_xsums(w->type, x + (size_t)t * w->cols, (uint64_t)w->cols, w->group,
                      xsum + (size_t)t * ns);
    for (int r = 0; r < w->rows; r++)
        for (int t = 0; t < n; t++)
            y[(size_t)t * w->rows + r] =
                dsq_dot_row(w->type, w->data, (uint64_t)w->rows, (uint64_t)w->cols, w->group,
                            (uint64_t)r, x + (size_t)t * w->cols, xsum + (size_t)t * ns);
    free(xsum);
}

/* Weight bytes read per second, best of repeated runs over about 0.2 s. */
static double gbps(void (*mm)(const dsq_matrix *, const float *, float *, int), const dsq_matrix *w,
                   const float *x, float *y, int n, uint64_t bytes)
{
    double best = 1e30, start = now();
    for (int i = 0; i < 3 || now() - start < 0.2; i++) {
        double t0 = now();
        mm(w, x, y, n);
        double dt = now() - t0;
        if (dt < best)
            best = dt;
    }
    return (double)bytes / best * 1e-9;
}

TEST(timing_2048x1408)
{
    const int rows = 2048, cols = 1408, nb = 16;
    float *x = malloc((size_t)nb * cols * sizeof(float));
    float *y = malloc((size_t)nb * rows * sizeof(float));
    random_x(x, (uint64_t)nb * cols);
    omp_set_dynamic(0); /* as dsq runs */
    printf("GB/s of weight bytes, %dx%d, group 64, fused path in use: %s\n", rows, cols,
           dsq_dot_path());
    printf("        one thread, batch 1     | one thread, batch %d (x%d) | backend, %d threads\n",
           nb, nb, omp_get_max_threads());
    printf("  type  widen+dot scalar   avx2 |   widen+dot  fused         | batch 1 (q8/q4: int8 x)\n");
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        const uint32_t type = all_types[ti], group = is_quant(type) ? 64 : 0;
        uint64_t bytes = 0;
        dsq_type_nbytes(type, rows, cols, group, &bytes);
        dsq_matrix w = {random_matrix(type, rows, cols, group), type, rows, cols, group, NULL};
        const double old = gbps(widen_matmul, &w, x, y, 1, bytes);
        dsq_dot_force_reference(true);
        const double scalar = gbps(fused_matmul_1t, &w, x, y, 1, bytes);
        dsq_dot_force_reference(false);
        const double fast = have_avx2() ? gbps(fused_matmul_1t, &w, x, y, 1, bytes) : 0;
        const double old_b = nb * gbps(widen_matmul, &w, x, y, nb, bytes);
        const double fused_b = nb * gbps(fused_matmul_1t, &w, x, y, nb, bytes);
        const double mm = gbps(dsq_backend_cpu.matmul, &w, x, y, 1, bytes);
        printf("  %-5s %9.2f %6.2f %6.2f | %11.2f %6.2f         | %7.2f\n",
               dsq_type_info(type)->name, old, scalar, fast, old_b, fused_b, mm);
        free((void *)w.data);
    }
    free(x);
    free(y);
}
