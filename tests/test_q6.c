/* q6 (quant/q6.h): the layout against an encoder written out from the header's words, the
 * quantizer's error bounds and search, and the float dot against the dequantized row. The int8
 * kernels are in tests/test_qdot.c with q8 and q4. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dequant.h"
#include "dot.h"
#include "float16.h"
#include "q6.h"
#include "quantize.h"
#include "test.h"
#include "types.h"

#define TEST_RNG_SEED 0x6a09e667f3bcc909ull
#include "test_rng.h"

/* A planar q6 tensor from codes u[rows][cols] and scales d[rows][cols / group], encoded from the
 * header's description: nibble plane as q4's, then 8 top-bit bytes per run of 32 where byte b
 * holds elements 2b, 16 + 2b, 2b + 1, 17 + 2b in bit pairs 0-3, then the f16 scales. */
static uint8_t *encode(const uint8_t *u, const uint16_t *d, uint64_t rows, uint64_t cols,
                       uint32_t group)
{
    uint8_t *m = calloc(1, dsq_q6_bytes(rows, cols, group));
    uint8_t *top = m + rows * cols / 2;
    for (uint64_t r = 0; r < rows; r++)
        for (uint64_t k = 0; k < cols; k += 2)
            m[(r * cols + k) / 2] =
                (uint8_t)((u[r * cols + k] & 15) | (u[r * cols + k + 1] & 15) << 4);
    for (uint64_t run = 0; run < rows * cols / 32; run++) {
        const uint8_t *ur = u + run * 32;
        for (int b = 0; b < 8; b++)
            top[run * 8 + (uint64_t)b] =
                (uint8_t)(ur[2 * b] >> 4 | (ur[16 + 2 * b] >> 4) << 2 |
                          (ur[2 * b + 1] >> 4) << 4 | (ur[17 + 2 * b] >> 4) << 6);
    }
    memcpy(m + rows * cols * 3 / 4, d, rows * (cols / group) * sizeof(uint16_t));
    return m;
}

/* Rows of 96 (three runs, groups of 32) and of 128 (groups of 64 and 128): every element reads
 * back as d * (u - 32) through the header's getter and the reference dequantizer. */
TEST(layout_matches_the_header)
{
    static const struct { uint64_t rows, cols; uint32_t group; } shapes[] = {
        {3, 96, 32}, {5, 128, 64}, {2, 128, 128}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const uint64_t rows = shapes[s].rows, cols = shapes[s].cols;
        const uint32_t group = shapes[s].group;
        uint8_t *u = malloc(rows * cols);
        uint16_t *d = malloc(rows * (cols / group) * sizeof(uint16_t));
        for (uint64_t i = 0; i < rows * cols; i++)
            u[i] = (uint8_t)(rng_next() % 64);
        for (uint64_t g = 0; g < rows * (cols / group); g++)
            d[g] = dsq_f32_to_f16(rng_uniform(-0.01f, 0.01f));
        uint8_t *m = encode(u, d, rows, cols, group);
        uint64_t bytes;
        CHECK(dsq_type_nbytes(DSQ_TYPE_Q6, rows, cols, group, &bytes));
        CHECK_EQ_INT(bytes, rows * cols * 3 / 4 + 2 * rows * (cols / group));
        float *row = malloc(cols * sizeof(float));
        int bad = 0;
        for (uint64_t r = 0; r < rows; r++) {
            dsq_dequant_row(DSQ_TYPE_Q6, m, rows, cols, group, r, row);
            for (uint64_t k = 0; k < cols; k++) {
                const float want = dsq_f16_to_f32(d[r * (cols / group) + k / group]) *
                                   (float)(u[r * cols + k] - 32);
                bad += dsq_q6_code(m, rows, cols, r, k) != u[r * cols + k];
                bad += dsq_q6_get(m, rows, cols, group, r, k) != want || row[k] != want;
            }
        }
        CHECK_MSG(bad == 0, "%llux%llu group %u: %d elements wrong", (unsigned long long)rows,
                  (unsigned long long)cols, group, bad);
        free(u);
        free(d);
        free(m);
        free(row);
    }
}

/* Quantizes rows x cols values (search or plain) into a planar tensor, dequantized into y. */
static uint8_t *quantize(const float *x, uint64_t rows, uint64_t cols, uint32_t group,
                         bool search, float *y)
{
    uint8_t *m = malloc(dsq_q6_bytes(rows, cols, group));
    uint8_t *codes = malloc(cols * 3 / 4);
    uint16_t *scales = (uint16_t *)(void *)(m + rows * cols * 3 / 4);
    for (uint64_t r = 0; r < rows; r++) {
        uint16_t *sr = scales + r * (cols / group);
        if (search)
            dsq_quantize_row(DSQ_TYPE_Q6, x + r * cols, cols, group, NULL, codes, sr, NULL);
        else
            dsq_quantize_row_absmax(DSQ_TYPE_Q6, x + r * cols, cols, group, codes, sr, NULL);
        /* the row comes as its nibbles, then its top bits: into the two planes */
        memcpy(m + r * cols / 2, codes, cols / 2);
        memcpy(m + rows * cols / 2 + r * cols / 4, codes + cols / 2, cols / 4);
    }
    for (uint64_t r = 0; r < rows; r++)
        dsq_dequant_row(DSQ_TYPE_Q6, m, rows, cols, group, r, y + r * cols);
    free(codes);
    return m;
}

static double group_err(const float *x, const float *y, uint64_t g, uint32_t group)
{
    double e = 0;
    for (uint64_t k = g * group; k < (g + 1) * group; k++)
        e += ((double)x[k] - y[k]) * ((double)x[k] - y[k]);
    return e;
}

/* The plain scale d = f16(xm / -32), xm the element of largest magnitude, so
 * |d| >= amax / 32 (1 - 2^-11) and x / d <= 32 / (1 - 2^-11) < 32.016 for every element.
 * Elements with x / d in [-32.5, 31.5] err by at most |d| / 2; the rest (only the opposite
 * sign of xm can pass 31.5, against the clamp at 31) by at most 1.016 |d|; xm itself sits on
 * code -32 up to the rounding of d: within 32 |d - xm / -32| <= 2^-11 |xm|. Plus fp32 slack
 * of 1e-6 amax. The search scores the plain scale first and keeps only strictly better ones,
 * so no group gets worse; on Gaussian data the uniform model (G - 1 errors of variance
 * d^2 / 12 per group: xm is exact) predicts the plain error to 5 %. */
TEST(quantizer_error_bounds_and_search)
{
    const uint64_t rows = 32, cols = 1408;
    float *x = malloc(rows * cols * sizeof(float));
    float *ya = malloc(rows * cols * sizeof(float)), *ys = malloc(rows * cols * sizeof(float));
    for (uint64_t i = 0; i < rows * cols; i++) /* sums of uniforms: near-Gaussian, sigma 0.02 */
        x[i] = 0.02f * (rng_uniform(-1, 1) + rng_uniform(-1, 1) + rng_uniform(-1, 1));
    static const uint32_t groups[] = {32, 64, 128};
    for (size_t gi = 0; gi < 3; gi++) {
        const uint32_t group = groups[gi];
        uint8_t *a = quantize(x, rows, cols, group, false, ya);
        uint8_t *s = quantize(x, rows, cols, group, true, ys);
        const uint16_t *da = (const uint16_t *)(void *)(a + rows * cols * 3 / 4);
        int bad = 0, worse = 0;
        double model = 0, ea = 0, es = 0;
        for (uint64_t g = 0; g < rows * cols / group; g++) {
            float amax = 0, xm = 0;
            for (uint64_t k = g * group; k < (g + 1) * group; k++)
                if (fabsf(x[k]) > amax) {
                    amax = fabsf(x[k]);
                    xm = x[k];
                }
            const double d = dsq_f16_to_f32(da[g]), slack = 1e-6 * amax;
            bad += !(fabs(d - xm / -32.0) <= ldexp(amax / 32.0, -11));
            for (uint64_t k = g * group; k < (g + 1) * group; k++) {
                const double err = fabs((double)x[k] - ya[k]), q = x[k] / d;
                const double bound = x[k] == xm                ? ldexp(amax, -11)
                                     : q >= -32.5 && q <= 31.5 ? fabs(d) / 2
                                                               : 1.016 * fabs(d);
                bad += !(err <= bound + slack);
            }
            const double ga = group_err(x, ya, g, group), gs = group_err(x, ys, g, group);
            worse += gs > ga;
            ea += ga;
            es += gs;
            model += (double)(group - 1) * d * d / 12;
        }
        printf("  q6 G=%-3u plain rel. RMSE %.4f%% (model %.4f%%), search %.4f%%\n", group,
               100 * sqrt(ea / (rows * cols * 0.02 * 0.02)),
               100 * sqrt(model / (rows * cols * 0.02 * 0.02)),
               100 * sqrt(es / (rows * cols * 0.02 * 0.02)));
        CHECK_MSG(bad == 0, "G=%u: %d elements or scales outside the bounds", group, bad);
        CHECK_EQ_INT(worse, 0);
        CHECK_NEAR(ea / model, 1.0, 0.05);
        CHECK(es < ea); /* the search finds something on this many groups */
        free(a);
        free(s);
    }
    free(x);
    free(ya);
    free(ys);
}

/* A zero group stores d = 0 and reads back as zeros; a group whose largest magnitude is 1 has
 * d = -1/32 exactly (an f16 value) and gives that element back exactly; importance NULL and all
 * ones give the same bytes. */
TEST(quantizer_edge_cases)
{
    float x[64] = {0}, y[64];
    for (int k = 32; k < 64; k++)
        x[k] = 0.9f * (float)(k - 48) / 16;
    x[40] = 1.0f;
    uint8_t *m = quantize(x, 1, 64, 32, true, y);
    const uint16_t *d = (const uint16_t *)(void *)(m + 48);
    CHECK(dsq_f16_to_f32(d[0]) == 0);
    for (int k = 0; k < 32; k++)
        CHECK(y[k] == 0);
    uint8_t *p = quantize(x, 1, 64, 32, false, y);
    CHECK(dsq_f16_to_f32(((const uint16_t *)(void *)(p + 48))[1]) == -1.0f / 32);
    CHECK(y[40] == 1.0f);
    float ones[64];
    uint8_t c1[48], c2[48];
    uint16_t s1[2], s2[2];
    for (int k = 0; k < 64; k++)
        ones[k] = 1;
    dsq_quantize_row(DSQ_TYPE_Q6, x, 64, 32, NULL, c1, s1, NULL);
    dsq_quantize_row(DSQ_TYPE_Q6, x, 64, 32, ones, c2, s2, NULL);
    CHECK(memcmp(c1, c2, sizeof c1) == 0 && memcmp(s1, s2, sizeof s1) == 0);
    free(m);
    free(p);
}

/* The float dots of a q6 row, the reference and the fastest path this CPU runs, against the
 * dequantized row in double: fp32 sums of K products stay within (K + 8) u sum |w x| in any
 * order (tests/test_dot.c derives the bound and checks the AVX2 kernel's element order). */
TEST(float_dot_matches_the_dequantized_row)
{
    const uint64_t rows = 7, cols = 2048;
    const uint32_t group = 64;
    float *w = malloc(rows * cols * sizeof(float)), *y = malloc(rows * cols * sizeof(float));
    float x[2048];
    for (uint64_t i = 0; i < rows * cols; i++)
        w[i] = rng_uniform(-0.05f, 0.05f);
    for (uint64_t k = 0; k < cols; k++)
        x[k] = rng_uniform(-2, 2);
    uint8_t *m = quantize(w, rows, cols, group, true, y);
    int bad = 0;
    for (uint64_t r = 0; r < rows; r++) {
        double exact = 0, mag = 0;
        for (uint64_t k = 0; k < cols; k++) {
            exact += (double)y[r * cols + k] * x[k];
            mag += fabs((double)y[r * cols + k] * x[k]);
        }
        const double bound = (double)(cols + 8) * ldexp(1, -24) * mag;
        const float got = dsq_dot_row(DSQ_TYPE_Q6, m, rows, cols, group, r, x, NULL);
        const float ref = dsq_dot_row_ref(DSQ_TYPE_Q6, m, rows, cols, group, r, x, NULL);
        bad += !(fabs(got - exact) <= bound);
        bad += !(fabs(ref - exact) <= bound);
    }
    CHECK_MSG(bad == 0, "%d rows off", bad);
    free(w);
    free(y);
    free(m);
}
