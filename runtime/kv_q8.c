/* The q8 KV cache's conversions and MHA's decode kernels over it (kv_q8.h): a scalar reference
 * and AVX2 and AVX-512 versions (fp32 FMAs on codes widened in registers), picked by the dot
 * kernels' switch (quant/dot.h), so tests can force the reference. */
#include "kv_q8.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "dot.h"

void kv_q8_store(const float *x, size_t n, int group, int8_t *codes, float *scales)
{
    for (size_t g0 = 0; g0 < n; g0 += (size_t)group) {
        float amax = 0;
        bool finite = true;
        for (int i = 0; i < group; i++) {
            amax = fmaxf(amax, fabsf(x[g0 + i]));
            finite &= isfinite(x[g0 + i]);
        }
        float *scale = &scales[g0 / (size_t)group];
        if (!finite) { /* NaN or inf: kept as a NaN scale, which the logits check meets */
            *scale = NAN;
            memset(codes + g0, 0, (size_t)group);
            continue;
        }
        *scale = amax / 127; /* 0 for a group of zeros, or one too small for a scale */
        for (int i = 0; i < group; i++) {
            /* |x| <= amax, so |x / scale| rounds to at most 127 (a subnormal scale, inexact,
             * may give a little more: clamped) */
            const long c = *scale > 0 ? lrintf(x[g0 + i] / *scale) : 0;
            codes[g0 + i] = (int8_t)(c > 127 ? 127 : c < -127 ? -127 : c);
        }
    }
}

void kv_q8_widen(const int8_t *codes, const float *scales, size_t n, int group, float *out)
{
    /* group by group: a prompt widens a layer's whole cache, and a divide per value would
     * cost more than the rest */
    for (size_t g0 = 0; g0 < n; g0 += (size_t)group) {
        const float scale = scales[g0 / (size_t)group];
        for (int i = 0; i < group; i++)
            out[g0 + i] = scale * (float)codes[g0 + i];
    }
}

/* Key (or value) i of kv head k: codes at i * stride + k * hd, their scales at that offset / g
 * (every offset a multiple of g). */
static inline size_t row_at(int i, size_t stride, int k, int hd)
{
    return (size_t)i * stride + (size_t)k * hd;
}

static void scores_ref(const int8_t *keys, const float *scales, size_t stride, int ns,
                       const float *q, int nh, int group, int hd, float *out, size_t sstride)
{
    const int g = kv_q8_group(hd);
    for (int h = 0; h < nh; h++)
        for (int i = 0; i < ns; i++) {
            const size_t at = row_at(i, stride, h / group, hd);
            const float *qh = q + (size_t)h * hd;
            float total = 0;
            for (int d0 = 0; d0 < hd; d0 += g) {
                float s = 0;
                for (int d = d0; d < d0 + g; d++)
                    s += qh[d] * (float)keys[at + d];
                total += scales[(at + d0) / g] * s;
            }
            out[(size_t)h * sstride + i] = total;
        }
}

static void sum_ref(const int8_t *values, const float *scales, size_t stride, int ns,
                    const float *p, size_t pstride, int nh, int group, int hd, float *out)
{
    const int g = kv_q8_group(hd);
    memset(out, 0, (size_t)nh * hd * sizeof(float));
    for (int h = 0; h < nh; h++)
        for (int i = 0; i < ns; i++) {
            const size_t at = row_at(i, stride, h / group, hd);
            float *o = out + (size_t)h * hd;
            for (int d0 = 0; d0 < hd; d0 += g) {
                const float w = p[(size_t)h * pstride + i] * scales[(at + d0) / g];
                for (int d = d0; d < d0 + g; d++)
                    o[d] += w * (float)values[at + d];
            }
        }
}

#if defined(__x86_64__)
#include <immintrin.h>

#define TARGET_AVX2 __attribute__((target("avx2,fma")))
#define TARGET_AVX512 __attribute__((target("avx512f,avx2,fma")))

/* Eight codes as fp32 (exact). */
TARGET_AVX2 static inline __m256 widen8(const int8_t *c)
{
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)c)));
}

TARGET_AVX2 static inline float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Four accumulators taken in turn: one chain of fused adds would wait on its own latency. The
 * scales are walked group by group (no division in the loops: a 64-bit divide costs more than
 * a group's arithmetic). */
TARGET_AVX2 static void scores_avx2(const int8_t *keys, const float *scales, size_t stride, int ns,
                                    const float *q, int nh, int group, int hd, float *out,
                                    size_t sstride)
{
    const int g = kv_q8_group(hd), per_head = hd / g;
    for (int h = 0; h < nh; h++)
        for (int i = 0; i < ns; i++) {
            const size_t at = row_at(i, stride, h / group, hd);
            const int8_t *k = keys + at;
            const float *sh = scales + at / (size_t)g, *qh = q + (size_t)h * hd;
            __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                             _mm256_setzero_ps()};
            int c = 0;
            for (int gi = 0; gi < per_head; gi++) {
                const __m256 s = _mm256_set1_ps(sh[gi]);
                for (int d = gi * g; d < (gi + 1) * g; d += 8, c++) {
                    const __m256 prod = _mm256_mul_ps(_mm256_loadu_ps(qh + d), widen8(k + d));
                    acc[c % 4] = _mm256_fmadd_ps(prod, s, acc[c % 4]);
                }
            }
            out[(size_t)h * sstride + i] =
                hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
        }
}

TARGET_AVX2 static void sum_avx2(const int8_t *values, const float *scales, size_t stride, int ns,
                                 const float *p, size_t pstride, int nh, int group, int hd,
                                 float *out)
{
    const int g = kv_q8_group(hd), per_head = hd / g;
    memset(out, 0, (size_t)nh * hd * sizeof(float));
    for (int h = 0; h < nh; h++) {
        float *o = out + (size_t)h * hd;
        for (int i = 0; i < ns; i++) {
            const size_t at = row_at(i, stride, h / group, hd);
            const int8_t *v = values + at;
            const float *sh = scales + at / (size_t)g, ph = p[(size_t)h * pstride + i];
            for (int gi = 0; gi < per_head; gi++) {
                const __m256 w = _mm256_set1_ps(ph * sh[gi]);
                for (int d = gi * g; d < (gi + 1) * g; d += 8)
                    _mm256_storeu_ps(o + d,
                                     _mm256_fmadd_ps(w, widen8(v + d), _mm256_loadu_ps(o + d)));
            }
        }
    }
}

/* Heads of HD_512 values (groups of 32) take the AVX-512 kernels: head by head, the query (or
 * the head's weighted sum) held in registers across the piece's positions, so a position costs
 * its codes' loads and widening and one multiply-add each. */
#define HD_512 128

TARGET_AVX512 static inline __m512 widen16(const int8_t *c)
{
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)c)));
}

TARGET_AVX512 static void scores_avx512(const int8_t *keys, const float *scales, size_t stride,
                                        int ns, const float *q, int nh, int group, float *out,
                                        size_t sstride)
{
    enum { G = 32, CHUNKS = HD_512 / 16 };
    for (int h = 0; h < nh; h++) {
        __m512 qv[CHUNKS];
        for (int c = 0; c < CHUNKS; c++)
            qv[c] = _mm512_loadu_ps(q + (size_t)h * HD_512 + 16 * c);
        for (int i = 0; i < ns; i++) {
            const size_t at = row_at(i, stride, h / group, HD_512);
            const int8_t *k = keys + at;
            const float *sh = scales + at / G;
            __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
            for (int c = 0; c < CHUNKS; c++) /* chunks 2c and 2c + 1 share a scale */
                acc[c % 2] = _mm512_fmadd_ps(_mm512_mul_ps(qv[c], widen16(k + 16 * c)),
                                             _mm512_set1_ps(sh[c / 2]), acc[c % 2]);
            out[(size_t)h * sstride + i] = _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1]));
        }
    }
}

TARGET_AVX512 static void sum_avx512(const int8_t *values, const float *scales, size_t stride,
                                     int ns, const float *p, size_t pstride, int nh, int group,
                                     float *out)
{
    enum { G = 32, CHUNKS = HD_512 / 16 };
    for (int h = 0; h < nh; h++) {
        __m512 o[CHUNKS];
        for (int c = 0; c < CHUNKS; c++)
            o[c] = _mm512_setzero_ps();
        for (int i = 0; i < ns; i++) {
            const size_t at = row_at(i, stride, h / group, HD_512);
            const int8_t *v = values + at;
            const float *sh = scales + at / G, ph = p[(size_t)h * pstride + i];
            for (int c = 0; c < CHUNKS; c++)
                o[c] = _mm512_fmadd_ps(_mm512_set1_ps(ph * sh[c / 2]), widen16(v + 16 * c), o[c]);
        }
        for (int c = 0; c < CHUNKS; c++)
            _mm512_storeu_ps(out + (size_t)h * HD_512 + 16 * c, o[c]);
    }
}

static bool use_avx512(int hd)
{
    return hd == HD_512 && dsq_dot_use_avx2() && dsq_dot_have_avx512();
}
#endif

/* The AVX2 kernels take heads of whole 8-value blocks (so every scale group is too). */
static bool use_avx2(int hd)
{
    return hd % 8 == 0 && dsq_dot_use_avx2();
}

void mha_q8_scores(const int8_t *keys, const float *scales, size_t stride, int ns, const float *q,
                   int nh, int group, int hd, float *scores, size_t sstride)
{
#if defined(__x86_64__)
    if (use_avx512(hd)) {
        scores_avx512(keys, scales, stride, ns, q, nh, group, scores, sstride);
        return;
    }
    if (use_avx2(hd)) {
        scores_avx2(keys, scales, stride, ns, q, nh, group, hd, scores, sstride);
        return;
    }
#endif
    scores_ref(keys, scales, stride, ns, q, nh, group, hd, scores, sstride);
}

void mha_q8_weighted_sum(const int8_t *values, const float *scales, size_t stride, int ns,
                         const float *p, size_t pstride, int nh, int group, int hd, float *out)
{
#if defined(__x86_64__)
    if (use_avx512(hd)) {
        sum_avx512(values, scales, stride, ns, p, pstride, nh, group, out);
        return;
    }
    if (use_avx2(hd)) {
        sum_avx2(values, scales, stride, ns, p, pstride, nh, group, hd, out);
        return;
    }
#endif
    sum_ref(values, scales, stride, ns, p, pstride, nh, group, hd, out);
}
