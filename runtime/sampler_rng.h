/* The sampler's random stream, shared by the CPU sampler (runtime/sampler.c) and the device one
 * (cuda/sample.cu) so a seed draws the same numbers on both: splitmix64, small, fast and the
 * same on every platform. */
#ifndef DSQ_SAMPLER_RNG_H
#define DSQ_SAMPLER_RNG_H

#include <stdint.h>

#include "float16.h" /* DSQ_HD */

/* The state a seed starts from. */
static inline DSQ_HD uint64_t sampler_rng_seed(uint64_t seed)
{
    return seed ^ 0x9e3779b97f4a7c15ull;
}

/* A uniform double in [0, 1) with 53 random bits; advances *state. */
static inline DSQ_HD double sampler_rng_uniform(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

#endif
