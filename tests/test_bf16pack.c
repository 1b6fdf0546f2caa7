/* The packed bf16 layout and kernel (quant/bf16pack.h): every element of a packed copy reads
 * back as the planar one; the kernel and the CPU matmul on a packed matrix against the dot in
 * double, within K u sum |w x| (one in-order fp32 sum of K fmas; u = 2^-24), at every token
 * count 1..12 and block count 1..2 from every 16-row block, and 29 tokens through the backend
 * (two tiles of 12 and a remainder, over a pair of blocks and a last single one). */
#include "test.h"

#include <math.h>
#include <stdlib.h>

#include "backend.h"
#include "backend_cpu.h"
#include "bf16pack.h"
#include "dot.h"
#include "float16.h"
#include "types.h"

#define TEST_RNG_SEED 0xbb67ae8584caa73bull
#include "test_rng.h"

enum { ROWS = 48, COLS = 1410, TOKENS = 29 }; /* COLS even, not a multiple of 16 or 64 */

static uint16_t *random_bf16(int rows, int cols)
{
    uint16_t *w = malloc((size_t)rows * cols * sizeof *w);
    for (size_t i = 0; i < (size_t)rows * cols; i++)
        w[i] = dsq_f32_to_bf16(rng_uniform(-1, 1) * (i % 97 == 0 ? 30.0f : 1.0f));
    return w;
}

static void *packed_copy(const uint16_t *w, int rows, int cols)
{
    void *p = malloc((size_t)rows * cols * 2);
    for (uint64_t b = 0; b < (uint64_t)rows / 16; b++)
        dsq_bf16pack_block(w, (uint64_t)rows, (uint64_t)cols, b, p);
    return p;
}

/* |got - exact| for row r of w (cols wide) and token x within K u sum |w x| (f32 activations),
 * or with amx the AMX path's bound (quant/bf16pack.h). */
static bool within(float got, const uint16_t *w, int cols, int r, const float *x, bool amx)
{
    double exact = 0, mag = 0;
    for (int k = 0; k < cols; k++) {
        const double p = (double)dsq_bf16_to_f32(w[(size_t)r * cols + k]) * x[k];
        exact += p;
        mag += fabs(p);
    }
    const double u = ldexp(1, -24),
                 bound = amx ? (ldexp(1, -8) + (cols + 1) * u * (1 + ldexp(1, -8))) * mag +
                                   cols * ldexp(1, -126)
                             : cols * u * mag;
    return fabs(got - exact) <= bound;
}

TEST(bf16_packed_layout_holds_every_element)
{
    uint16_t *w = random_bf16(ROWS, COLS);
    void *p = packed_copy(w, ROWS, COLS);
    int bad = 0;
    for (int r = 0; r < ROWS; r++)
        for (int k = 0; k < COLS; k++)
            bad += dsq_bf16pack_get(p, COLS, (uint64_t)r, (uint64_t)k) !=
                   dsq_bf16_to_f32(w[(size_t)r * COLS + k]);
    CHECK_MSG(bad == 0, "%d elements moved", bad);
    CHECK(dsq_bf16pack_fits(48, 1410) && !dsq_bf16pack_fits(40, 1410) &&
          !dsq_bf16pack_fits(48, 1411));
    free(w);
    free(p);
}

typedef void tile_fn(const void *, uint64_t, uint64_t, int, const float *const *, int, float *,
                     size_t);

TEST(bf16_packed_tiles_and_matmul_match_the_exact_dot)
{
    if (!dsq_bf16pack_have()) {
        printf("  skipped: this CPU has neither AVX-512 nor AVX2 (no packed bf16 kernel)\n");
        return;
    }
    struct { const char *name; tile_fn *fn; bool runs; } paths[] = {
        {"dispatch", dsq_bf16pack_tile, true},
#if defined(__x86_64__)
        {"avx2", dsq_bf16pack_tile_avx2, dsq_dot_have_avx2()},
        {"avx512", dsq_bf16pack_tile_avx512, dsq_dot_have_avx512()},
#endif
    };
    uint16_t *w = random_bf16(ROWS, COLS);
    void *p = packed_copy(w, ROWS, COLS);
    float *x = malloc((size_t)TOKENS * COLS * sizeof(float));
    for (size_t i = 0; i < (size_t)TOKENS * COLS; i++)
        x[i] = rng_uniform(-2, 2);
    const float *xt[TOKENS];
    for (int t = 0; t < TOKENS; t++)
        xt[t] = x + (size_t)t * COLS;
    float *y = malloc((size_t)TOKENS * ROWS * sizeof(float));
    printf("  paths run:");
    for (size_t pi = 0; pi < sizeof paths / sizeof *paths; pi++) {
        if (!paths[pi].runs)
            continue;
        printf(" %s,", paths[pi].name);
        int bad = 0;
        for (int nt = 1; nt <= DSQ_BF16PACK_MAX_TOKENS; nt++)
            for (int nb = 1; nb <= DSQ_BF16PACK_MAX_BLOCKS; nb++)
                for (uint64_t b = 0; b + (uint64_t)nb <= ROWS / 16; b++) {
                    for (size_t i = 0; i < (size_t)TOKENS * ROWS; i++)
                        y[i] = NAN; /* whatever a tile leaves unwritten fails */
                    paths[pi].fn(p, COLS, b, nb, xt, nt, y, ROWS);
                    for (int t = 0; t < nt; t++)
                        for (int i = 0; i < 16 * nb; i++) {
                            const int r = (int)b * 16 + i;
                            bad += !within(y[(size_t)t * ROWS + r], w, COLS, r, xt[t], false);
                        }
                }
        CHECK_MSG(bad == 0, "%s tiles: %d values off", paths[pi].name, bad);
    }
    printf("\n");
    const dsq_matrix m = {w, DSQ_TYPE_BF16, ROWS, COLS, 0, p};
    dsq_backend_cpu.matmul(&m, x, y, TOKENS);
    int bad = 0;
    for (int t = 0; t < TOKENS; t++)
        for (int r = 0; r < ROWS; r++)
            bad += !within(y[(size_t)t * ROWS + r], w, COLS, r, xt[t], false);
    CHECK_MSG(bad == 0, "matmul: %d values off", bad);
    free(w);
    free(p);
    free(x);
    free(y);
}

enum { AMX_ROWS = 48, AMX_COLS = 1408, AMX_TOKENS = 40 }; /* 44 tiles of k; tokens 32 + 8 */

/* The AMX kernel at token counts around its 16-token tiles and pairs of them, from every block
 * with one and two blocks; then the backend on a job whose tokens are rows of x out of order
 * (a MoE expert's), which rounds them in the job's order, and with f32 activations asked for,
 * which must not round at all (there every value is within the f32 bound, and with rounding
 * some are not: bf16's 2^-8 is far above K u). */
TEST(bf16_amx_tiles_and_matmul_stay_within_the_rounding_bound)
{
    if (!dsq_bf16pack_amx_have()) {
        printf("  skipped: this CPU or kernel offers no AMX-BF16 tiles\n");
        return;
    }
    CHECK(dsq_bf16pack_amx_fits(AMX_ROWS, AMX_COLS) && !dsq_bf16pack_amx_fits(48, 1410) &&
          !dsq_bf16pack_amx_fits(40, 1408));
    uint16_t *w = random_bf16(AMX_ROWS, AMX_COLS);
    void *p = packed_copy(w, AMX_ROWS, AMX_COLS);
    const size_t xn = (size_t)AMX_TOKENS * AMX_COLS;
    float *x = malloc(xn * sizeof(float)), *y = malloc((size_t)AMX_TOKENS * AMX_ROWS * 4);
    /* whole tiles of rows: the kernel reads up to the next multiple of 16 */
    uint16_t *xb = calloc((AMX_TOKENS + 15) / 16 * 16 * AMX_COLS, sizeof *xb);
    for (size_t i = 0; i < xn; i++)
        x[i] = rng_uniform(-2, 2);
    dsq_bf16_round_rows(x, xn, xb);
    int bad = 0, rounding = 0;
    for (size_t i = 0; i < xn; i++)
        rounding += xb[i] != dsq_f32_to_bf16(x[i]);
    CHECK_MSG(rounding == 0, "%d activations rounded unlike dsq_f32_to_bf16", rounding);
    static const int counts[] = {1, 5, 15, 16, 17, 31, 32, 33, 40};
    for (size_t c = 0; c < sizeof counts / sizeof *counts; c++)
        for (int nb = 1; nb <= 2; nb++)
            for (uint64_t b = 0; b + (uint64_t)nb <= AMX_ROWS / 16; b++) {
                const int n = counts[c];
                for (size_t i = 0; i < (size_t)AMX_TOKENS * AMX_ROWS; i++)
                    y[i] = NAN;
                dsq_bf16pack_amx(p, AMX_COLS, b, nb, xb, n, y, AMX_ROWS);
                for (int t = 0; t < AMX_TOKENS; t++)
                    for (int r = 0; r < AMX_ROWS; r++) {
                        const float v = y[(size_t)t * AMX_ROWS + r];
                        const bool mine = t < n && r >= 16 * (int)b && r < 16 * ((int)b + nb);
                        bad += mine ? !within(v, w, AMX_COLS, r, x + (size_t)t * AMX_COLS, true)
                                    : !isnan(v); /* nothing outside its tokens and blocks */
                    }
            }
    CHECK_MSG(bad == 0, "tiles: %d values off", bad);

    int order[AMX_TOKENS - 3]; /* 37 tokens: every third row of x, wrapping */
    for (int t = 0; t < AMX_TOKENS - 3; t++)
        order[t] = (3 * t) % AMX_TOKENS;
    const dsq_matrix m = {w, DSQ_TYPE_BF16, AMX_ROWS, AMX_COLS, 0, p};
    for (int f32 = 0; f32 <= 1; f32++) {
        dsq_cpu_set_int8_activations(!f32);
        const dsq_matmul_job job = {&m, x, y, AMX_TOKENS - 3, order};
        CHECK(dsq_cpu_matmul_many(&job, 1) == DSQ_OK);
        int off = 0, beyond_f32 = 0;
        for (int t = 0; t < AMX_TOKENS - 3; t++)
            for (int r = 0; r < AMX_ROWS; r++) {
                const float v = y[(size_t)t * AMX_ROWS + r];
                const float *xt = x + (size_t)order[t] * AMX_COLS;
                off += !within(v, w, AMX_COLS, r, xt, !f32);
                beyond_f32 += !within(v, w, AMX_COLS, r, xt, false);
            }
        printf("  matmul, %s activations: %d of %d values beyond the f32 bound\n",
               f32 ? "f32" : "bf16", beyond_f32, (AMX_TOKENS - 3) * AMX_ROWS);
        CHECK_MSG(off == 0 && (f32 ? beyond_f32 == 0 : beyond_f32 > 0),
                  "%s activations: %d values off, %d beyond the f32 bound", f32 ? "f32" : "bf16",
                  off, beyond_f32);
    }
    dsq_cpu_set_int8_activations(true);
    free(w);
    free(p);
    free(x);
    free(xb);
    free(y);
}
