/* MHA decode kernels' results against the exact sums of their terms, for any cache type: the
 * test supplies each cached key and value as the double it stands for. fp32 products of exact
 * operands summed in fp32 take at most n + 3 roundings of the running sums for n terms (the
 * vector paths add partial sums of lanes, then the lanes), so each result lies within
 * (n + 3) 2^-24 of the sum of |terms|. Shared by tests/test_kv_bf16.c and tests/test_kv_q8.c. */
#ifndef DSQ_TEST_MHA_EXACT_H
#define DSQ_TEST_MHA_EXACT_H

#include <math.h>
#include <stddef.h>

/* The value a cache holds at element offset `at` (i * stride + k * hd + d). */
typedef double (*mha_cached)(const void *cache, size_t at);

/* Results off their bound, over nh query heads (kv head h / group) of hd values and ns
 * positions, a row of every kv head per position (rows stride apart): scores (rows of pstride, NaN
 * past ns: *stray counts any written there) against q . key, out against the p-weighted sums of the
 * values. */
static inline int mha_results_off(int nh, int group, int hd, int ns, size_t stride, const float *q,
                                  const float *p, size_t pstride, const float *scores,
                                  const float *out, mha_cached get, const void *keys,
                                  const void *values, int *stray)
{
    int bad = 0;
    for (int h = 0; h < nh; h++) {
        const size_t kv = (size_t)(h / group) * hd;
        for (size_t i = 0; i < pstride; i++) {
            if ((int)i >= ns) {
                *stray += !isnan(scores[h * pstride + i]);
                continue;
            }
            double exact = 0, abs_sum = 0;
            for (int d = 0; d < hd; d++) {
                const double t = (double)q[h * hd + d] * get(keys, kv + i * stride + d);
                exact += t;
                abs_sum += fabs(t);
            }
            bad += !(fabs(scores[h * pstride + i] - exact) <= (hd + 3) * ldexp(1, -24) * abs_sum);
        }
        for (int d = 0; d < hd; d++) {
            double exact = 0, abs_sum = 0;
            for (int i = 0; i < ns; i++) {
                const double t =
                    (double)p[h * pstride + i] * get(values, kv + (size_t)i * stride + d);
                exact += t;
                abs_sum += fabs(t);
            }
            bad += !(fabs(out[h * hd + d] - exact) <= (ns + 3) * ldexp(1, -24) * abs_sum);
        }
    }
    return bad;
}

#endif
