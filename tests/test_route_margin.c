/* The router's distance from a tie (tests/gpu/route_margin.h), which the GPU logits test uses to
 * skip inputs whose expert choice rounding could flip: exact margins of hand-made cases, and on
 * random scores the defining property, that moving every score by less than half the margin
 * never changes the chosen set. */
#include <stdlib.h>

#include "gpu/route_margin.h"
#include "test.h"

static uint64_t rng = 0x2545f4914f6cdd1dull;
static float uniform(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)(rng >> 40) / (float)(1ull << 24);
}

TEST(route_margin_greedy_exact)
{
    const moe_route_params p = {4, 2, false, 1, 1, false, 1.0f};
    const float s[4] = {0.9f, 0.5f, 0.48f, 0.1f};
    CHECK(moe_route_margin(&p, s) == 0.5f - 0.48f);
}

/* Groups {0.9, 0.1} {0.3, 0.2} {0.85, 0} {0.29, 0.28}, best 2 groups (0 and 2, group gap
 * 0.85 - 0.3), top 3 among their experts: 0.9, 0.85, 0.1 over 0. Expert 2 (0.3) scores above a
 * chosen one but is not eligible, so it sets no gap: the margin is 0.1 - 0. */
TEST(route_margin_group_limited_exact)
{
    const moe_route_params p = {8, 3, true, 4, 2, false, 16.0f};
    const float s[8] = {0.9f, 0.1f, 0.3f, 0.2f, 0.85f, 0.0f, 0.29f, 0.28f};
    CHECK(moe_route_margin(&p, s) == 0.1f);
    const moe_route_params p2 = {8, 2, true, 4, 2, false, 16.0f}; /* experts 0.9, 0.85 over 0.1 */
    CHECK(moe_route_margin(&p2, s) == 0.85f - 0.3f); /* groups: 0.55 < experts: 0.75 */
}

static void chosen_set(const moe_route_params *p, const float *s, unsigned char *set)
{
    int ids[16];
    float w[16];
    memset(set, 0, MOE_ROUTE_MAX_EXPERTS);
    moe_route_select(p, s, ids, w);
    for (int i = 0; i < p->k; i++)
        set[ids[i]] = 1;
}

TEST(route_margin_bounds_flips)
{
    const moe_route_params cases[] = {
        {64, 6, false, 1, 1, false, 1.0f},
        {160, 6, true, 8, 3, false, 16.0f},
        {8, 3, true, 4, 2, false, 2.5f},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int trial = 0; trial < 300; trial++) {
            const moe_route_params *p = &cases[c];
            float s[MOE_ROUTE_MAX_EXPERTS], moved[MOE_ROUTE_MAX_EXPERTS];
            for (int e = 0; e < p->n_experts; e++)
                s[e] = uniform() * 4 - 2;
            const float m = moe_route_margin(p, s);
            CHECK(m >= 0);
            unsigned char want[MOE_ROUTE_MAX_EXPERTS], got[MOE_ROUTE_MAX_EXPERTS];
            chosen_set(p, s, want);
            for (int e = 0; e < p->n_experts; e++) /* every score within 0.45 m */
                moved[e] = s[e] + (uniform() * 2 - 1) * 0.45f * m;
            chosen_set(p, moved, got);
            CHECK(memcmp(want, got, (size_t)p->n_experts) == 0);
        }
}
