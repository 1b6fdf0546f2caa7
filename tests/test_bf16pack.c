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

static uint16_t *random_bf16(void)
{
    uint16_t *w = malloc((size_t)ROWS * COLS * sizeof *w);
    for (size_t i = 0; i < (size_t)ROWS * COLS; i++)
        w[i] = dsq_f32_to_bf16(rng_uniform(-1, 1) * (i % 97 == 0 ? 30.0f : 1.0f));
    return w;
}

static void *packed_copy(const uint16_t *w)
{
    void *p = malloc((size_t)ROWS * COLS * 2);
    for (uint64_t b = 0; b < ROWS / 16; b++)
        dsq_bf16pack_block(w, ROWS, COLS, b, p);
    return p;
}

/* |got - exact| within the bound for row r and token x. */
static bool within(float got, const uint16_t *w, int r, const float *x)
{
    double exact = 0, mag = 0;
    for (int k = 0; k < COLS; k++) {
        const double p = (double)dsq_bf16_to_f32(w[(size_t)r * COLS + k]) * x[k];
        exact += p;
        mag += fabs(p);
    }
    return fabs(got - exact) <= COLS * ldexp(1, -24) * mag;
}

TEST(bf16_packed_layout_holds_every_element)
{
    uint16_t *w = random_bf16();
    void *p = packed_copy(w);
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
    uint16_t *w = random_bf16();
    void *p = packed_copy(w);
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
                            bad += !within(y[(size_t)t * ROWS + r], w, r, xt[t]);
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
            bad += !within(y[(size_t)t * ROWS + r], w, r, xt[t]);
    CHECK_MSG(bad == 0, "matmul: %d values off", bad);
    free(w);
    free(p);
    free(x);
    free(y);
}
