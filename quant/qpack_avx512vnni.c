/* The packed kernel of quant/qpack.h with AVX-512 VNNI: 16 rows (one 64-byte load, lane r =
 * row r) by up to 8 tokens, each vpdpbusd taking a broadcast 4-byte slice of one token's codes;
 * q8, q4 and q6. */
#include "qpack.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <string.h>

#include "types.h"

#define TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,f16c,fma")))
#define INLINE TARGET static inline __attribute__((always_inline))

/* Four codes of token x from element k, broadcast to every lane. */
INLINE __m512i slice(const dsq_qx *x, uint64_t k)
{
    int32_t v;
    memcpy(&v, x->q + k, 4);
    return _mm512_set1_epi32(v);
}

INLINE void q8_tile(const uint8_t *codes, const uint16_t *scales, uint64_t cols, uint32_t group,
                    const dsq_qx *x, float *out, size_t ostride, const int nt)
{
    const uint64_t ng = cols / group;
    __m512 facc[DSQ_QPACK_MAX_TOKENS];
    for (int t = 0; t < nt; t++)
        facc[t] = _mm512_setzero_ps();
    for (uint64_t g = 0; g < ng; g++) {
        __m512i acc[DSQ_QPACK_MAX_TOKENS];
        for (int t = 0; t < nt; t++)
            acc[t] = _mm512_setzero_si512();
        for (uint64_t k = g * group; k < (g + 1) * group; k += 4) {
            const __m512i w = _mm512_loadu_si512((const void *)(codes + 16 * k));
#pragma GCC unroll 8
            for (int t = 0; t < nt; t++)
                acc[t] = _mm512_dpbusd_epi32(acc[t], w, slice(&x[t], k));
        }
        const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const void *)(scales + 16 * g)));
#pragma GCC unroll 8
        for (int t = 0; t < nt; t++) {
            /* the codes were w + 128: take 128 times the activation codes' sum off */
            const __m512i s = _mm512_sub_epi32(acc[t], _mm512_set1_epi32(128 * x[t].s[g]));
            facc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s),
                                      _mm512_mul_ps(d, _mm512_set1_ps(x[t].d[g])), facc[t]);
        }
    }
    for (int t = 0; t < nt; t++)
        _mm512_storeu_ps(out + (size_t)t * ostride, facc[t]);
}

INLINE void q4_tile(const uint8_t *codes, const uint16_t *scales, uint64_t cols, uint32_t group,
                    const dsq_qx *x, float *out, size_t ostride, const int nt)
{
    const uint64_t ng = cols / group;
    const __m512i low = _mm512_set1_epi8(15);
    __m512 facc[DSQ_QPACK_MAX_TOKENS];
    for (int t = 0; t < nt; t++)
        facc[t] = _mm512_setzero_ps();
    for (uint64_t g = 0; g < ng; g++) {
        __m512i acc[DSQ_QPACK_MAX_TOKENS];
        for (int t = 0; t < nt; t++)
            acc[t] = _mm512_setzero_si512();
        for (uint64_t k = g * group; k < (g + 1) * group; k += 8) {
            const __m512i v = _mm512_loadu_si512((const void *)(codes + 8 * k));
            const __m512i lo = _mm512_and_si512(v, low);
            const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
#pragma GCC unroll 8
            for (int t = 0; t < nt; t++) {
                acc[t] = _mm512_dpbusd_epi32(acc[t], lo, slice(&x[t], k));
                acc[t] = _mm512_dpbusd_epi32(acc[t], hi, slice(&x[t], k + 4));
            }
        }
        const uint16_t *s = scales + 32 * g;
        const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const void *)s));
        const __m512 m = _mm512_cvtph_ps(_mm256_loadu_si256((const void *)(s + 16)));
#pragma GCC unroll 8
        for (int t = 0; t < nt; t++) {
            const float xd = x[t].d[g];
            facc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[t]),
                                      _mm512_mul_ps(d, _mm512_set1_ps(xd)), facc[t]);
            facc[t] = _mm512_fmadd_ps(m, _mm512_set1_ps(xd * (float)x[t].s[g]), facc[t]);
        }
    }
    for (int t = 0; t < nt; t++)
        _mm512_storeu_ps(out + (size_t)t * ostride, facc[t]);
}

/* q6: the chunk's first 64 bytes as q4's (the low four bits of u = q + 32), then 32 bytes of
 * top bits, whose byte 4 r + j serves rows r (bit pairs 0, 1) and r + 8 (pairs 2, 3): the
 * 256-bit half for rows 8-15 takes them shifted down by four. Sums u * x and takes 32 times
 * the codes' sum off, as the 256-bit kernel does. */
INLINE void q6_tile(const uint8_t *codes, const uint16_t *scales, uint64_t cols, uint32_t group,
                    const dsq_qx *x, float *out, size_t ostride, const int nt)
{
    const uint64_t ng = cols / group;
    const __m512i low = _mm512_set1_epi8(15), top = _mm512_set1_epi8(0x30);
    __m512 facc[DSQ_QPACK_MAX_TOKENS];
    for (int t = 0; t < nt; t++)
        facc[t] = _mm512_setzero_ps();
    for (uint64_t g = 0; g < ng; g++) {
        __m512i acc[DSQ_QPACK_MAX_TOKENS];
        for (int t = 0; t < nt; t++)
            acc[t] = _mm512_setzero_si512();
        for (uint64_t k = g * group; k < (g + 1) * group; k += 8) {
            const uint8_t *c = codes + 12 * k;
            const __m512i v = _mm512_loadu_si512((const void *)c);
            const __m256i t8 = _mm256_loadu_si256((const void *)(c + 64));
            const __m512i tb = _mm512_inserti64x4(_mm512_castsi256_si512(t8),
                                                  _mm256_srli_epi16(t8, 4), 1);
            const __m512i lo = _mm512_or_si512(_mm512_and_si512(v, low),
                                               _mm512_and_si512(_mm512_slli_epi16(tb, 4), top));
            const __m512i hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(v, 4), low),
                                               _mm512_and_si512(_mm512_slli_epi16(tb, 2), top));
#pragma GCC unroll 8
            for (int t = 0; t < nt; t++) {
                acc[t] = _mm512_dpbusd_epi32(acc[t], lo, slice(&x[t], k));
                acc[t] = _mm512_dpbusd_epi32(acc[t], hi, slice(&x[t], k + 4));
            }
        }
        const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const void *)(scales + 16 * g)));
#pragma GCC unroll 8
        for (int t = 0; t < nt; t++) {
            const __m512i s = _mm512_sub_epi32(acc[t], _mm512_set1_epi32(32 * x[t].s[g]));
            facc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s),
                                      _mm512_mul_ps(d, _mm512_set1_ps(x[t].d[g])), facc[t]);
        }
    }
    for (int t = 0; t < nt; t++)
        _mm512_storeu_ps(out + (size_t)t * ostride, facc[t]);
}

#define QPACK_HAS_Q6 /* qpack_entry.h */
#define QPACK_NAME dsq_qpack_tile_avx512vnni
#include "qpack_entry.h"

#endif
