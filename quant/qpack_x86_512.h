/* The codes of one q4 or q6 chunk of quant/qpack.h's layout (8 k of 16 rows) as two 64-byte
 * lines of u8, lane 4 r + j of row r: lo holds k..k + 3, hi k + 4..k + 7; for both the AVX-512
 * VNNI kernel (quant/qpack_avx512vnni.c) and the AMX one's B tiles (quant/qpack_amx.c). q6's
 * last 32 bytes of top bits serve rows r (bit pairs 0, 1) and r + 8 (pairs 2, 3) in byte
 * 4 r + j: the half for rows 8-15 takes them shifted down by four, then both are or'ed in at
 * bits 4-5 (u = q + 32 in [0, 63]). */
#ifndef DSQ_QPACK_X86_512_H
#define DSQ_QPACK_X86_512_H

#include <immintrin.h>
#include <stdbool.h>
#include <stdint.h>

__attribute__((target("avx512f,avx512bw"), always_inline)) static inline void
dsq_qpack512_nibbles(const uint8_t *chunk, bool q6, __m512i *lo, __m512i *hi)
{
    const __m512i low = _mm512_set1_epi8(15);
    const __m512i v = _mm512_loadu_si512((const void *)chunk);
    *lo = _mm512_and_si512(v, low);
    *hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
    if (q6) {
        const __m512i top = _mm512_set1_epi8(0x30);
        const __m256i t8 = _mm256_loadu_si256((const void *)(chunk + 64));
        const __m512i tb =
            _mm512_inserti64x4(_mm512_castsi256_si512(t8), _mm256_srli_epi16(t8, 4), 1);
        *lo = _mm512_or_si512(*lo, _mm512_and_si512(_mm512_slli_epi16(tb, 4), top));
        *hi = _mm512_or_si512(*hi, _mm512_and_si512(_mm512_slli_epi16(tb, 2), top));
    }
}

#endif
