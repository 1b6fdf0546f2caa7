/* The integer dot kernel of quant/qdot.h for x86, written once and built per ISA: the including
 * file defines TARGET (the function attribute), QDOT_NAME (the entry point) and
 * DOT_U8S8(acc, u, s) (acc + the sums of four adjacent u8 * s8 products per 32-bit lane) before
 * including it. Up to four weight rows share each activation load; every group's integer sums
 * are exact and go to fp32 once per group. */
#include <immintrin.h>

#include "float16.h"
#include "q4.h"
#include "q8.h"
#include "qdot.h"
#include "types.h"

#define INLINE TARGET static inline __attribute__((always_inline))

INLINE float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* 16 bytes of nibbles (32 elements) as 32 bytes: the low nibbles, then the high nibbles. */
INLINE __m256i q4_unpack(const uint8_t *p)
{
    const __m128i v = _mm_loadu_si128((const __m128i *)p);
    const __m256i both =
        _mm256_inserti128_si256(_mm256_castsi128_si256(v), _mm_srli_epi16(v, 4), 1);
    return _mm256_and_si256(both, _mm256_set1_epi8(15));
}

INLINE void q8_rows(const int8_t *w, uint64_t cols, const uint16_t *d, uint64_t ng,
                    uint32_t group, dsq_qx x, float *out, const int nr)
{
    __m256 facc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                      _mm256_setzero_ps()};
    for (uint64_t g = 0; g < ng; g++) {
        __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                          _mm256_setzero_si256()};
        for (uint64_t k = g * group; k < (g + 1) * group; k += 32) {
            const __m256i xv = _mm256_loadu_si256((const __m256i *)(x.q + k));
#pragma GCC unroll 4
            for (int i = 0; i < nr; i++) {
                const __m256i wv = _mm256_loadu_si256((const __m256i *)(w + i * cols + k));
                /* |w| (never -128) times x with w's sign: u8 * s8 as the instructions take */
                acc[i] = DOT_U8S8(acc[i], _mm256_abs_epi8(wv), _mm256_sign_epi8(xv, wv));
            }
        }
        const float xd = x.d[g];
#pragma GCC unroll 4
        for (int i = 0; i < nr; i++)
            facc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[i]),
                                      _mm256_set1_ps(_cvtsh_ss(d[i * ng + g]) * xd), facc[i]);
    }
    for (int i = 0; i < nr; i++)
        out[i] = hsum8(facc[i]);
}

/* 32 bytes of nibbles (64 elements): the low nibbles and the high nibbles. */
INLINE void q4_unpack64(const uint8_t *p, __m256i *lo, __m256i *hi)
{
    const __m256i v = _mm256_loadu_si256((const __m256i *)p), m = _mm256_set1_epi8(15);
    *lo = _mm256_and_si256(v, m);
    *hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m);
}

INLINE void q4_rows(const uint8_t *w, uint64_t cols, const uint16_t *dm, uint64_t ng,
                    uint32_t group, dsq_qx x, float *out, const int nr)
{
    const bool wide = group % 64 == 0; /* blocks of 64 in the activation order */
    __m256 facc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                      _mm256_setzero_ps()};
    float msum[4] = {0, 0, 0, 0};
    for (uint64_t g = 0; g < ng; g++) {
        __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                          _mm256_setzero_si256()};
        if (wide) {
            for (uint64_t k = g * group; k < (g + 1) * group; k += 64) {
                const __m256i x0 = _mm256_loadu_si256((const __m256i *)(x.q + k));
                const __m256i x1 = _mm256_loadu_si256((const __m256i *)(x.q + k + 32));
#pragma GCC unroll 4
                for (int i = 0; i < nr; i++) {
                    __m256i lo, hi;
                    q4_unpack64(w + i * cols / 2 + k / 2, &lo, &hi);
                    acc[i] = DOT_U8S8(DOT_U8S8(acc[i], lo, x0), hi, x1);
                }
            }
        } else {
            for (uint64_t k = g * group; k < (g + 1) * group; k += 32) {
                const __m256i xv = _mm256_loadu_si256((const __m256i *)(x.q + k));
#pragma GCC unroll 4
                for (int i = 0; i < nr; i++)
                    acc[i] = DOT_U8S8(acc[i], q4_unpack(w + i * cols / 2 + k / 2), xv);
            }
        }
        const float xd = x.d[g], xs = (float)x.s[g];
#pragma GCC unroll 4
        for (int i = 0; i < nr; i++) {
            const uint16_t *p = dm + 2 * (i * ng + g);
            facc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[i]),
                                      _mm256_set1_ps(_cvtsh_ss(p[0]) * xd), facc[i]);
            msum[i] += _cvtsh_ss(p[1]) * xd * xs;
        }
    }
    for (int i = 0; i < nr; i++)
        out[i] = hsum8(facc[i]) + msum[i];
}

TARGET void QDOT_NAME(uint32_t type, const void *base, uint64_t rows, uint64_t cols,
                      uint32_t group, uint64_t r0, int nr, dsq_qx x, float *out)
{
    const uint64_t ng = cols / group;
    if (type == DSQ_TYPE_Q8) {
        const int8_t *w = (const int8_t *)base + r0 * cols;
        const uint16_t *d = dsq_q8_scales(base, rows, cols) + r0 * ng;
        switch (nr) {
        case 4: q8_rows(w, cols, d, ng, group, x, out, 4); break;
        case 3: q8_rows(w, cols, d, ng, group, x, out, 3); break;
        case 2: q8_rows(w, cols, d, ng, group, x, out, 2); break;
        default: q8_rows(w, cols, d, ng, group, x, out, 1); break;
        }
    } else {
        const uint8_t *w = (const uint8_t *)base + r0 * cols / 2;
        const uint16_t *dm = dsq_q4_scales(base, rows, cols) + 2 * r0 * ng;
        switch (nr) {
        case 4: q4_rows(w, cols, dm, ng, group, x, out, 4); break;
        case 3: q4_rows(w, cols, dm, ng, group, x, out, 3); break;
        case 2: q4_rows(w, cols, dm, ng, group, x, out, 2); break;
        default: q4_rows(w, cols, dm, ng, group, x, out, 1); break;
        }
    }
}
