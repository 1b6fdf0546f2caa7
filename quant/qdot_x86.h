/* The integer dot kernel of quant/qdot.h for x86, written once and built per ISA: the including
 * file defines TARGET (the function attribute), QDOT_NAME (the entry point) and
 * DOT_U8S8(acc, u, s) (acc + the sums of four adjacent u8 * s8 products per 32-bit lane) before
 * including it, and QDOT_NO_SATURATION when that sum has no int16 intermediate (VNNI), which
 * lets q8 use x + 128 against signed weights instead of |w| against x with w's sign, and
 * optionally QDOT_MAX_NT, the tokens one q8 tile holds (2 unless set; 4 where the ISA has 32
 * vector registers, so that each weight load and weight sum serves more tokens). Tiles of up to
 * four weight rows by that many tokens (q4: two); every group's integer sums are exact and go
 * to fp32 once per group. q6 runs q4's tiles with its top bits or'ed into the unpacked nibbles:
 * codes u in [0, 63], so a maddubs pair stays below 2 * 63 * 127. */
#include <immintrin.h>
#include <string.h>

#include "float16.h"
#include "q4.h"
#include "q6.h"
#include "q8.h"
#include "qdot.h"
#include "types.h"

#ifndef QDOT_MAX_NT
#define QDOT_MAX_NT 2
#endif

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

/* Rows r0..r0+nr-1 times tokens 0..nt-1: out[t * ostride + i]. Each weight load serves every
 * token of the tile, each activation load every row. */
INLINE void q8_tile(const int8_t *w, uint64_t cols, const uint16_t *d, uint64_t ng,
                    uint32_t group, const dsq_qx *x, float *out, size_t ostride, const int nr,
                    const int nt)
{
    __m256 facc[4][QDOT_MAX_NT];
    for (int i = 0; i < 4; i++)
        for (int t = 0; t < QDOT_MAX_NT; t++)
            facc[i][t] = _mm256_setzero_ps();
    for (uint64_t g = 0; g < ng; g++) {
        __m256i acc[4][QDOT_MAX_NT];
        for (int i = 0; i < 4; i++)
            for (int t = 0; t < QDOT_MAX_NT; t++)
                acc[i][t] = _mm256_setzero_si256();
#ifdef QDOT_NO_SATURATION
        __m256i wsum[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(),
                           _mm256_setzero_si256(), _mm256_setzero_si256()};
#endif
        for (uint64_t k = g * group; k < (g + 1) * group; k += 32) {
            __m256i xv[QDOT_MAX_NT];
#pragma GCC unroll 4
            for (int t = 0; t < nt; t++) {
                xv[t] = _mm256_loadu_si256((const __m256i *)(x[t].q + k));
#ifdef QDOT_NO_SATURATION
                xv[t] = _mm256_xor_si256(xv[t], _mm256_set1_epi8(-128)); /* x + 128 as u8 */
#endif
            }
#pragma GCC unroll 4
            for (int i = 0; i < nr; i++) {
                const __m256i wv = _mm256_loadu_si256((const __m256i *)(w + i * cols + k));
#ifdef QDOT_NO_SATURATION
                /* (x + 128) as u8 times signed w; 128 * sum w taken off per group below */
                wsum[i] = DOT_U8S8(wsum[i], _mm256_set1_epi8(1), wv);
#pragma GCC unroll 4
                for (int t = 0; t < nt; t++)
                    acc[i][t] = DOT_U8S8(acc[i][t], xv[t], wv);
#else
                /* |w| (never -128) times x with w's sign: u8 * s8 without int16 overflow */
                const __m256i aw = _mm256_abs_epi8(wv);
#pragma GCC unroll 4
                for (int t = 0; t < nt; t++)
                    acc[i][t] = DOT_U8S8(acc[i][t], aw, _mm256_sign_epi8(xv[t], wv));
#endif
            }
        }
#pragma GCC unroll 4
        for (int i = 0; i < nr; i++) {
            const float dw = _cvtsh_ss(d[i * ng + g]);
#pragma GCC unroll 4
            for (int t = 0; t < nt; t++) {
#ifdef QDOT_NO_SATURATION
                acc[i][t] = _mm256_sub_epi32(acc[i][t], _mm256_slli_epi32(wsum[i], 7));
#endif
                facc[i][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[i][t]),
                                             _mm256_set1_ps(dw * x[t].d[g]), facc[i][t]);
            }
        }
    }
    for (int i = 0; i < nr; i++)
        for (int t = 0; t < nt; t++)
            out[(size_t)t * ostride + (size_t)i] = hsum8(facc[i][t]);
}

/* 32 bytes of nibbles (64 elements): the low nibbles and the high nibbles. */
INLINE void q4_unpack64(const uint8_t *p, __m256i *lo, __m256i *hi)
{
    const __m256i v = _mm256_loadu_si256((const __m256i *)p), m = _mm256_set1_epi8(15);
    *lo = _mm256_and_si256(v, m);
    *hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m);
}

/* q4 tiles stay at two tokens: with groups of 64 its time goes to the per-group fp32 work of
 * every row and token, which more tokens do not share (four measured no faster). */
#define Q4_MAX_NT 2

/* q6's top bits of a run of 32 elements (8 bytes at p), as 32 bytes in the order a run's
 * nibbles unpack (evens, then odds), each at bits 4-5: the bit pairs of quant/q6.h's order are
 * pair s of every byte in 64-bit lane s. */
INLINE __m256i q6_high32(const uint8_t *p)
{
    long long v;
    memcpy(&v, p, 8);
    const __m256i t = _mm256_srlv_epi64(_mm256_set1_epi64x(v), _mm256_setr_epi64x(0, 2, 4, 6));
    return _mm256_slli_epi16(_mm256_and_si256(t, _mm256_set1_epi8(3)), 4);
}

/* The same for 64 elements (two runs, 16 bytes at p) in q4_unpack64's order: the evens of both
 * runs (pairs 0 and 1 of run 0, then of run 1), and the odds (pairs 2 and 3). */
INLINE void q6_high64(const uint8_t *p, __m256i *evens, __m256i *odds)
{
    const __m256i runs = _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)p));
    const __m256i v = _mm256_permute4x64_epi64(runs, 0x50); /* run 0, run 0, run 1, run 1 */
    const __m256i three = _mm256_set1_epi8(3);
    const __m256i e = _mm256_srlv_epi64(v, _mm256_setr_epi64x(0, 2, 0, 2));
    const __m256i o = _mm256_srlv_epi64(v, _mm256_setr_epi64x(4, 6, 4, 6));
    *evens = _mm256_slli_epi16(_mm256_and_si256(e, three), 4);
    *odds = _mm256_slli_epi16(_mm256_and_si256(o, three), 4);
}

/* q4 and q6 (wh, its top-bit plane, not NULL; scales then q6's d, else q4's (d, m) pairs):
 * passes over the nibbles, for q6 with the top bits or'ed in (u = nibble | top << 4), then per
 * group d * xd times the exact integer sum, plus m * xd * xs for q4, minus 32 * xs in the
 * integer sum for q6 (taken off one lane). Called with wh a constant, so each type compiles to
 * its own loop. */
INLINE void nibble_tile(const uint8_t *w, const uint8_t *wh, uint64_t cols,
                        const uint16_t *scales, uint64_t ng, uint32_t group, const dsq_qx *x,
                        float *out, size_t ostride, const int nr, const int nt)
{
    const bool wide = group % 64 == 0; /* blocks of 64 in the activation order */
    __m256 facc[4][Q4_MAX_NT];
    float msum[4][Q4_MAX_NT] = {{0}};
    for (int i = 0; i < 4; i++)
        for (int t = 0; t < Q4_MAX_NT; t++)
            facc[i][t] = _mm256_setzero_ps();
    for (uint64_t g = 0; g < ng; g++) {
        __m256i acc[4][Q4_MAX_NT];
        for (int i = 0; i < 4; i++)
            for (int t = 0; t < Q4_MAX_NT; t++)
                acc[i][t] = _mm256_setzero_si256();
        if (wide) {
            for (uint64_t k = g * group; k < (g + 1) * group; k += 64) {
                __m256i x0[Q4_MAX_NT], x1[Q4_MAX_NT];
#pragma GCC unroll 4
                for (int t = 0; t < nt; t++) {
                    x0[t] = _mm256_loadu_si256((const __m256i *)(x[t].q + k));
                    x1[t] = _mm256_loadu_si256((const __m256i *)(x[t].q + k + 32));
                }
#pragma GCC unroll 4
                for (int i = 0; i < nr; i++) {
                    __m256i lo, hi;
                    q4_unpack64(w + i * cols / 2 + k / 2, &lo, &hi);
                    if (wh) {
                        __m256i he, ho;
                        q6_high64(wh + i * cols / 4 + k / 4, &he, &ho);
                        lo = _mm256_or_si256(lo, he);
                        hi = _mm256_or_si256(hi, ho);
                    }
#pragma GCC unroll 4
                    for (int t = 0; t < nt; t++)
                        acc[i][t] = DOT_U8S8(DOT_U8S8(acc[i][t], lo, x0[t]), hi, x1[t]);
                }
            }
        } else {
            for (uint64_t k = g * group; k < (g + 1) * group; k += 32) {
                __m256i xv[Q4_MAX_NT];
#pragma GCC unroll 4
                for (int t = 0; t < nt; t++)
                    xv[t] = _mm256_loadu_si256((const __m256i *)(x[t].q + k));
#pragma GCC unroll 4
                for (int i = 0; i < nr; i++) {
                    __m256i wv = q4_unpack(w + i * cols / 2 + k / 2);
                    if (wh)
                        wv = _mm256_or_si256(wv, q6_high32(wh + i * cols / 4 + k / 4));
#pragma GCC unroll 4
                    for (int t = 0; t < nt; t++)
                        acc[i][t] = DOT_U8S8(acc[i][t], wv, xv[t]);
                }
            }
        }
        __m256i off[Q4_MAX_NT]; /* q6: u = q + 32 */
#pragma GCC unroll 4
        for (int t = 0; t < nt; t++)
            off[t] = _mm256_setr_epi32(wh ? 32 * x[t].s[g] : 0, 0, 0, 0, 0, 0, 0, 0);
#pragma GCC unroll 4
        for (int i = 0; i < nr; i++) {
            const uint16_t *p = wh ? scales + i * ng + g : scales + 2 * (i * ng + g);
            const float dw = _cvtsh_ss(p[0]);
#pragma GCC unroll 4
            for (int t = 0; t < nt; t++) {
                const float xd = x[t].d[g];
                __m256i s = acc[i][t];
                if (wh)
                    s = _mm256_sub_epi32(s, off[t]);
                else
                    msum[i][t] += _cvtsh_ss(p[1]) * xd * (float)x[t].s[g];
                facc[i][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(dw * xd),
                                             facc[i][t]);
            }
        }
    }
    for (int i = 0; i < nr; i++)
        for (int t = 0; t < nt; t++)
            out[(size_t)t * ostride + (size_t)i] = hsum8(facc[i][t]) + msum[i][t];
}

#define CASES_2(fn, ...)                                                                           \
    case 20: fn(__VA_ARGS__, 4, 2); break;                                                         \
    case 19: fn(__VA_ARGS__, 3, 2); break;                                                         \
    case 18: fn(__VA_ARGS__, 2, 2); break;                                                         \
    case 17: fn(__VA_ARGS__, 1, 2); break;                                                         \
    case 12: fn(__VA_ARGS__, 4, 1); break;                                                         \
    case 11: fn(__VA_ARGS__, 3, 1); break;                                                         \
    case 10: fn(__VA_ARGS__, 2, 1); break;                                                         \
    default: fn(__VA_ARGS__, 1, 1); break;

#if QDOT_MAX_NT == 4
#define CASES_4(fn, ...)                                                                           \
    case 36: fn(__VA_ARGS__, 4, 4); break;                                                         \
    case 35: fn(__VA_ARGS__, 3, 4); break;                                                         \
    case 34: fn(__VA_ARGS__, 2, 4); break;                                                         \
    case 33: fn(__VA_ARGS__, 1, 4); break;                                                         \
    case 28: fn(__VA_ARGS__, 4, 3); break;                                                         \
    case 27: fn(__VA_ARGS__, 3, 3); break;                                                         \
    case 26: fn(__VA_ARGS__, 2, 3); break;                                                         \
    case 25: fn(__VA_ARGS__, 1, 3); break;
#else
#define CASES_4(fn, ...)
#endif

TARGET void QDOT_NAME(uint32_t type, const void *base, uint64_t rows, uint64_t cols,
                      uint32_t group, uint64_t r0, int nr, const dsq_qx *x, int nt, float *out,
                      size_t ostride)
{
    const uint64_t ng = cols / group;
    const int max_nt = type == DSQ_TYPE_Q8 ? QDOT_MAX_NT : Q4_MAX_NT;
    if (nt > max_nt) { /* more tokens than this tile holds: in turns */
        for (int t = 0; t < nt; t += max_nt)
            QDOT_NAME(type, base, rows, cols, group, r0, nr, x + t,
                      nt - t < max_nt ? nt - t : max_nt, out + (size_t)t * ostride, ostride);
        return;
    }
    if (type == DSQ_TYPE_Q8) {
        const int8_t *w = (const int8_t *)base + r0 * cols;
        const uint16_t *d = dsq_q8_scales(base, rows, cols) + r0 * ng;
        switch (nt * 8 + nr) {
            CASES_4(q8_tile, w, cols, d, ng, group, x, out, ostride)
            CASES_2(q8_tile, w, cols, d, ng, group, x, out, ostride)
        }
    } else if (type == DSQ_TYPE_Q6) {
        const uint8_t *w = (const uint8_t *)base + r0 * cols / 2;
        const uint8_t *wh = dsq_q6_high(base, rows, cols) + r0 * cols / 4;
        const uint16_t *d = dsq_q6_scales(base, rows, cols) + r0 * ng;
        switch (nt * 8 + nr) {
            CASES_2(nibble_tile, w, wh, cols, d, ng, group, x, out, ostride)
        }
    } else {
        const uint8_t *w = (const uint8_t *)base + r0 * cols / 2;
        const uint16_t *dm = dsq_q4_scales(base, rows, cols) + 2 * r0 * ng;
        switch (nt * 8 + nr) {
            CASES_2(nibble_tile, w, NULL, cols, dm, ng, group, x, out, ostride)
        }
    }
}
