/* The GEMM's operand split (cuda/bf16_split.h): hi is the plain bf16 rounding, and hi + lo is
 * within 2^-16 |v| of v over normal floats of every exponent the activations and weights take;
 * a value with at most 16 significant bits splits exactly; the largest floats stay finite and an
 * infinity stays one (the GEMV gives them so). */
#include <float.h>
#include <math.h>
#include <stdint.h>

#include "cuda/bf16_split.h"
#include "test.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t next_u32(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}

TEST(bf16_split_bound)
{
    for (int i = 0; i < 200000; i++) {
        /* random sign and mantissa, exponent 2^-40 .. 2^40 */
        const uint32_t bits = (next_u32() & 0x807fffffu) | ((uint32_t)(87 + next_u32() % 80) << 23);
        float v;
        memcpy(&v, &bits, 4);
        uint16_t hi, lo;
        bf16_split(v, &hi, &lo);
        CHECK(hi == dsq_f32_to_bf16(v));
        const double sum = (double)dsq_bf16_to_f32(hi) + dsq_bf16_to_f32(lo);
        if (!(fabs(sum - v) <= ldexp(fabs(v), -16))) {
            CHECK(fabs(sum - v) <= ldexp(fabs(v), -16));
            break;
        }
    }
}

TEST(bf16_split_exact_for_16_bits)
{
    const float vals[] = {1.0f + 1.0f / 32768, -3.0f * (1 + 1.0f / 1024), 127.0f, 0.0f};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        uint16_t hi, lo;
        bf16_split(vals[i], &hi, &lo);
        CHECK(dsq_bf16_to_f32(hi) + dsq_bf16_to_f32(lo) == vals[i]);
    }
}

TEST(bf16_split_at_the_top_of_the_range)
{
    const float big[] = {FLT_MAX, -FLT_MAX, 3.3975e38f, -3.3975e38f};
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) { /* all round past bf16's largest */
        uint16_t hi, lo;
        bf16_split(big[i], &hi, &lo);
        const double sum = (double)dsq_bf16_to_f32(hi) + dsq_bf16_to_f32(lo);
        CHECK_MSG(isfinite(sum) && fabs(sum - big[i]) <= ldexp(fabs(big[i]), -16),
                  "%g split into %g + %g", big[i], dsq_bf16_to_f32(hi), dsq_bf16_to_f32(lo));
    }
    uint16_t hi, lo;
    bf16_split(INFINITY, &hi, &lo);
    CHECK(isinf(dsq_bf16_to_f32(hi)) && dsq_bf16_to_f32(hi) > 0 && lo == 0);
    bf16_split(-INFINITY, &hi, &lo);
    CHECK(isinf(dsq_bf16_to_f32(hi)) && dsq_bf16_to_f32(hi) < 0 && lo == 0);
}
