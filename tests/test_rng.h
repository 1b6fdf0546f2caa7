/* splitmix64 for the kernel tests: a fixed sequence from TEST_RNG_SEED, which the including
 * test defines, so every run draws the same values. */
#ifndef DSQ_TEST_RNG_H
#define DSQ_TEST_RNG_H

#include <stdint.h>

static uint64_t rng_state = TEST_RNG_SEED;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* uniform in [lo, hi) */
static float rng_uniform(float lo, float hi)
{
    return lo + (hi - lo) * (float)(rng_next() >> 40) * (1.0f / (1 << 24));
}

#endif
