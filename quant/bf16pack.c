/* Packing a bf16 tensor into the CPU's row-interleaved layout, its AVX-512 kernel and the
 * choice between that and the AVX2 one (quant/bf16pack_avx2.c) (quant/bf16pack.h). */
#include "bf16pack.h"

#include <string.h>

#include "dot.h"
#include "float16.h"

enum { ROWS = 16 };

bool dsq_bf16pack_fits(uint64_t rows, uint64_t cols)
{
    return rows > 0 && rows % ROWS == 0 && cols > 0 && cols % 2 == 0;
}

void dsq_bf16pack_block(const void *planar, uint64_t rows, uint64_t cols, uint64_t b,
                        void *packed)
{
    (void)rows;
    const uint8_t *w = planar;
    uint8_t *out = (uint8_t *)packed + b * ROWS * cols * 2;
    for (uint64_t c = 0; c < cols / 2; c++)
        for (int r = 0; r < ROWS; r++)
            memcpy(out + 64 * c + 4 * r, w + ((b * ROWS + (uint64_t)r) * cols + 2 * c) * 2, 4);
}

bool dsq_bf16pack_amx_fits(uint64_t rows, uint64_t cols)
{
    return dsq_bf16pack_fits(rows, cols) && cols % 32 == 0;
}

float dsq_bf16pack_get(const void *packed, uint64_t cols, uint64_t r, uint64_t k)
{
    const uint8_t *p = (const uint8_t *)packed + (r / ROWS) * ROWS * cols * 2;
    uint16_t h;
    memcpy(&h, p + 64 * (k / 2) + 4 * (r % ROWS) + 2 * (k % 2), 2);
    return dsq_bf16_to_f32(h);
}

bool dsq_bf16pack_have(void)
{
    return dsq_dot_have_avx512() || dsq_dot_have_avx2();
}

#if defined(__x86_64__)
#include <immintrin.h>

#define TARGET __attribute__((target("avx512f,avx2,fma")))

/* nb blocks (1 or 2) by nt tokens: the two lines of a k pair are widened once for all nt
 * tokens, and each broadcast activation feeds both blocks, so loads and conversions stay well
 * below the fmas (one block by 8 tokens was load-bound: one broadcast per fma). Each row and
 * token keeps one sum in k order. */
TARGET static inline __attribute__((always_inline)) void tile(const uint8_t *chunks,
                                                              uint64_t cols,
                                                              const float *const *x, float *out,
                                                              size_t ostride, const int nb,
                                                              const int nt)
{
    const __m512i high = _mm512_set1_epi32((int)0xffff0000u);
    const uint64_t block_bytes = (uint64_t)ROWS * cols * 2;
    __m512 acc[2][DSQ_BF16PACK_MAX_TOKENS];
#pragma GCC unroll 2
    for (int b = 0; b < nb; b++)
#pragma GCC unroll 12
        for (int t = 0; t < nt; t++)
            acc[b][t] = _mm512_setzero_ps();
    for (uint64_t c = 0; c < cols / 2; c++) {
        __m512 even[2], odd[2];
#pragma GCC unroll 2
        for (int b = 0; b < nb; b++) {
            const __m512i v =
                _mm512_loadu_si512((const void *)(chunks + b * block_bytes + 64 * c));
            /* a bf16 is the top half of its f32: the low element moves up, the high one is
             * masked */
            even[b] = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
            odd[b] = _mm512_castsi512_ps(_mm512_and_si512(v, high));
        }
#pragma GCC unroll 12
        for (int t = 0; t < nt; t++) {
            const __m512 xe = _mm512_set1_ps(x[t][2 * c]), xo = _mm512_set1_ps(x[t][2 * c + 1]);
#pragma GCC unroll 2
            for (int b = 0; b < nb; b++)
                acc[b][t] = _mm512_fmadd_ps(odd[b], xo, _mm512_fmadd_ps(even[b], xe, acc[b][t]));
        }
    }
#pragma GCC unroll 2
    for (int b = 0; b < nb; b++)
#pragma GCC unroll 12
        for (int t = 0; t < nt; t++)
            _mm512_storeu_ps(out + (size_t)t * ostride + ROWS * b, acc[b][t]);
}

#define TOKEN_CASES(NB)                                                                         \
    switch (nt) {                                                                               \
    case 12: tile(chunks, cols, x, o, ostride, NB, 12); break;                                  \
    case 11: tile(chunks, cols, x, o, ostride, NB, 11); break;                                  \
    case 10: tile(chunks, cols, x, o, ostride, NB, 10); break;                                  \
    case 9: tile(chunks, cols, x, o, ostride, NB, 9); break;                                    \
    case 8: tile(chunks, cols, x, o, ostride, NB, 8); break;                                    \
    case 7: tile(chunks, cols, x, o, ostride, NB, 7); break;                                    \
    case 6: tile(chunks, cols, x, o, ostride, NB, 6); break;                                    \
    case 5: tile(chunks, cols, x, o, ostride, NB, 5); break;                                    \
    case 4: tile(chunks, cols, x, o, ostride, NB, 4); break;                                    \
    case 3: tile(chunks, cols, x, o, ostride, NB, 3); break;                                    \
    case 2: tile(chunks, cols, x, o, ostride, NB, 2); break;                                    \
    default: tile(chunks, cols, x, o, ostride, NB, 1); break;                                   \
    }

TARGET void dsq_bf16pack_tile_avx512(const void *packed, uint64_t cols, uint64_t b, int nb,
                                     const float *const *x, int nt, float *out, size_t ostride)
{
    const uint8_t *chunks = (const uint8_t *)packed + b * ROWS * cols * 2;
    float *o = out + b * ROWS;
    if (nb == 2)
        TOKEN_CASES(2)
    else
        TOKEN_CASES(1)
}

void dsq_bf16pack_tile(const void *packed, uint64_t cols, uint64_t b, int nb,
                       const float *const *x, int nt, float *out, size_t ostride)
{
    if (dsq_dot_have_avx512())
        dsq_bf16pack_tile_avx512(packed, cols, b, nb, x, nt, out, ostride);
    else
        dsq_bf16pack_tile_avx2(packed, cols, b, nb, x, nt, out, ostride);
}

#else
#include <stdlib.h>

void dsq_bf16pack_tile(const void *packed, uint64_t cols, uint64_t b, int nb,
                       const float *const *x, int nt, float *out, size_t ostride)
{
    (void)packed, (void)cols, (void)b, (void)nb, (void)x, (void)nt, (void)out, (void)ostride;
    abort(); /* unreachable: dsq_bf16pack_have() is false off x86 */
}

#endif
