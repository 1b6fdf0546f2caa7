/* The per-element math the CUDA kernels share with the CPU through headers: expert selection
 * (runtime/moe_route.h) against an independent sort-based selection, and the RoPE pair rotation
 * (runtime/rope_rotate.h) against the CPU's rope_apply over the same tables, bit for bit. */
#include <stdlib.h>

#include "moe_route.h"
#include "rope.h"
#include "rope_rotate.h"
#include "test.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float uniform(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)(rng >> 40) / (float)(1ull << 24);
}

/* Order: higher score first, lower index on ties. */
static const float *sort_scores;
static int by_score(const void *a, const void *b)
{
    int i = *(const int *)a, j = *(const int *)b;
    if (sort_scores[i] != sort_scores[j])
        return sort_scores[i] > sort_scores[j] ? -1 : 1;
    return i - j;
}

static void reference_route(const moe_route_params *p, const float *scores, int *ids, float *w)
{
    int order[MOE_ROUTE_MAX_EXPERTS], n = 0;
    bool allowed[MOE_ROUTE_MAX_EXPERTS];
    for (int e = 0; e < p->n_experts; e++)
        allowed[e] = true;
    if (p->group_limited) {
        const int per = p->n_experts / p->n_group;
        float gmax[MOE_ROUTE_MAX_GROUPS];
        int gorder[MOE_ROUTE_MAX_GROUPS];
        for (int g = 0; g < p->n_group; g++) {
            gmax[g] = scores[g * per];
            for (int e = 1; e < per; e++)
                gmax[g] = scores[g * per + e] > gmax[g] ? scores[g * per + e] : gmax[g];
            gorder[g] = g;
        }
        sort_scores = gmax;
        qsort(gorder, (size_t)p->n_group, sizeof(int), by_score);
        for (int e = 0; e < p->n_experts; e++)
            allowed[e] = false;
        for (int i = 0; i < p->topk_group; i++)
            for (int e = 0; e < per; e++)
                allowed[gorder[i] * per + e] = true;
    }
    for (int e = 0; e < p->n_experts; e++)
        if (allowed[e])
            order[n++] = e;
    sort_scores = scores;
    qsort(order, (size_t)n, sizeof(int), by_score);
    float sum = 0;
    for (int i = 0; i < p->k; i++) {
        ids[i] = order[i];
        sum += scores[order[i]];
    }
    for (int i = 0; i < p->k; i++)
        w[i] = p->k > 1 && p->norm_topk_prob ? scores[ids[i]] / (sum + 1e-20f)
                                             : scores[ids[i]] * p->routed_scaling;
}

/* DeepSeek-MoE (64 experts, top 6), V2 (160 in 8 groups, best 3, top 6, x16) and a renormalizing
 * variant, each over random scores with deliberate ties. */
TEST(route_matches_sorted_selection)
{
    const moe_route_params cases[] = {
        {64, 6, false, 1, 1, false, 1.0f},
        {160, 6, true, 8, 3, false, 16.0f},
        {64, 8, true, 4, 2, true, 1.0f},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int trial = 0; trial < 200; trial++) {
            const moe_route_params *p = &cases[c];
            float scores[MOE_ROUTE_MAX_EXPERTS];
            for (int e = 0; e < p->n_experts; e++) /* coarse values make ties common */
                scores[e] = (float)(int)(uniform() * (trial % 2 ? 16 : 1 << 20)) / 1024.0f;
            int ids[16], want_ids[16];
            float w[16], want_w[16];
            moe_route_select(p, scores, ids, w);
            reference_route(p, scores, want_ids, want_w);
            for (int i = 0; i < p->k; i++) {
                CHECK_EQ_INT(ids[i], want_ids[i]);
                CHECK(w[i] == want_w[i]);
            }
        }
}

static dsq_model_config rope_config(bool v2)
{
    dsq_model_config c = {0};
    c.family = v2 ? DSQ_FAMILY_V2 : DSQ_FAMILY_V1;
    c.head_dim = 128;
    c.qk_rope_head_dim = 64;
    c.rope_theta = 10000;
    c.rope_yarn = v2;
    c.yarn_factor = 40;
    c.yarn_original_max_position = 4096;
    c.yarn_beta_fast = 32;
    c.yarn_beta_slow = 1;
    c.yarn_mscale = 0.707;
    c.yarn_mscale_all_dim = 0.707;
    return c;
}

TEST(rope_rotate_equals_rope_apply)
{
    for (int v2 = 0; v2 < 2; v2++) {
        dsq_model_config c = rope_config(v2);
        rope_table r;
        dsq_error err;
        CHECK(rope_init(&r, &c, 4096, &err) == DSQ_OK);
        const int half = r.dim / 2;
        for (int pos = 0; pos < 4096; pos += 97) {
            float a[128], b[128];
            for (int i = 0; i < r.dim; i++)
                a[i] = b[i] = uniform() * 2 - 1;
            rope_apply(&r, a, pos);
            for (int i = 0; i < half; i++)
                rope_rotate_pair(b, i, r.dim, r.interleaved, r.cos[(size_t)pos * half + i],
                                 r.sin[(size_t)pos * half + i]);
            CHECK(memcmp(a, b, (size_t)r.dim * sizeof(float)) == 0);
        }
        rope_free(&r);
    }
}
