/* AVX2 + FMA + F16C dot kernels, the fast versions of dsq_dot_row_ref (quant/dot.h), and the row
 * widening and the transposed row sums that share their decoders (dsq_dequant_row_avx2 and
 * dsq_dequant_rows_sum_avx2, quant/dequant.h). Compiled for
 * those features function by function so the binary still runs on any x86-64; dot.c calls them
 * only when the CPU has them. Eight lanes of fp32 partial sums, so the order differs from the
 * reference; tests/test_dot.c bounds the difference. */
#include "dot.h"

#if defined(__x86_64__)

#include <immintrin.h>
#include <math.h>

#include "dequant.h"
#include "float16.h"
#include "q4.h"
#include "q6.h"
#include "q8.h"
#include "types.h"

#define TARGET __attribute__((target("avx2,fma,f16c")))

TARGET static inline float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

TARGET static inline float sum4(__m256 a0, __m256 a1, __m256 a2, __m256 a3)
{
    return hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

/* Eight weights as f32, one loader per plain float type. */
TARGET static inline __m256 load_f32(const void *w, uint64_t k)
{
    return _mm256_loadu_ps((const float *)w + k);
}

TARGET static inline __m256 load_bf16(const void *w, uint64_t k)
{
    const __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)w + k));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

TARGET static inline __m256 load_f16(const void *w, uint64_t k)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)w + k)));
}

/* The plain float kernels: four accumulators of eight lanes, then a scalar tail. */
#define DOT_FLOAT(name, load, scalar)                                                              \
    TARGET static float name(const void *w, uint64_t cols, const float *x)                         \
    {                                                                                              \
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                                \
        uint64_t k = 0;                                                                            \
        for (; k + 32 <= cols; k += 32) {                                                          \
            a0 = _mm256_fmadd_ps(load(w, k), _mm256_loadu_ps(x + k), a0);                          \
            a1 = _mm256_fmadd_ps(load(w, k + 8), _mm256_loadu_ps(x + k + 8), a1);                  \
            a2 = _mm256_fmadd_ps(load(w, k + 16), _mm256_loadu_ps(x + k + 16), a2);                \
            a3 = _mm256_fmadd_ps(load(w, k + 24), _mm256_loadu_ps(x + k + 24), a3);                \
        }                                                                                          \
        for (; k + 8 <= cols; k += 8)                                                              \
            a0 = _mm256_fmadd_ps(load(w, k), _mm256_loadu_ps(x + k), a0);                          \
        float sum = sum4(a0, a1, a2, a3);                                                          \
        for (; k < cols; k++)                                                                      \
            sum += scalar * x[k];                                                                  \
        return sum;                                                                                \
    }

DOT_FLOAT(dot_f32, load_f32, ((const float *)w)[k])
DOT_FLOAT(dot_bf16, load_bf16, dsq_bf16_to_f32(((const uint16_t *)w)[k]))
DOT_FLOAT(dot_f16, load_f16, dsq_f16_to_f32(((const uint16_t *)w)[k]))

/* Eight int8 codes as f32. */
TARGET static inline __m256 load_q8(const int8_t *q)
{
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)q)));
}

/* Per group: four accumulators of q * x, then d times their sum into one of two running totals
 * (two, so consecutive groups do not wait on each other's FMA). */
TARGET static float dot_q8(const int8_t *q, const uint16_t *d, uint64_t groups, uint32_t group,
                           const float *x)
{
    __m256 t0 = _mm256_setzero_ps(), t1 = t0;
    for (uint64_t g = 0; g < groups; g++) {
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (uint32_t k = 0; k < group; k += 32, q += 32, x += 32) {
            a0 = _mm256_fmadd_ps(load_q8(q), _mm256_loadu_ps(x), a0);
            a1 = _mm256_fmadd_ps(load_q8(q + 8), _mm256_loadu_ps(x + 8), a1);
            a2 = _mm256_fmadd_ps(load_q8(q + 16), _mm256_loadu_ps(x + 16), a2);
            a3 = _mm256_fmadd_ps(load_q8(q + 24), _mm256_loadu_ps(x + 24), a3);
        }
        const __m256 s = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
        const __m256 t = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(d[g])), s, t1);
        t1 = t0;
        t0 = t;
    }
    return hsum(_mm256_add_ps(t0, t1));
}

TARGET static float sum_f32(const float *x, uint32_t n)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (uint32_t k = 0; k < n; k += 32) {
        a0 = _mm256_add_ps(_mm256_loadu_ps(x + k), a0);
        a1 = _mm256_add_ps(_mm256_loadu_ps(x + k + 8), a1);
        a2 = _mm256_add_ps(_mm256_loadu_ps(x + k + 16), a2);
        a3 = _mm256_add_ps(_mm256_loadu_ps(x + k + 24), a3);
    }
    return sum4(a0, a1, a2, a3);
}

/* q4: 16 bytes hold 32 nibbles, element 2j low and 2j + 1 high in byte j. The bytes are broadcast
 * to both 128-bit halves; a byte shuffle puts byte j / 2 in the low byte of 32-bit lane j of each
 * eight-element chunk, and a mask keeps the low nibble in even lanes and the high nibble, still
 * shifted by 4, in odd lanes. Odd lanes therefore sum 16 * q * x; the total is scaled by 1/16 in
 * those lanes once at the end (exact: a power of two). */
#define Q4_SEL(c)                                                                                  \
    _mm256_setr_epi8(4 * c, -1, -1, -1, 4 * c, -1, -1, -1, 4 * c + 1, -1, -1, -1, 4 * c + 1, -1,   \
                     -1, -1, 4 * c + 2, -1, -1, -1, 4 * c + 2, -1, -1, -1, 4 * c + 3, -1, -1, -1,  \
                     4 * c + 3, -1, -1, -1)

TARGET static float dot_q4(const uint8_t *q, const uint16_t *dm, uint64_t groups, uint32_t group,
                           const float *x, const float *xsum)
{
    const __m256i sel0 = Q4_SEL(0), sel1 = Q4_SEL(1), sel2 = Q4_SEL(2), sel3 = Q4_SEL(3);
    const __m256i nib = _mm256_setr_epi32(0x0f, 0xf0, 0x0f, 0xf0, 0x0f, 0xf0, 0x0f, 0xf0);
    __m256 t0 = _mm256_setzero_ps(), t1 = t0;
    float msum = 0;
    for (uint64_t g = 0; g < groups; g++) {
        const float xs = xsum ? xsum[g] : sum_f32(x, group);
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (uint32_t k = 0; k < group; k += 32, q += 16, x += 32) {
            const __m256i b = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)q));
            const __m256 w0 =
                _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_shuffle_epi8(b, sel0), nib));
            const __m256 w1 =
                _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_shuffle_epi8(b, sel1), nib));
            const __m256 w2 =
                _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_shuffle_epi8(b, sel2), nib));
            const __m256 w3 =
                _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_shuffle_epi8(b, sel3), nib));
            a0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x), a0);
            a1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + 8), a1);
            a2 = _mm256_fmadd_ps(w2, _mm256_loadu_ps(x + 16), a2);
            a3 = _mm256_fmadd_ps(w3, _mm256_loadu_ps(x + 24), a3);
        }
        const __m256 s = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
        const __m256 t = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(dm[2 * g])), s, t1);
        t1 = t0;
        t0 = t;
        msum += _cvtsh_ss(dm[2 * g + 1]) * xs;
    }
    const __m256 unshift = _mm256_setr_ps(1, 0.0625f, 1, 0.0625f, 1, 0.0625f, 1, 0.0625f);
    return hsum(_mm256_mul_ps(_mm256_add_ps(t0, t1), unshift)) + msum;
}

/* Chunk c of a q4 run's 16 nibble bytes (broadcast to both halves) as eight exact codes 0..15:
 * q4's byte selector, then each lane shifted to its own nibble (0 even lanes, 4 odd lanes). */
TARGET static inline __m256i q4_codes(__m256i lo, __m256i sel)
{
    const __m256i shift = _mm256_setr_epi32(0, 4, 0, 4, 0, 4, 0, 4);
    return _mm256_and_si256(_mm256_srlv_epi32(_mm256_shuffle_epi8(lo, sel), shift),
                            _mm256_set1_epi32(15));
}

/* q6: a run of 32 elements is q4's 16 nibble bytes plus 8 bytes of top-bit pairs (quant/q6.h:
 * byte b holds elements 2b, 16 + 2b, 2b + 1, 17 + 2b at shifts 0, 2, 4, 6). Lane j of chunk c
 * (element e = 8c + j) takes nibble byte e / 2, as in q4, and top-bit byte e % 16 / 2, which is
 * chunk c % 2's nibble selector; per-lane shifts pick the nibble (0 or 4) and the bit pair
 * (0 or 4 for e < 16, 2 or 6 above), so the code is exact before the multiply. */
TARGET static inline __m256 q6_chunk(__m256i lo, __m256i hi, __m256i sel_lo, __m256i sel_hi,
                                     __m256i shift_hi)
{
    const __m256i low = q4_codes(lo, sel_lo);
    const __m256i top = _mm256_and_si256(
        _mm256_srlv_epi32(_mm256_shuffle_epi8(hi, sel_hi), shift_hi), _mm256_set1_epi32(3));
    const __m256i u = _mm256_or_si256(low, _mm256_slli_epi32(top, 4));
    return _mm256_cvtepi32_ps(_mm256_sub_epi32(u, _mm256_set1_epi32(32)));
}

TARGET static float dot_q6(const uint8_t *lo, const uint8_t *hi, const uint16_t *d, uint64_t groups,
                           uint32_t group, const float *x)
{
    const __m256i sel0 = Q4_SEL(0), sel1 = Q4_SEL(1), sel2 = Q4_SEL(2), sel3 = Q4_SEL(3);
    const __m256i low_pairs = _mm256_setr_epi32(0, 4, 0, 4, 0, 4, 0, 4);
    const __m256i high_pairs = _mm256_setr_epi32(2, 6, 2, 6, 2, 6, 2, 6);
    __m256 t0 = _mm256_setzero_ps(), t1 = t0;
    for (uint64_t g = 0; g < groups; g++) {
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (uint32_t k = 0; k < group; k += 32, lo += 16, hi += 8, x += 32) {
            const __m256i l = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)lo));
            const __m256i h = _mm256_broadcastsi128_si256(_mm_loadl_epi64((const __m128i *)hi));
            a0 = _mm256_fmadd_ps(q6_chunk(l, h, sel0, sel0, low_pairs), _mm256_loadu_ps(x), a0);
            a1 = _mm256_fmadd_ps(q6_chunk(l, h, sel1, sel1, low_pairs), _mm256_loadu_ps(x + 8), a1);
            a2 = _mm256_fmadd_ps(q6_chunk(l, h, sel2, sel0, high_pairs), _mm256_loadu_ps(x + 16),
                                 a2);
            a3 = _mm256_fmadd_ps(q6_chunk(l, h, sel3, sel1, high_pairs), _mm256_loadu_ps(x + 24),
                                 a3);
        }
        const __m256 s = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
        const __m256 t = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(d[g])), s, t1);
        t1 = t0;
        t0 = t;
    }
    return hsum(_mm256_add_ps(t0, t1));
}

TARGET float dsq_dot_row_avx2(uint32_t type, const void *base, uint64_t rows, uint64_t cols,
                              uint32_t group, uint64_t r, const float *x, const float *xsum)
{
    switch (type) {
    case DSQ_TYPE_F32:
        return dot_f32((const float *)base + r * cols, cols, x);
    case DSQ_TYPE_BF16:
        return dot_bf16((const uint16_t *)base + r * cols, cols, x);
    case DSQ_TYPE_F16:
        return dot_f16((const uint16_t *)base + r * cols, cols, x);
    case DSQ_TYPE_Q8:
        return dot_q8((const int8_t *)base + r * cols,
                      dsq_q8_scales(base, rows, cols) + r * (cols / group), cols / group, group, x);
    case DSQ_TYPE_Q4:
        return dot_q4((const uint8_t *)base + r * cols / 2,
                      dsq_q4_scales(base, rows, cols) + 2 * r * (cols / group), cols / group, group,
                      x, xsum);
    case DSQ_TYPE_Q6:
        return dot_q6((const uint8_t *)base + r * cols / 2,
                      dsq_q6_high(base, rows, cols) + r * cols / 4,
                      dsq_q6_scales(base, rows, cols) + r * (cols / group), cols / group, group, x);
    default: /* unreachable: the reader refuses unknown types */
        return dsq_dot_row_ref(type, base, rows, cols, group, r, x, xsum);
    }
}

/* dsq_dequant_row's values, bit for bit: a q8 or q6 weight d * q is exact in f32 (an 11-bit
 * scale times a code of at most 7 bits), so its one multiply rounds nothing, and a q4 weight
 * d * q + m rounds once whether or not the add is fused. */
TARGET void dsq_dequant_row_avx2(uint32_t type, const void *base, uint64_t rows, uint64_t cols,
                                 uint32_t group, uint64_t r, float *out)
{
    const uint64_t groups = group ? cols / group : 0;
    const __m256i sel[4] = {Q4_SEL(0), Q4_SEL(1), Q4_SEL(2), Q4_SEL(3)};
    switch (type) {
    case DSQ_TYPE_BF16:
    case DSQ_TYPE_F16: {
        const uint16_t *w = (const uint16_t *)base + r * cols;
        uint64_t k = 0;
        for (; k + 8 <= cols; k += 8)
            _mm256_storeu_ps(out + k, type == DSQ_TYPE_BF16 ? load_bf16(w, k) : load_f16(w, k));
        for (; k < cols; k++)
            out[k] = type == DSQ_TYPE_BF16 ? dsq_bf16_to_f32(w[k]) : dsq_f16_to_f32(w[k]);
        return;
    }
    case DSQ_TYPE_Q8: {
        const int8_t *q = (const int8_t *)base + r * cols;
        const uint16_t *d = dsq_q8_scales(base, rows, cols) + r * groups;
        for (uint64_t g = 0; g < groups; g++) {
            const __m256 dg = _mm256_set1_ps(_cvtsh_ss(d[g]));
            for (uint32_t k = 0; k < group; k += 8, q += 8, out += 8)
                _mm256_storeu_ps(out, _mm256_mul_ps(dg, load_q8(q)));
        }
        return;
    }
    case DSQ_TYPE_Q4: {
        const uint8_t *q = (const uint8_t *)base + r * cols / 2;
        const uint16_t *dm = dsq_q4_scales(base, rows, cols) + 2 * r * groups;
        for (uint64_t g = 0; g < groups; g++) {
            const __m256 dg = _mm256_set1_ps(_cvtsh_ss(dm[2 * g]));
            const __m256 mg = _mm256_set1_ps(_cvtsh_ss(dm[2 * g + 1]));
            for (uint32_t k = 0; k < group; k += 32, q += 16, out += 32) {
                const __m256i b = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)q));
                for (int c = 0; c < 4; c++)
                    _mm256_storeu_ps(
                        out + 8 * c,
                        _mm256_fmadd_ps(dg, _mm256_cvtepi32_ps(q4_codes(b, sel[c])), mg));
            }
        }
        return;
    }
    case DSQ_TYPE_Q6: {
        const uint8_t *lo = (const uint8_t *)base + r * cols / 2;
        const uint8_t *hi = dsq_q6_high(base, rows, cols) + r * cols / 4;
        const uint16_t *d = dsq_q6_scales(base, rows, cols) + r * groups;
        const __m256i low_pairs = _mm256_setr_epi32(0, 4, 0, 4, 0, 4, 0, 4);
        const __m256i high_pairs = _mm256_setr_epi32(2, 6, 2, 6, 2, 6, 2, 6);
        for (uint64_t g = 0; g < groups; g++) {
            const __m256 dg = _mm256_set1_ps(_cvtsh_ss(d[g]));
            for (uint32_t k = 0; k < group; k += 32, lo += 16, hi += 8, out += 32) {
                const __m256i l = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)lo));
                const __m256i h = _mm256_broadcastsi128_si256(_mm_loadl_epi64((const __m128i *)hi));
                for (int c = 0; c < 4; c++)
                    _mm256_storeu_ps(out + 8 * c,
                                     _mm256_mul_ps(dg, q6_chunk(l, h, sel[c], sel[c % 2],
                                                                c < 2 ? low_pairs : high_pairs)));
            }
        }
        return;
    }
    default: /* f32, and the unreachable unknown types */
        dsq_dequant_row(type, base, rows, cols, group, r, out);
    }
}

#endif

#if defined(__x86_64__)
/* A tile of plain float rows (f32, bf16, f16) by tokens: out[t * ostride + i] = row r0 + i dotted
 * with x[t], i < nr (1..4), t < nt (1..2). Each weight load is widened once and serves both
 * tokens; each activation load serves all rows. Eight lanes per (row, token), then a scalar
 * tail; the order differs from dsq_dot_row_ref's, within the same bound. */
#define TILE_FLOAT(name, load, scalar)                                                             \
    TARGET static inline __attribute__((always_inline)) void name(                                 \
        const void *base, uint64_t cols, uint64_t r0, const float *const *x, float *out,           \
        size_t ostride, const int nr, const int nt)                                                \
    {                                                                                              \
        __m256 acc[4][2];                                                                          \
        for (int i = 0; i < 4; i++)                                                                \
            acc[i][0] = acc[i][1] = _mm256_setzero_ps();                                           \
        uint64_t k = 0;                                                                            \
        for (; k + 8 <= cols; k += 8) {                                                            \
            __m256 xv[2];                                                                          \
            _Pragma("GCC unroll 2") for (int t = 0; t < nt; t++) xv[t] = _mm256_loadu_ps(x[t] + k); \
            _Pragma("GCC unroll 4") for (int i = 0; i < nr; i++)                                   \
            {                                                                                      \
                const void *w = row_at(base, r0 + (uint64_t)i, cols);                              \
                const __m256 wv = load(w, k);                                                      \
                _Pragma("GCC unroll 2") for (int t = 0; t < nt; t++) acc[i][t] =                   \
                    _mm256_fmadd_ps(wv, xv[t], acc[i][t]);                                         \
            }                                                                                      \
        }                                                                                          \
        for (int i = 0; i < nr; i++) {                                                             \
            const void *w = row_at(base, r0 + (uint64_t)i, cols);                                  \
            for (int t = 0; t < nt; t++) {                                                         \
                float sum = hsum(acc[i][t]);                                                       \
                for (uint64_t j = k; j < cols; j++)                                                \
                    sum += scalar * x[t][j];                                                       \
                out[(size_t)t * ostride + (size_t)i] = sum;                                        \
            }                                                                                      \
        }                                                                                          \
    }

/* Start of row r; the element size comes from the loader's type. */
#define row_at(base, r, cols) ((const char *)(base) + (r) * (cols) * elem)

#define elem 4
TILE_FLOAT(tile_f32, load_f32, ((const float *)w)[j])
#undef elem
#define elem 2
TILE_FLOAT(tile_bf16, load_bf16, dsq_bf16_to_f32(((const uint16_t *)w)[j]))
TILE_FLOAT(tile_f16, load_f16, dsq_f16_to_f32(((const uint16_t *)w)[j]))
#undef elem
#undef row_at

#define TILE_SHAPES(fn)                                                                            \
    switch (nt * 8 + nr) {                                                                         \
    case 20: fn(base, cols, r0, x, out, ostride, 4, 2); break;                                     \
    case 19: fn(base, cols, r0, x, out, ostride, 3, 2); break;                                     \
    case 18: fn(base, cols, r0, x, out, ostride, 2, 2); break;                                     \
    case 17: fn(base, cols, r0, x, out, ostride, 1, 2); break;                                     \
    case 12: fn(base, cols, r0, x, out, ostride, 4, 1); break;                                     \
    case 11: fn(base, cols, r0, x, out, ostride, 3, 1); break;                                     \
    case 10: fn(base, cols, r0, x, out, ostride, 2, 1); break;                                     \
    default: fn(base, cols, r0, x, out, ostride, 1, 1); break;                                     \
    }

TARGET void dsq_dot_tile_avx2(uint32_t type, const void *base, uint64_t cols, uint64_t r0, int nr,
                              const float *const *x, int nt, float *out, size_t ostride)
{
    if (type == DSQ_TYPE_F32)
        TILE_SHAPES(tile_f32)
    else if (type == DSQ_TYPE_BF16)
        TILE_SHAPES(tile_bf16)
    else
        TILE_SHAPES(tile_f16)
}

/* Elements k..k+31 of row r (k a multiple of 32, so within one group) as four vectors of eight,
 * the values dsq_dequant_row gives (the same decoders as dsq_dequant_row_avx2); g: the index of
 * their group's scale among the tensor's. Inlined into each type's loop, where type is a
 * constant. */
TARGET static inline __attribute__((always_inline)) void decode32(uint32_t type, const void *base,
                                                                  uint64_t rows, uint64_t cols,
                                                                  uint64_t r, uint64_t k,
                                                                  uint64_t g, __m256 w[4])
{
    const __m256i sel[4] = {Q4_SEL(0), Q4_SEL(1), Q4_SEL(2), Q4_SEL(3)};
    switch (type) {
    case DSQ_TYPE_F32:
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++)
            w[c] = load_f32((const float *)base + r * cols, k + 8 * c);
        return;
    case DSQ_TYPE_BF16:
    case DSQ_TYPE_F16:
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++)
            w[c] = type == DSQ_TYPE_BF16 ? load_bf16((const uint16_t *)base + r * cols, k + 8 * c)
                                         : load_f16((const uint16_t *)base + r * cols, k + 8 * c);
        return;
    case DSQ_TYPE_Q8: {
        const __m256 d = _mm256_set1_ps(_cvtsh_ss(dsq_q8_scales(base, rows, cols)[g]));
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++)
            w[c] = _mm256_mul_ps(d, load_q8((const int8_t *)base + r * cols + k + 8 * c));
        return;
    }
    case DSQ_TYPE_Q4: {
        const uint16_t *dm = dsq_q4_scales(base, rows, cols) + 2 * g;
        const __m256 d = _mm256_set1_ps(_cvtsh_ss(dm[0])), m = _mm256_set1_ps(_cvtsh_ss(dm[1]));
        const __m256i b = _mm256_broadcastsi128_si256(
            _mm_loadu_si128((const __m128i *)((const uint8_t *)base + (r * cols + k) / 2)));
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++)
            w[c] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(q4_codes(b, sel[c])), m);
        return;
    }
    default: { /* q6 */
        const __m256 d = _mm256_set1_ps(_cvtsh_ss(dsq_q6_scales(base, rows, cols)[g]));
        const __m256i low_pairs = _mm256_setr_epi32(0, 4, 0, 4, 0, 4, 0, 4);
        const __m256i high_pairs = _mm256_setr_epi32(2, 6, 2, 6, 2, 6, 2, 6);
        const __m256i l = _mm256_broadcastsi128_si256(
            _mm_loadu_si128((const __m128i *)((const uint8_t *)base + (r * cols + k) / 2)));
        const __m256i h = _mm256_broadcastsi128_si256(
            _mm_loadl_epi64((const __m128i *)(dsq_q6_high(base, rows, cols) + (r * cols + k) / 4)));
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++)
            w[c] = _mm256_mul_ps(
                d, q6_chunk(l, h, sel[c], sel[c % 2], c < 2 ? low_pairs : high_pairs));
        return;
    }
    }
}

/* y[k..k + 32 runs) for one type: eight accumulators of eight lanes stay in registers while the
 * rows pass, so each weight is decoded once and y is written once. */
TARGET static inline __attribute__((always_inline)) void
rows_sum_block(uint32_t type, const void *base, uint64_t rows, uint64_t cols, uint32_t group,
               uint64_t r0, int n, const float *x, uint64_t k, int runs, float *y)
{
    __m256 acc[8];
#pragma GCC unroll 8
    for (int a = 0; a < 8; a++)
        acc[a] = _mm256_setzero_ps();
    /* the scales of row r0's groups at k and k + 32 (divisions once per block, not per row) */
    const uint64_t groups = group ? cols / group : 0;
    const uint64_t g0 = group ? r0 * groups + k / group : 0,
                   g1 = group ? r0 * groups + (k + 32) / group : 0;
    for (int i = 0; i < n; i++) {
        const __m256 xi = _mm256_set1_ps(x[i]);
#pragma GCC unroll 2
        for (int u = 0; u < runs; u++) {
            __m256 w[4];
            decode32(type, base, rows, cols, r0 + (uint64_t)i, k + 32 * (uint64_t)u,
                     (u ? g1 : g0) + (uint64_t)i * groups, w);
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++)
                acc[4 * u + c] = _mm256_fmadd_ps(xi, w[c], acc[4 * u + c]);
        }
    }
#pragma GCC unroll 8
    for (int a = 0; a < 4 * runs; a++)
        _mm256_storeu_ps(y + k + 8 * a, acc[a]);
}

#define ROWS_SUM(T)                                                                                \
    for (; k + 64 <= cols; k += 64)                                                                \
        rows_sum_block(T, base, rows, cols, group, r0, n, x, k, 2, y);                             \
    if (k + 32 <= cols) {                                                                          \
        rows_sum_block(T, base, rows, cols, group, r0, n, x, k, 1, y);                             \
        k += 32;                                                                                   \
    }

TARGET void dsq_dequant_rows_sum_avx2(uint32_t type, const void *base, uint64_t rows, uint64_t cols,
                                      uint32_t group, uint64_t r0, int n, const float *x, float *y)
{
    /* the rows are read a block of columns at a time, a strided pattern the prefetchers serve
     * slowly from memory: ask for all their lines in address order first */
    const uint64_t bits = type == DSQ_TYPE_F32                         ? 32
                          : type == DSQ_TYPE_Q8                        ? 8
                          : type == DSQ_TYPE_Q4 || type == DSQ_TYPE_Q6 ? 4
                                                                       : 16;
    const char *first = (const char *)base + r0 * cols * bits / 8;
    for (uint64_t b = 0; b < (uint64_t)n * cols * bits / 8; b += 64)
        _mm_prefetch(first + b, _MM_HINT_T0);
    uint64_t k = 0;
    switch (type) {
    case DSQ_TYPE_F32:
        ROWS_SUM(DSQ_TYPE_F32)
        break;
    case DSQ_TYPE_BF16:
        ROWS_SUM(DSQ_TYPE_BF16)
        break;
    case DSQ_TYPE_F16:
        ROWS_SUM(DSQ_TYPE_F16)
        break;
    case DSQ_TYPE_Q8:
        ROWS_SUM(DSQ_TYPE_Q8)
        break;
    case DSQ_TYPE_Q4:
        ROWS_SUM(DSQ_TYPE_Q4)
        break;
    default:
        ROWS_SUM(DSQ_TYPE_Q6)
        break;
    }
    /* plain floats past the last 32 (quantized rows are whole groups of 32 or more) */
    for (; k < cols; k++) {
        float sum = 0;
        for (int i = 0; i < n; i++) {
            const uint64_t at = (r0 + (uint64_t)i) * cols + k;
            const float w = type == DSQ_TYPE_F32    ? ((const float *)base)[at]
                            : type == DSQ_TYPE_BF16 ? dsq_bf16_to_f32(((const uint16_t *)base)[at])
                                                    : dsq_f16_to_f32(((const uint16_t *)base)[at]);
            sum = fmaf(x[i], w, sum);
        }
        y[k] = sum;
    }
}
#undef ROWS_SUM

#endif
