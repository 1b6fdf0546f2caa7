/* The KV cache in 8 bits (--kv-cache q8), for MHA (DeepSeek-MoE): each group of cached key or
 * value elements as int8 codes and one fp32 scale, value = scale * code, scale = the group's
 * largest magnitude / 127, codes rounded to nearest. 1.125 bytes a value at groups of 32
 * against bf16's 2: a decode step at MoE-16B's size reads 520 MB of cache at 4,000 tokens
 * instead of 925. A group never straddles two heads, so a layer's cache is one flat run of
 * codes with its scales at element / group. The decode kernels read the codes where they lie
 * and widen them in registers. */
#ifndef DSQ_KV_Q8_H
#define DSQ_KV_Q8_H

#include <stddef.h>
#include <stdint.h>

/* Elements per scale for heads of hd values: 32 where hd allows, else the whole head. */
static inline int kv_q8_group(int hd)
{
    return hd % 32 == 0 ? 32 : hd;
}

/* Bytes a cached element takes, on average, at head size hd: a code and its share of a scale. */
static inline double kv_q8_bytes_per_value(int hd)
{
    return 1.0 + 4.0 / kv_q8_group(hd);
}

/* Quantizes n floats (n a multiple of group) into codes[n] and scales[n / group]. */
void kv_q8_store(const float *x, size_t n, int group, int8_t *codes, float *scales);

/* out[n] = the cached values of codes[n] and scales[n / group] as fp32 (n a multiple of group). */
void kv_q8_widen(const int8_t *codes, const float *scales, size_t n, int group, float *out);

/* MHA's decode over a q8 cache: each position's row holds its key (or value) heads one after
 * another, hd codes each, rows stride codes apart; a code's scale is at its offset /
 * kv_q8_group(hd). Query head h takes kv head h / group.
 * scores[h * sstride + i] = q[h * hd ..] . key i of head h / group, for h < nh, i < ns:
 * the sum over the head's scale groups of scale times the group's sum of q times codes. */
void mha_q8_scores(const int8_t *keys, const float *scales, size_t stride, int ns, const float *q,
                   int nh, int group, int hd, float *scores, size_t sstride);

/* out[h * hd + d] = sum over i < ns of p[h * pstride + i] value i of head h / group at d, for
 * h < nh, d < hd, positions in order. */
void mha_q8_weighted_sum(const int8_t *values, const float *scales, size_t stride, int ns,
                         const float *p, size_t pstride, int nh, int group, int hd, float *out);

#endif
