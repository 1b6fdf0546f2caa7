/* The packed kernel of quant/qpack.h with AVX-512 VNNI: 16 rows (one 64-byte load, lane r =
 * row r) by up to 8 tokens, each vpdpbusd taking a broadcast 4-byte slice of one token's codes;
 * q8, q4 and q6. */
#include "qpack.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <string.h>

#include "qpack_x86_512.h"
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

/* q4 (q6 false) and q6, a constant once inlined: each chunk's codes as qpack_x86_512.h gives
 * them. q4 adds its minimum's term per group; q6 sums u * x and takes 32 times the codes' sum
 * off, as the 256-bit kernel does. */
INLINE void nibble_tile(const uint8_t *codes, const uint16_t *scales, uint64_t cols, uint32_t group,
                        const dsq_qx *x, float *out, size_t ostride, const int nt, const bool q6)
{
    const uint64_t ng = cols / group;
    __m512 facc[DSQ_QPACK_MAX_TOKENS];
    for (int t = 0; t < nt; t++)
        facc[t] = _mm512_setzero_ps();
    for (uint64_t g = 0; g < ng; g++) {
        __m512i acc[DSQ_QPACK_MAX_TOKENS];
        for (int t = 0; t < nt; t++)
            acc[t] = _mm512_setzero_si512();
        for (uint64_t k = g * group; k < (g + 1) * group; k += 8) {
            __m512i lo, hi;
            dsq_qpack512_nibbles(codes + (q6 ? 12 : 8) * k, q6, &lo, &hi);
#pragma GCC unroll 8
            for (int t = 0; t < nt; t++) {
                acc[t] = _mm512_dpbusd_epi32(acc[t], lo, slice(&x[t], k));
                acc[t] = _mm512_dpbusd_epi32(acc[t], hi, slice(&x[t], k + 4));
            }
        }
        const uint16_t *s = scales + (q6 ? 16 : 32) * g;
        const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const void *)s));
        const __m512 m = _mm512_cvtph_ps(_mm256_loadu_si256((const void *)(s + (q6 ? 0 : 16))));
#pragma GCC unroll 8
        for (int t = 0; t < nt; t++) {
            const float xd = x[t].d[g];
            __m512i sum = acc[t];
            if (q6)
                sum = _mm512_sub_epi32(sum, _mm512_set1_epi32(32 * x[t].s[g]));
            facc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_mul_ps(d, _mm512_set1_ps(xd)),
                                      facc[t]);
            if (!q6)
                facc[t] = _mm512_fmadd_ps(m, _mm512_set1_ps(xd * (float)x[t].s[g]), facc[t]);
        }
    }
    for (int t = 0; t < nt; t++)
        _mm512_storeu_ps(out + (size_t)t * ostride, facc[t]);
}

INLINE void q4_tile(const uint8_t *codes, const uint16_t *scales, uint64_t cols, uint32_t group,
                    const dsq_qx *x, float *out, size_t ostride, const int nt)
{
    nibble_tile(codes, scales, cols, group, x, out, ostride, nt, false);
}

INLINE void q6_tile(const uint8_t *codes, const uint16_t *scales, uint64_t cols, uint32_t group,
                    const dsq_qx *x, float *out, size_t ostride, const int nt)
{
    nibble_tile(codes, scales, cols, group, x, out, ostride, nt, true);
}

#define QPACK_HAS_Q6 /* qpack_entry.h */
#define QPACK_NAME dsq_qpack_tile_avx512vnni
#include "qpack_entry.h"

#endif
