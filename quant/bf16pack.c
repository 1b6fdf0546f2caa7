/* Packing a bf16 tensor into the CPU's row-interleaved layout, and its AVX-512 kernel
 * (quant/bf16pack.h). */
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

float dsq_bf16pack_get(const void *packed, uint64_t cols, uint64_t r, uint64_t k)
{
    const uint8_t *p = (const uint8_t *)packed + (r / ROWS) * ROWS * cols * 2;
    uint16_t h;
    memcpy(&h, p + 64 * (k / 2) + 4 * (r % ROWS) + 2 * (k % 2), 2);
    return dsq_bf16_to_f32(h);
}

bool dsq_bf16pack_have(void)
{
    return dsq_dot_have_avx512();
}

#if defined(__x86_64__)
#include <immintrin.h>

#define TARGET __attribute__((target("avx512f,avx2,fma")))

/* nt tokens; one token keeps two chains (even and odd k) so fma latency does not bind. */
TARGET static inline __attribute__((always_inline)) void tile(const uint8_t *chunks,
                                                              uint64_t cols,
                                                              const float *const *x, float *out,
                                                              size_t ostride, const int nt)
{
    const __m512i high = _mm512_set1_epi32((int)0xffff0000u);
    __m512 even[DSQ_BF16PACK_MAX_TOKENS], odd[DSQ_BF16PACK_MAX_TOKENS];
    for (int t = 0; t < nt; t++)
        even[t] = odd[t] = _mm512_setzero_ps();
    for (uint64_t c = 0; c < cols / 2; c++) {
        const __m512i v = _mm512_loadu_si512((const void *)(chunks + 64 * c));
        /* a bf16 is the top half of its f32: the low element moves up, the high one is masked */
        const __m512 e = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
        const __m512 o = _mm512_castsi512_ps(_mm512_and_si512(v, high));
#pragma GCC unroll 8
        for (int t = 0; t < nt; t++) {
            even[t] = _mm512_fmadd_ps(e, _mm512_set1_ps(x[t][2 * c]), even[t]);
            odd[t] = _mm512_fmadd_ps(o, _mm512_set1_ps(x[t][2 * c + 1]), odd[t]);
        }
    }
    for (int t = 0; t < nt; t++)
        _mm512_storeu_ps(out + (size_t)t * ostride, _mm512_add_ps(even[t], odd[t]));
}

TARGET void dsq_bf16pack_tile(const void *packed, uint64_t cols, uint64_t b,
                              const float *const *x, int nt, float *out, size_t ostride)
{
    const uint8_t *chunks = (const uint8_t *)packed + b * ROWS * cols * 2;
    float *o = out + b * ROWS;
    switch (nt) {
    case 8: tile(chunks, cols, x, o, ostride, 8); break;
    case 7: tile(chunks, cols, x, o, ostride, 7); break;
    case 6: tile(chunks, cols, x, o, ostride, 6); break;
    case 5: tile(chunks, cols, x, o, ostride, 5); break;
    case 4: tile(chunks, cols, x, o, ostride, 4); break;
    case 3: tile(chunks, cols, x, o, ostride, 3); break;
    case 2: tile(chunks, cols, x, o, ostride, 2); break;
    default: tile(chunks, cols, x, o, ostride, 1); break;
    }
}

#else
#include <stdlib.h>

void dsq_bf16pack_tile(const void *packed, uint64_t cols, uint64_t b, const float *const *x,
                       int nt, float *out, size_t ostride)
{
    (void)packed, (void)cols, (void)b, (void)x, (void)nt, (void)out, (void)ostride;
    abort(); /* unreachable: dsq_bf16pack_have() is false off x86 */
}

#endif
