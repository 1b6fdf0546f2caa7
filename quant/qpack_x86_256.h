/* The packed kernel of quant/qpack.h on 256-bit registers, written once and built per ISA: the
 * including file defines TARGET (the function attribute) and QPACK_NAME (the entry point), and
 * QPACK_DPBUSD where the ISA has vpdpbusd (AVX-VNNI), else the kernel uses AVX2's maddubs and
 * madd. Each 64-byte chunk of the layout is two 32-byte halves, rows 0-7 and rows 8-15 of the
 * block, so every token has two accumulators (lane r: row r, and row 8 + r). With 16 vector
 * registers a group passes over at most 4 tokens at a time; 5..8 tokens take two passes over
 * the group's weights, which are in L1 by then. */
#include <immintrin.h>
#include <string.h>

#include "qpack.h"
#include "types.h"

#define INLINE TARGET static inline __attribute__((always_inline))

/* Tokens one pass over a group's weights holds. */
#define PASS_TOKENS 4

/* Four codes of token x from element k, broadcast to every lane. */
INLINE __m256i slice(const dsq_qx *x, uint64_t k)
{
    int32_t v;
    memcpy(&v, x->q + k, 4);
    return _mm256_set1_epi32(v);
}

/* lo[t], hi[t] (t < n) += the integer sums of elements k0..k1-1 of the block's rows 0-7 and
 * 8-15 with token x[t]; for QPACK_DPBUSD these are sums of (w + 128) * x, else of w * x. */
INLINE void q8_pass(const uint8_t *codes, uint64_t k0, uint64_t k1, const dsq_qx *x,
                    __m256i *lo, __m256i *hi, const int n)
{
#ifndef QPACK_DPBUSD
    const __m256i flip = _mm256_set1_epi8((char)0x80), ones = _mm256_set1_epi16(1);
#endif
    for (uint64_t k = k0; k < k1; k += 4) {
        const __m256i u0 = _mm256_loadu_si256((const void *)(codes + 16 * k));
        const __m256i u1 = _mm256_loadu_si256((const void *)(codes + 16 * k + 32));
#ifdef QPACK_DPBUSD
#pragma GCC unroll 4
        for (int t = 0; t < n; t++) {
            const __m256i s = slice(&x[t], k);
            lo[t] = _mm256_dpbusd_avx_epi32(lo[t], u0, s);
            hi[t] = _mm256_dpbusd_avx_epi32(hi[t], u1, s);
        }
#else
        /* maddubs adds two u8 * s8 products into an int16 that saturates: (w + 128) * x reaches
         * 255 * 127, two of them 64770 > 32767. So take w back (xor 0x80) and multiply |w| (u8,
         * at most 128 for w = -128) by x with w's sign (sign_epi8; |x| <= 127, so -x fits in
         * s8, and x is zeroed where w = 0, as |w| is): each product is w * x exactly and a pair
         * is at most 2 * 128 * 127 = 32512 <= 32767, so nothing saturates; madd then adds
         * pairs of int16 into int32 exactly. */
        const __m256i w0 = _mm256_xor_si256(u0, flip), w1 = _mm256_xor_si256(u1, flip);
        const __m256i a0 = _mm256_abs_epi8(w0), a1 = _mm256_abs_epi8(w1);
#pragma GCC unroll 4
        for (int t = 0; t < n; t++) {
            const __m256i s = slice(&x[t], k);
            lo[t] = _mm256_add_epi32(
                lo[t], _mm256_madd_epi16(_mm256_maddubs_epi16(a0, _mm256_sign_epi8(s, w0)), ones));
            hi[t] = _mm256_add_epi32(
                hi[t], _mm256_madd_epi16(_mm256_maddubs_epi16(a1, _mm256_sign_epi8(s, w1)), ones));
        }
#endif
    }
}

/* The same for q4 (q6 false): each chunk's low nibbles are elements k..k+3, the high ones
 * k+4..k+7. For q6 (true) the chunk's last 32 bytes hold the top bits, or'ed in at bits 4-5
 * (pairs 0 and 1 for rows 0-7, 2 and 3 for rows 8-15). Called with q6 a constant. */
INLINE void nibble_pass(const uint8_t *codes, uint64_t k0, uint64_t k1, const dsq_qx *x,
                        __m256i *lo, __m256i *hi, const int n, const bool q6)
{
    const __m256i low = _mm256_set1_epi8(15), top = _mm256_set1_epi8(0x30);
#ifndef QPACK_DPBUSD
    const __m256i ones = _mm256_set1_epi16(1);
#endif
    for (uint64_t k = k0; k < k1; k += 8) {
        const uint8_t *c = codes + (q6 ? 12 : 8) * k;
        const __m256i v0 = _mm256_loadu_si256((const void *)c);
        const __m256i v1 = _mm256_loadu_si256((const void *)(c + 32));
        __m256i l0 = _mm256_and_si256(v0, low), l1 = _mm256_and_si256(v1, low);
        __m256i h0 = _mm256_and_si256(_mm256_srli_epi16(v0, 4), low);
        __m256i h1 = _mm256_and_si256(_mm256_srli_epi16(v1, 4), low);
        if (q6) {
            const __m256i t = _mm256_loadu_si256((const void *)(c + 64));
            l0 = _mm256_or_si256(l0, _mm256_and_si256(_mm256_slli_epi16(t, 4), top));
            h0 = _mm256_or_si256(h0, _mm256_and_si256(_mm256_slli_epi16(t, 2), top));
            l1 = _mm256_or_si256(l1, _mm256_and_si256(t, top));
            h1 = _mm256_or_si256(h1, _mm256_and_si256(_mm256_srli_epi16(t, 2), top));
        }
#pragma GCC unroll 4
        for (int j = 0; j < n; j++) {
            const __m256i s = slice(&x[j], k), s4 = slice(&x[j], k + 4);
#ifdef QPACK_DPBUSD
            lo[j] = _mm256_dpbusd_avx_epi32(_mm256_dpbusd_avx_epi32(lo[j], l0, s), h0, s4);
            hi[j] = _mm256_dpbusd_avx_epi32(_mm256_dpbusd_avx_epi32(hi[j], l1, s), h1, s4);
#else
            /* codes at most 15 (q4) or 63 (q6) times |x| <= 127: a maddubs pair is at most
             * 16002, the sum of the two below 32004, so the int16 sums are exact */
            const __m256i p0 = _mm256_add_epi16(_mm256_maddubs_epi16(l0, s),
                                                _mm256_maddubs_epi16(h0, s4));
            const __m256i p1 = _mm256_add_epi16(_mm256_maddubs_epi16(l1, s),
                                                _mm256_maddubs_epi16(h1, s4));
            lo[j] = _mm256_add_epi32(lo[j], _mm256_madd_epi16(p0, ones));
            hi[j] = _mm256_add_epi32(hi[j], _mm256_madd_epi16(p1, ones));
#endif
        }
    }
}

INLINE void q4_pass(const uint8_t *codes, uint64_t k0, uint64_t k1, const dsq_qx *x,
                    __m256i *lo, __m256i *hi, const int n)
{
    nibble_pass(codes, k0, k1, x, lo, hi, n, false);
}

INLINE void q6_pass(const uint8_t *codes, uint64_t k0, uint64_t k1, const dsq_qx *x,
                    __m256i *lo, __m256i *hi, const int n)
{
    nibble_pass(codes, k0, k1, x, lo, hi, n, true);
}

/* Group sums for nt tokens, PASS_TOKENS at a time. */
#define GROUP_PASSES(pass, codes, k0, k1, x, lo, hi, nt)                                          \
    do {                                                                                           \
        for (int t = 0; t < (nt); t++)                                                             \
            lo[t] = hi[t] = _mm256_setzero_si256();                                                \
        if ((nt) <= PASS_TOKENS) {                                                                 \
            pass(codes, k0, k1, x, lo, hi, nt);                                                    \
        } else {                                                                                   \
            pass(codes, k0, k1, x, lo, hi, PASS_TOKENS);                                           \
            pass(codes, k0, k1, x + PASS_TOKENS, lo + PASS_TOKENS, hi + PASS_TOKENS,              \
                 (nt) - PASS_TOKENS);                                                              \
        }                                                                                          \
    } while (0)

INLINE __m256 half_scales(const uint16_t *s)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const void *)s));
}

/* q8 (q6 false) and q6: one f16 d per row and group. The integer sums carry an offset to take
 * off: 128 times the activation codes' sum for q8 on vpdpbusd (codes w + 128), 32 times it for
 * q6 (u = q + 32), none for q8 on AVX2. Called with q6 a constant. */
INLINE void scaled_tile(const uint8_t *codes, const uint16_t *scales, uint64_t cols,
                        uint32_t group, const dsq_qx *x, float *out, size_t ostride, const int nt,
                        const bool q6)
{
#ifdef QPACK_DPBUSD
    const int32_t offset = q6 ? 32 : 128;
#else
    const int32_t offset = q6 ? 32 : 0;
#endif
    __m256 flo[DSQ_QPACK_MAX_TOKENS], fhi[DSQ_QPACK_MAX_TOKENS];
    for (int t = 0; t < nt; t++)
        flo[t] = fhi[t] = _mm256_setzero_ps();
    for (uint64_t g = 0; g < cols / group; g++) {
        __m256i lo[DSQ_QPACK_MAX_TOKENS], hi[DSQ_QPACK_MAX_TOKENS];
        if (q6)
            GROUP_PASSES(q6_pass, codes, g * group, (g + 1) * group, x, lo, hi, nt);
        else
            GROUP_PASSES(q8_pass, codes, g * group, (g + 1) * group, x, lo, hi, nt);
        const __m256 d0 = half_scales(scales + 16 * g), d1 = half_scales(scales + 16 * g + 8);
#pragma GCC unroll 8
        for (int t = 0; t < nt; t++) {
            __m256i s0 = lo[t], s1 = hi[t];
            if (offset) {
                const __m256i off = _mm256_set1_epi32(offset * x[t].s[g]);
                s0 = _mm256_sub_epi32(s0, off);
                s1 = _mm256_sub_epi32(s1, off);
            }
            const __m256 xd = _mm256_set1_ps(x[t].d[g]);
            flo[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s0), _mm256_mul_ps(d0, xd), flo[t]);
            fhi[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s1), _mm256_mul_ps(d1, xd), fhi[t]);
        }
    }
    for (int t = 0; t < nt; t++) {
        _mm256_storeu_ps(out + (size_t)t * ostride, flo[t]);
        _mm256_storeu_ps(out + (size_t)t * ostride + 8, fhi[t]);
    }
}

INLINE void q8_tile(const uint8_t *codes, const uint16_t *scales, uint64_t cols, uint32_t group,
                    const dsq_qx *x, float *out, size_t ostride, const int nt)
{
    scaled_tile(codes, scales, cols, group, x, out, ostride, nt, false);
}

INLINE void q4_tile(const uint8_t *codes, const uint16_t *scales, uint64_t cols, uint32_t group,
                    const dsq_qx *x, float *out, size_t ostride, const int nt)
{
    __m256 flo[DSQ_QPACK_MAX_TOKENS], fhi[DSQ_QPACK_MAX_TOKENS];
    for (int t = 0; t < nt; t++)
        flo[t] = fhi[t] = _mm256_setzero_ps();
    for (uint64_t g = 0; g < cols / group; g++) {
        __m256i lo[DSQ_QPACK_MAX_TOKENS], hi[DSQ_QPACK_MAX_TOKENS];
        GROUP_PASSES(q4_pass, codes, g * group, (g + 1) * group, x, lo, hi, nt);
        const uint16_t *s = scales + 32 * g;
        const __m256 d0 = half_scales(s), d1 = half_scales(s + 8);
        const __m256 m0 = half_scales(s + 16), m1 = half_scales(s + 24);
#pragma GCC unroll 8
        for (int t = 0; t < nt; t++) {
            const float xd = x[t].d[g];
            const __m256 vxd = _mm256_set1_ps(xd), xm = _mm256_set1_ps(xd * (float)x[t].s[g]);
            flo[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(lo[t]), _mm256_mul_ps(d0, vxd), flo[t]);
            fhi[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(hi[t]), _mm256_mul_ps(d1, vxd), fhi[t]);
            flo[t] = _mm256_fmadd_ps(m0, xm, flo[t]);
            fhi[t] = _mm256_fmadd_ps(m1, xm, fhi[t]);
        }
    }
    for (int t = 0; t < nt; t++) {
        _mm256_storeu_ps(out + (size_t)t * ostride, flo[t]);
        _mm256_storeu_ps(out + (size_t)t * ostride + 8, fhi[t]);
    }
}

INLINE void q6_tile(const uint8_t *codes, const uint16_t *scales, uint64_t cols, uint32_t group,
                    const dsq_qx *x, float *out, size_t ostride, const int nt)
{
    scaled_tile(codes, scales, cols, group, x, out, ostride, nt, true);
}

#define QPACK_HAS_Q6 /* qpack_entry.h */
#include "qpack_entry.h"
