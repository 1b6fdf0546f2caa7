/* AVX-512 float tile: a plain float tensor's rows (f32, bf16, f16) by up to four tokens, the
 * 512-bit version of dsq_dot_tile_avx2 for prefill. 16 accumulators of 16 lanes stay in
 * registers; each weight load is widened once for every token of the tile. */
#include "dot.h"

#if defined(__x86_64__)

#include <immintrin.h>

#include "float16.h"
#include "types.h"

#define TARGET __attribute__((target("avx512f,avx2,fma,f16c")))

TARGET static inline __m512 load16_f32(const void *w, uint64_t k)
{
    return _mm512_loadu_ps((const float *)w + k);
}

TARGET static inline __m512 load16_bf16(const void *w, uint64_t k)
{
    const __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)w + k));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

TARGET static inline __m512 load16_f16(const void *w, uint64_t k)
{
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)w + k)));
}

/* out[t * ostride + i] for i < nr, t < nt; elem: bytes per weight. */
#define TILE16(name, load, scalar, elem)                                                           \
    TARGET static inline __attribute__((always_inline)) void name(                                 \
        const void *base, uint64_t cols, uint64_t r0, const float *const *x, float *out,           \
        size_t ostride, const int nr, const int nt)                                                \
    {                                                                                              \
        __m512 acc[4][4];                                                                          \
        for (int i = 0; i < 4; i++)                                                                \
            for (int t = 0; t < 4; t++)                                                            \
                acc[i][t] = _mm512_setzero_ps();                                                   \
        const char *rows = (const char *)base + r0 * cols * elem;                                  \
        uint64_t k = 0;                                                                            \
        for (; k + 16 <= cols; k += 16) {                                                          \
            __m512 xv[4];                                                                          \
            _Pragma("GCC unroll 4") for (int t = 0; t < nt; t++) xv[t] =                           \
                _mm512_loadu_ps(x[t] + k);                                                         \
            _Pragma("GCC unroll 4") for (int i = 0; i < nr; i++)                                   \
            {                                                                                      \
                const __m512 wv = load(rows + (uint64_t)i * cols * elem, k);                       \
                _Pragma("GCC unroll 4") for (int t = 0; t < nt; t++) acc[i][t] =                   \
                    _mm512_fmadd_ps(wv, xv[t], acc[i][t]);                                         \
            }                                                                                      \
        }                                                                                          \
        for (int i = 0; i < nr; i++) {                                                             \
            const void *w = rows + (uint64_t)i * cols * elem;                                      \
            for (int t = 0; t < nt; t++) {                                                         \
                float sum = _mm512_reduce_add_ps(acc[i][t]);                                       \
                for (uint64_t j = k; j < cols; j++)                                                \
                    sum += scalar * x[t][j];                                                       \
                out[(size_t)t * ostride + (size_t)i] = sum;                                        \
            }                                                                                      \
        }                                                                                          \
    }

TILE16(tile16_f32, load16_f32, ((const float *)w)[j], 4)
TILE16(tile16_bf16, load16_bf16, dsq_bf16_to_f32(((const uint16_t *)w)[j]), 2)
TILE16(tile16_f16, load16_f16, dsq_f16_to_f32(((const uint16_t *)w)[j]), 2)

#define SHAPE(fn, r, t)                                                                            \
    case (t) * 8 + (r):                                                                            \
        fn(base, cols, r0, x, out, ostride, r, t);                                                 \
        break;
#define SHAPES(fn)                                                                                 \
    switch (nt * 8 + nr) {                                                                         \
        SHAPE(fn, 4, 4) SHAPE(fn, 3, 4) SHAPE(fn, 2, 4) SHAPE(fn, 1, 4)                            \
        SHAPE(fn, 4, 3) SHAPE(fn, 3, 3) SHAPE(fn, 2, 3) SHAPE(fn, 1, 3)                            \
        SHAPE(fn, 4, 2) SHAPE(fn, 3, 2) SHAPE(fn, 2, 2) SHAPE(fn, 1, 2)                            \
        SHAPE(fn, 4, 1) SHAPE(fn, 3, 1) SHAPE(fn, 2, 1)                                            \
    default:                                                                                       \
        fn(base, cols, r0, x, out, ostride, 1, 1);                                                 \
        break;                                                                                     \
    }

TARGET void dsq_dot_tile_avx512(uint32_t type, const void *base, uint64_t cols, uint64_t r0,
                                int nr, const float *const *x, int nt, float *out, size_t ostride)
{
    if (type == DSQ_TYPE_F32)
        SHAPES(tile16_f32)
    else if (type == DSQ_TYPE_BF16)
        SHAPES(tile16_bf16)
    else
        SHAPES(tile16_f16)
}

#endif

bool dsq_dot_have_avx512(void)
{
#if defined(__x86_64__)
    return dsq_dot_have_avx2() && __builtin_cpu_supports("avx512f");
#else
    return false;
#endif
}
