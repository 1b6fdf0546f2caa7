/* The AMX int8 kernel (quant/qpack_amx.c) against the AVX-512 VNNI packed kernel it stands in
 * for in prompts: the same integer sums and the same fp32 operations in the same order, so the
 * same bits, at q8, q4 and q6, groups 32, 64, 96 and 128, every token count 1..32 with the tokens'
 * rows scattered (the gathered path, a MoE expert's tokens) and 16 and 32 evenly spaced rows
 * (the direct path), from the first, a middle and the last block, one and two blocks at a
 * time; the backend then routes a prompt through it and gives the VNNI kernel's bits too. */
#include "test.h"

#include <stdlib.h>

#include "backend_cpu.h"
#include "qdot.h"
#include "qpack.h"
#include "float16.h"
#include "types.h"

#define TEST_RNG_SEED 0x3c6ef372fe94f82bull
#include "test_rng.h"

enum { ROWS = 80, COLS = 384, TOKENS = 32 }; /* 5 blocks; COLS a multiple of 32, 64, 96, 128 */

typedef struct {
    void *planar, *packed;
} matrix;

/* Random codes under finite scales (q4: d and m), packed. */
static matrix random_matrix(uint32_t type, uint32_t group)
{
    const uint64_t n = (uint64_t)ROWS * COLS, bytes = dsq_qpack_bytes(type, ROWS, COLS, group);
    const uint64_t code_bytes = type == DSQ_TYPE_Q8 ? n : type == DSQ_TYPE_Q6 ? 3 * n / 4 : n / 2;
    matrix m = {malloc(bytes), malloc(bytes)};
    uint8_t *codes = m.planar;
    for (uint64_t i = 0; i < code_bytes; i++)
        codes[i] = (uint8_t)rng_next();
    uint16_t *scales = (uint16_t *)(void *)(codes + code_bytes);
    for (uint64_t g = 0; g < (type == DSQ_TYPE_Q4 ? 2 : 1) * n / group; g++)
        scales[g] = dsq_f32_to_f16(type == DSQ_TYPE_Q4 && g % 2 ? rng_uniform(-0.1f, 0.02f)
                                                                : rng_uniform(0.0005f, 0.02f));
    for (uint64_t b = 0; b < ROWS / 16; b++)
        dsq_qpack_block(type, m.planar, ROWS, COLS, group, b, m.packed);
    return m;
}

TEST(amx_int8_tiles_give_the_vnni_kernels_bits)
{
    if (!dsq_qpack_amx_have()) {
        printf("  skipped: this CPU or kernel offers no AMX-INT8 tiles\n");
        return;
    }
    const uint64_t xb = dsq_qx_bytes(COLS, 32); /* the largest: group 32 has the most scales */
    uint8_t *buf = malloc(2 * TOKENS * xb);
    float *x = malloc(sizeof(float) * 2 * TOKENS * COLS);
    float *want = malloc(sizeof(float) * TOKENS * ROWS),
          *got = malloc(sizeof(float) * TOKENS * ROWS);
    static const uint32_t groups[] = {32, 64, 96, 128};
    static const uint32_t types[] = {DSQ_TYPE_Q8, DSQ_TYPE_Q4, DSQ_TYPE_Q6};
    int checked = 0, differ = 0;
    for (size_t ti = 0; ti < 3; ti++)
        for (size_t gi = 0; gi < 4; gi++) {
            const uint32_t type = types[ti], group = groups[gi];
            CHECK(dsq_qpack_amx_fits(type, ROWS, COLS, group));
            matrix m = random_matrix(type, group);
            dsq_qx rows[2 * TOKENS];
            for (int i = 0; i < 2 * TOKENS; i++) {
                for (int k = 0; k < COLS; k++)
                    x[(size_t)i * COLS + k] = rng_uniform(-3, 3);
                rows[i] = dsq_qx_at(buf + (size_t)i * xb, COLS, group);
                dsq_qx_quantize(DSQ_TYPE_Q8, x + (size_t)i * COLS, COLS, group, rows[i]);
            }
            dsq_qx scattered[TOKENS]; /* every other row, backwards: no even spacing */
            for (int t = 0; t < TOKENS; t++)
                scattered[t] = rows[2 * TOKENS - 1 - 2 * t - (t % 3 == 0)];
            for (int spaced = 0; spaced <= 1; spaced++)
                for (int nt = 1; nt <= TOKENS; nt++) {
                    if (spaced && nt != 16 && nt != 32)
                        continue;
                    const dsq_qx *xt = spaced ? rows + 3 : scattered;
                    for (uint64_t b = 0; b < ROWS / 16; b += 2)
                        for (int nb = 1; nb <= 2 && b + (uint64_t)nb <= ROWS / 16; nb++) {
                            for (int i = 0; i < TOKENS * ROWS; i++)
                                want[i] = got[i] = -1;
                            for (int j = 0; j < nb; j++)
                                for (int t = 0; t < nt; t += DSQ_QPACK_MAX_TOKENS)
                                    dsq_qpack_tile_avx512vnni(
                                        type, m.packed, ROWS, COLS, group, b + (uint64_t)j, xt + t,
                                        nt - t < DSQ_QPACK_MAX_TOKENS ? nt - t
                                                                      : DSQ_QPACK_MAX_TOKENS,
                                        want + (size_t)t * ROWS, ROWS);
                            dsq_qpack_amx(type, m.packed, ROWS, COLS, group, b, nb, xt, nt, got,
                                          ROWS);
                            differ += memcmp(want, got, sizeof(float) * TOKENS * ROWS) != 0;
                            checked++;
                        }
                }
            free(m.planar);
            free(m.packed);
        }
    printf("  %d calls, %d differ from the VNNI kernel\n", checked, differ);
    CHECK_MSG(differ == 0, "%d of %d calls differ", differ, checked);
    free(buf);
    free(x);
    free(want);
    free(got);
}

/* A 29-token prompt through the backend (a full tile and a partial one), with its rows in order
 * and, as a MoE expert's, out of order: the VNNI kernel's bits on the same rounded rows. */
TEST(prompts_through_the_backend_keep_the_vnni_bits)
{
    if (!dsq_qpack_amx_have() || !dsq_qpack_replaces_qdot()) {
        printf("  skipped: this CPU or kernel offers no AMX-INT8 tiles\n");
        return;
    }
    enum { N = 29 };
    const uint32_t group = 64;
    const uint64_t xb = dsq_qx_bytes(COLS, group);
    float *x = malloc(sizeof(float) * N * COLS), *got = malloc(sizeof(float) * N * ROWS);
    float *want = malloc(sizeof(float) * N * ROWS);
    uint8_t *buf = malloc(N * xb);
    for (int i = 0; i < N * COLS; i++)
        x[i] = rng_uniform(-3, 3);
    int order[N];
    for (int t = 0; t < N; t++)
        order[t] = (7 * t + 3) % N;
    dsq_cpu_set_int8_activations(true);
    static const uint32_t types[] = {DSQ_TYPE_Q8, DSQ_TYPE_Q4, DSQ_TYPE_Q6};
    for (int ti = 0; ti < 3; ti++) {
        const uint32_t type = types[ti];
        matrix m = random_matrix(type, group);
        const dsq_matrix w = {m.planar, type, ROWS, COLS, group, m.packed};
        for (int scattered = 0; scattered <= 1; scattered++) {
            dsq_qx rows[N];
            for (int t = 0; t < N; t++) {
                rows[t] = dsq_qx_at(buf + (size_t)t * xb, COLS, group);
                dsq_qx_quantize(DSQ_TYPE_Q8, x + (size_t)(scattered ? order[t] : t) * COLS, COLS,
                                group, rows[t]);
            }
            for (uint64_t b = 0; b < ROWS / 16; b++)
                for (int t = 0; t < N; t += DSQ_QPACK_MAX_TOKENS)
                    dsq_qpack_tile_avx512vnni(type, m.packed, ROWS, COLS, group, b, rows + t,
                                              N - t < DSQ_QPACK_MAX_TOKENS ? N - t
                                                                           : DSQ_QPACK_MAX_TOKENS,
                                              want + (size_t)t * ROWS, ROWS);
            const dsq_matmul_job job = {&w, x, got, N, scattered ? order : NULL};
            CHECK(dsq_cpu_matmul_many(&job, 1) == DSQ_OK);
            CHECK_MSG(memcmp(want, got, sizeof(float) * N * ROWS) == 0,
                      "%s, rows %s: the backend's prompt differs from the VNNI kernel",
                      dsq_type_info(type)->name, scattered ? "out of order" : "in order");
        }
        free(m.planar);
        free(m.packed);
    }
    free(x);
    free(got);
    free(want);
    free(buf);
}
