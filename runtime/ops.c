/* Norm, softmax and activation in fp32, and the vector loops of attention. */
#include "ops.h"

#include <math.h>
#include <stdbool.h>

#if defined(__x86_64__)
#include <immintrin.h>

#include "dot.h"

#define TARGET __attribute__((target("avx2,fma")))

TARGET static float dot_avx2(const float *a, const float *b, int n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = s0;
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s0 = _mm256_add_ps(s0, s1);
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s0), _mm256_extractf128_ps(s0, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    float sum = _mm_cvtss_f32(h);
    for (; i < n; i++)
        sum += a[i] * b[i];
    return sum;
}

TARGET static void axpy_avx2(float *y, float a, const float *x, int n)
{
    const __m256 av = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++)
        y[i] += a * x[i];
}

/* e^x for x <= 0 in 8 lanes: x = k ln2 + r with |r| <= ln2 / 2 (ln2 in two parts, so r is
 * exact to fp32), e^r by its Taylor series to r^7 (truncation below 6e-9, a twentieth of an
 * fp32 step), then 2^k placed in the exponent. Within 3 fp32 steps of e^x down to x = -87;
 * below that (where e^x < 2^-125) it gives 0. */
#define EXP_LOG2E 1.44269504088896341f
#define EXP_LN2_HI 0.693145751953125f
#define EXP_LN2_LO 1.42860682030941723e-6f
#define EXP_MIN -87.0f

TARGET static inline __m256 exp8(__m256 x)
{
    const __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(EXP_LOG2E)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(EXP_LN2_HI), x);
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(EXP_LN2_LO), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const __m256i bits = _mm256_slli_epi32(
        _mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    const __m256 e = _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
    return _mm256_and_ps(e, _mm256_cmp_ps(x, _mm256_set1_ps(EXP_MIN), _CMP_GE_OQ));
}

/* The first n of 8 lanes, for masked loads and stores. */
TARGET static inline __m256i lanes8(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* x[i] = e^(scale x[i] - max) with max the largest scale x[i]; returns the sum, *max_out max. */
TARGET static float scaled_exp_avx2(float *x, int n, float scale, float *max_out)
{
    const __m256 sv = _mm256_set1_ps(scale);
    __m256 mv = _mm256_set1_ps(-INFINITY);
    for (int i = 0; i < n; i += 8) {
        const __m256i k = lanes8(n - i);
        const __m256 v = _mm256_mul_ps(_mm256_maskload_ps(x + i, k), sv);
        mv = _mm256_max_ps(mv, _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), v,
                                                 _mm256_castsi256_ps(k)));
    }
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(mv), _mm256_extractf128_ps(mv, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    *max_out = _mm_cvtss_f32(h);
    const __m256 max = _mm256_set1_ps(*max_out);
    __m256 sum = _mm256_setzero_ps();
    for (int i = 0; i < n; i += 8) {
        const __m256i k = lanes8(n - i);
        const __m256 v = _mm256_mul_ps(_mm256_maskload_ps(x + i, k), sv);
        const __m256 e = _mm256_and_ps(exp8(_mm256_sub_ps(v, max)), _mm256_castsi256_ps(k));
        _mm256_maskstore_ps(x + i, k, e);
        sum = _mm256_add_ps(sum, e);
    }
    h = _mm_add_ps(_mm256_castps256_ps128(sum), _mm256_extractf128_ps(sum, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

TARGET static void scale_avx2(float *x, int n, float by)
{
    const __m256 b = _mm256_set1_ps(by);
    for (int i = 0; i < n; i += 8) {
        const __m256i k = lanes8(n - i);
        _mm256_maskstore_ps(x + i, k, _mm256_mul_ps(_mm256_maskload_ps(x + i, k), b));
    }
}

TARGET static void divide_avx2(float *x, int n, float by)
{
    const __m256 b = _mm256_set1_ps(by);
    for (int i = 0; i < n; i += 8) {
        const __m256i k = lanes8(n - i);
        _mm256_maskstore_ps(x + i, k, _mm256_div_ps(_mm256_maskload_ps(x + i, k), b));
    }
}

static int have_avx2 = -1; /* racing first callers store the same answer */

static bool use_avx2(void)
{
    if (have_avx2 < 0)
        __atomic_store_n(&have_avx2, dsq_dot_have_avx2(), __ATOMIC_RELAXED);
    return __atomic_load_n(&have_avx2, __ATOMIC_RELAXED);
}
#endif

float ops_dot(const float *a, const float *b, int n)
{
#if defined(__x86_64__)
    if (use_avx2())
        return dot_avx2(a, b, n);
#endif
    float sum = 0;
    for (int i = 0; i < n; i++)
        sum += a[i] * b[i];
    return sum;
}

void ops_axpy(float *y, float a, const float *x, int n)
{
#if defined(__x86_64__)
    if (use_avx2()) {
        axpy_avx2(y, a, x, n);
        return;
    }
#endif
    for (int i = 0; i < n; i++)
        y[i] += a * x[i];
}

void ops_rmsnorm(float *out, const float *x, const float *weight, int n, float eps)
{
    float ss = 0;
    for (int i = 0; i < n; i++)
        ss += x[i] * x[i];
    float scale = 1.0f / sqrtf(ss / (float)n + eps);
    for (int i = 0; i < n; i++)
        out[i] = weight[i] * (x[i] * scale);
}

/* e^(scale x - max) with libm's expf (scale 1 multiplies exactly); returns the sum. */
static float scaled_exp_scalar(float *x, int n, float scale, float *max_out)
{
    float max = -INFINITY;
    for (int i = 0; i < n; i++) {
        x[i] *= scale;
        max = x[i] > max ? x[i] : max;
    }
    float sum = 0;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    *max_out = max;
    return sum;
}

void ops_softmax(float *x, int n)
{
    float max;
    const float sum = scaled_exp_scalar(x, n, 1.0f, &max);
    for (int i = 0; i < n; i++)
        x[i] /= sum;
}

float ops_scaled_exp(float *x, int n, float scale, float *max)
{
#if defined(__x86_64__)
    if (use_avx2())
        return scaled_exp_avx2(x, n, scale, max);
#endif
    return scaled_exp_scalar(x, n, scale, max);
}

void ops_scaled_softmax(float *x, int n, float scale)
{
    float max;
    const float sum = ops_scaled_exp(x, n, scale, &max);
#if defined(__x86_64__)
    if (use_avx2()) {
        divide_avx2(x, n, sum);
        return;
    }
#endif
    for (int i = 0; i < n; i++)
        x[i] /= sum;
}

void ops_scale(float *x, int n, float by)
{
#if defined(__x86_64__)
    if (use_avx2()) {
        scale_avx2(x, n, by);
        return;
    }
#endif
    for (int i = 0; i < n; i++)
        x[i] *= by;
}

/* Across threads for a prompt's rows (libm's expf takes about 5 ns: a 512-token prompt of
 * V2-Lite's dense layer is 5.6 M of them); a decode step's few thousand stay on one. */
#define SWIGLU_PARALLEL_MIN (1 << 16)

void ops_swiglu(float *gate, const float *up, int n)
{
#pragma omp parallel for schedule(static) if (n >= SWIGLU_PARALLEL_MIN)
    for (int i = 0; i < n; i++)
        gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}
