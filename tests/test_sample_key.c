/* The samplers' sort key (runtime/sample_key.h): sorting keys ascending gives the CPU
 * sampler's order (probability descending, then index ascending) on probabilities with many
 * exact ties, zeros and subnormals, and the key gives back the probability's bits and index. */
#include <stdlib.h>

#include "sample_key.h"
#include "test.h"

static const float *probs;
static int cpu_order(const void *a, const void *b) /* probability descending, then index */
{
    float x = probs[*(const int *)a], y = probs[*(const int *)b];
    return x < y ? 1 : x > y ? -1 : *(const int *)a - *(const int *)b;
}

static int by_key(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

TEST(sample_key_orders_as_cpu_comparator)
{
    enum { N = 5000 };
    static float p[N];
    static int order[N];
    static uint64_t keys[N];
    uint64_t rng = 0x1234567887654321ull;
    for (int i = 0; i < N; i++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        const int kind = (int)(rng % 4);
        p[i] = kind == 0 ? 0.0f                                /* exact ties at zero */
               : kind == 1 ? (float)(rng >> 60) / 16.0f        /* few values: many ties */
               : kind == 2 ? 1e-40f * (float)(rng >> 62)       /* subnormals */
                           : (float)(rng >> 40) / 16777216.0f; /* spread */
        order[i] = i;
        keys[i] = sample_key(p[i], i);
    }
    probs = p;
    qsort(order, N, sizeof(int), cpu_order);
    qsort(keys, N, sizeof(uint64_t), by_key);
    int same = 0;
    for (int i = 0; i < N; i++)
        same += sample_key_index(keys[i]) == order[i] &&
                memcmp(&(float){sample_key_prob(keys[i])}, &p[order[i]], 4) == 0;
    CHECK_EQ_INT(same, N);
}
