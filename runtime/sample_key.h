/* The samplers' sort key (runtime/sampler.c, cuda/sample.cu): ascending keys list probabilities
 * from the highest down and equal ones by index. Probabilities are >= 0, so their bits order as
 * their values. */
#ifndef DSQ_SAMPLE_KEY_H
#define DSQ_SAMPLE_KEY_H

#include <stdint.h>
#include <string.h>

#include "float16.h" /* DSQ_HD */

static inline DSQ_HD uint64_t sample_key(float prob, int index)
{
    uint32_t bits;
    memcpy(&bits, &prob, 4);
    return ((uint64_t)(0xffffffffu - bits) << 32) | (uint32_t)index;
}

static inline DSQ_HD float sample_key_prob(uint64_t key)
{
    const uint32_t bits = 0xffffffffu - (uint32_t)(key >> 32);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline DSQ_HD int sample_key_index(uint64_t key)
{
    return (int)(uint32_t)key;
}

#endif
