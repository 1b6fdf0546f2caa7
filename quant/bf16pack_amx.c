/* The packed bf16 kernel on AMX tiles (quant/bf16pack.h). A 16-row block's chunks are already
 * AMX's pair-interleaved B operand: tile row i (64 bytes) = chunk i, 16 rows of the weight by
 * one k pair, so 16 chunks (32 k, 1 KB, contiguous) load as one tile with no repacking. The
 * activations, rounded to bf16 once per matmul, are the A operand: 16 tokens by 32 k. One
 * TDPBF16PS adds 16 tokens x 16 rows x 32 k into an fp32 tile that lives for the whole row, so
 * the fp32 work happens once per output instead of once per group as in the integer kernels. */
#include "bf16pack.h"

#include <stdlib.h>
#include <string.h>

#include "float16.h"

#if defined(__x86_64__) && defined(__linux__)
#include <immintrin.h>

#include "amx.h"

#define TARGET __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bf16")))

enum { ROWS = 16, K_STEP = 32 };

bool dsq_bf16pack_amx_have(void)
{
    return dsq_amx_have_bf16();
}

TARGET void dsq_bf16_round_rows(const float *x, uint64_t n, uint16_t *out)
{
    uint64_t i = 0;
    for (; i + 16 <= n; i += 16) /* round to nearest even, as dsq_f32_to_bf16 */
        _mm256_storeu_si256((void *)(out + i), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(x + i)));
    for (; i < n; i++)
        out[i] = dsq_f32_to_bf16(x[i]);
}

/* Tiles 0-3 the fp32 sums (two token tiles by two row blocks), 4-5 the activations, 6-7 the
 * weights; each 16 rows of 64 bytes. */
TARGET static void configure(void)
{
    dsq_amx_config c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int i = 0; i < 8; i++) {
        c.colsb[i] = 64;
        c.rows[i] = 16;
    }
    _tile_loadconfig(&c);
}

/* Tile `tile` of sums, tokens t0.. (nt of its 16 rows are real) of block blk, into out. */
#define STORE(tile, t0, nt, blk)                                                                   \
    do {                                                                                           \
        float *o_ = out + (size_t)(t0)*ostride + ROWS * (size_t)(blk);                             \
        if ((nt) == ROWS) {                                                                        \
            _tile_stored(tile, o_, ostride * sizeof(float));                                       \
        } else {                                                                                   \
            float part[ROWS * ROWS];                                                               \
            _tile_stored(tile, part, ROWS * sizeof(float));                                        \
            for (int i_ = 0; i_ < (nt); i_++)                                                      \
                memcpy(o_ + (size_t)i_ * ostride, part + ROWS * i_, ROWS * sizeof(float));         \
        }                                                                                          \
    } while (0)

TARGET void dsq_bf16pack_amx(const void *packed, uint64_t cols, uint64_t b, int nb,
                             const uint16_t *x, int n, float *out, size_t ostride)
{
    configure();
    const uint8_t *w0 = (const uint8_t *)packed + b * ROWS * cols * 2;
    const uint8_t *w1 = w0 + ROWS * cols * 2;
    const size_t xs = cols * 2; /* bytes of one activation row */
    for (int t = 0; t < n; t += 2 * ROWS) {
        const int n0 = n - t < ROWS ? n - t : ROWS, n1 = n - t - n0 < ROWS ? n - t - n0 : ROWS;
        const uint8_t *a = (const uint8_t *)(x + (size_t)t * cols);
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
        /* chunk c sits at 64 c, k = 2 c: the tile for k.. starts at byte 32 k */
        for (uint64_t k = 0; k < cols; k += K_STEP) {
            _tile_loadd(4, a + 2 * k, xs);
            _tile_loadd(6, w0 + 32 * k, 64);
            if (nb == 2)
                _tile_loadd(7, w1 + 32 * k, 64);
            if (n1)
                _tile_loadd(5, a + ROWS * xs + 2 * k, xs);
            _tile_dpbf16ps(0, 4, 6);
            if (nb == 2)
                _tile_dpbf16ps(1, 4, 7);
            if (n1) {
                _tile_dpbf16ps(2, 5, 6);
                if (nb == 2)
                    _tile_dpbf16ps(3, 5, 7);
            }
        }
        STORE(0, t, n0, b);
        if (nb == 2)
            STORE(1, t, n0, b + 1);
        if (n1) {
            STORE(2, t + ROWS, n1, b);
            if (nb == 2)
                STORE(3, t + ROWS, n1, b + 1);
        }
    }
    _tile_release();
}

#else

bool dsq_bf16pack_amx_have(void)
{
    return false;
}

void dsq_bf16_round_rows(const float *x, uint64_t n, uint16_t *out)
{
    for (uint64_t i = 0; i < n; i++)
        out[i] = dsq_f32_to_bf16(x[i]);
}

void dsq_bf16pack_amx(const void *packed, uint64_t cols, uint64_t b, int nb, const uint16_t *x,
                      int n, float *out, size_t ostride)
{
    (void)packed, (void)cols, (void)b, (void)nb, (void)x, (void)n, (void)out, (void)ostride;
    abort(); /* unreachable: dsq_bf16pack_amx_have() is false here */
}

#endif
