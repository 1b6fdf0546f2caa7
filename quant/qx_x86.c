/* Activation rounding for the integer kernels (dsq_qx_quantize, quant/qdot.h) with AVX2 and with
 * AVX-512: lane by lane the scalar reference's own arithmetic (the same amax, d = amax / 127,
 * inv = 127 / amax, x * inv, +-0.5 and truncation), so codes, scales and sums are bit-identical
 * to dsq_qx_quantize_ref; only the q4 slot order is done with byte shuffles. */
#include "qdot.h"

#if defined(__x86_64__)

#include <immintrin.h>

#include "types.h"

#define AVX2 __attribute__((target("avx2")))
#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2")))
#define INLINE static inline __attribute__((always_inline))

/* 32 codes in element order -> evens then odds (the q4 order of a block of 32). */
AVX2 INLINE __m256i evens_then_odds(__m256i c)
{
    const __m256i pick = _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15,
                                          0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
    /* per 128-bit lane: 8 evens, 8 odds; then the two lanes' evens, the two lanes' odds */
    return _mm256_permute4x64_epi64(_mm256_shuffle_epi8(c, pick), _MM_SHUFFLE(3, 1, 2, 0));
}

/* 64 codes (a: elements 0..31, b: 32..63) stored in the q4 order of a block of 64. */
AVX2 INLINE void store_q4_block64(int8_t *q, __m256i a, __m256i b)
{
    const __m256i ea = evens_then_odds(a), eb = evens_then_odds(b);
    _mm256_storeu_si256((__m256i *)q, _mm256_permute2x128_si256(ea, eb, 0x20));
    _mm256_storeu_si256((__m256i *)(q + 32), _mm256_permute2x128_si256(ea, eb, 0x31));
}

AVX2 INLINE float amax_avx2(const float *x, uint32_t n)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_setzero_ps();
    for (uint32_t k = 0; k < n; k += 8) /* maxps keeps its second operand on NaN, as the ref */
        m = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + k)), m);
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

/* Eight codes as int32: (int)(v < 0 ? v - 0.5f : v + 0.5f) with v = x * inv. */
AVX2 INLINE __m256i codes8_avx2(const float *x, __m256 inv)
{
    const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x), inv);
    const __m256 half = _mm256_blendv_ps(_mm256_set1_ps(0.5f), _mm256_set1_ps(-0.5f),
                                         _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LT_OQ));
    return _mm256_cvttps_epi32(_mm256_add_ps(v, half));
}

/* 32 codes in element order; their sum is added to *sum's lanes. */
AVX2 INLINE __m256i codes32_avx2(const float *x, float inv, __m256i *sum)
{
    const __m256 vi = _mm256_set1_ps(inv);
    const __m256i a = codes8_avx2(x, vi), b = codes8_avx2(x + 8, vi),
                  c = codes8_avx2(x + 16, vi), d = codes8_avx2(x + 24, vi);
    *sum = _mm256_add_epi32(*sum, _mm256_add_epi32(_mm256_add_epi32(a, b), _mm256_add_epi32(c, d)));
    /* packs interleave 4-element pieces of the two lanes; |code| <= 127 so nothing saturates */
    const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
    return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

AVX2 INLINE int32_t total_avx2(__m256i s)
{
    __m128i h = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    h = _mm_add_epi32(h, _mm_unpackhi_epi64(h, h));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 1));
    return _mm_cvtsi128_si32(h);
}

AVX512 INLINE float amax_avx512(const float *x, uint32_t n)
{
    __m512 m = _mm512_setzero_ps();
    for (uint32_t k = 0; k < n; k += 16) /* n is a multiple of 32 */
        m = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x + k)), m);
    return _mm512_reduce_max_ps(m);
}

AVX512 INLINE __m512i codes16_avx512(const float *x, __m512 inv)
{
    const __m512 v = _mm512_mul_ps(_mm512_loadu_ps(x), inv);
    const __mmask16 neg = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ);
    const __m512 half = _mm512_mask_blend_ps(neg, _mm512_set1_ps(0.5f), _mm512_set1_ps(-0.5f));
    return _mm512_cvttps_epi32(_mm512_add_ps(v, half));
}

AVX512 INLINE __m256i codes32_avx512(const float *x, float inv, __m512i *sum)
{
    const __m512 vi = _mm512_set1_ps(inv);
    const __m512i a = codes16_avx512(x, vi), b = codes16_avx512(x + 16, vi);
    *sum = _mm512_add_epi32(*sum, _mm512_add_epi32(a, b));
    return _mm256_set_m128i(_mm512_cvtepi32_epi8(b), _mm512_cvtepi32_epi8(a));
}

AVX512 INLINE int32_t total_avx512(__m512i s)
{
    return _mm512_reduce_add_epi32(s);
}

/* The group loop, the same for both: per group amax, then d and inv exactly as the reference,
 * then 32 (q4 with blocks of 64: 64) codes at a time. */
#define QUANTIZE(name, target, amax_of, codes32, sum_t, sum_zero, total)                           \
    target void name(uint32_t type, const float *x, uint64_t cols, uint32_t group, dsq_qx out)     \
    {                                                                                              \
        const bool q4 = dsq_qx_nibble_order(type), block64 = group % 64 == 0;                    \
        for (uint64_t g = 0; g < cols / group; g++) {                                              \
            const float *xg = x + g * group;                                                       \
            const float amax = amax_of(xg, group);                                                 \
            const float d = amax / 127, inv = amax > 0 ? 127 / amax : 0;                           \
            int8_t *q = out.q + g * group;                                                         \
            sum_t sum = sum_zero;                                                                  \
            if (q4 && block64)                                                                     \
                for (uint32_t k = 0; k < group; k += 64) {                                         \
                    const __m256i a = codes32(xg + k, inv, &sum);                                  \
                    store_q4_block64(q + k, a, codes32(xg + k + 32, inv, &sum));                   \
                }                                                                                  \
            else                                                                                   \
                for (uint32_t k = 0; k < group; k += 32) {                                         \
                    const __m256i c = codes32(xg + k, inv, &sum);                                  \
                    _mm256_storeu_si256((__m256i *)(q + k), q4 ? evens_then_odds(c) : c);          \
                }                                                                                  \
            out.d[g] = d;                                                                          \
            out.s[g] = total(sum);                                                                 \
        }                                                                                          \
    }

QUANTIZE(dsq_qx_quantize_avx2, AVX2, amax_avx2, codes32_avx2, __m256i, _mm256_setzero_si256(),
         total_avx2)
QUANTIZE(dsq_qx_quantize_avx512, AVX512, amax_avx512, codes32_avx512, __m512i,
         _mm512_setzero_si512(), total_avx512)

#endif
