/* Sampler: greedy, filters, penalty, determinism, and the sampled distribution. */
#include <math.h>

#include "sampler.h"
#include "test.h"

static sampler make(sampler_params p, int vocab)
{
    sampler s;
    dsq_error err;
    CHECK(sampler_init(&s, &p, vocab, &err) == DSQ_OK);
    return s;
}

TEST(greedy_is_argmax)
{
    float logits[5] = {0.1f, 2.0f, -1.0f, 1.9f, 0.0f};
    sampler s = make(sampler_defaults(), 5);
    CHECK_EQ_INT(sampler_sample(&s, logits, NULL, 0), 1);
    sampler_free(&s);
    sampler_params p = sampler_defaults();
    p.temperature = 5;
    p.top_k = 1;
    s = make(p, 5);
    for (int i = 0; i < 20; i++)
        CHECK_EQ_INT(sampler_sample(&s, logits, NULL, 0), 1);
    sampler_free(&s);
}

TEST(repeat_penalty_applies_once_per_token)
{
    float logits[3] = {2.0f, 1.5f, -1.0f};
    sampler_params p = sampler_defaults();
    p.repeat_penalty = 2;
    sampler s = make(p, 3);
    int history[4] = {0, 0, 0, 2};
    CHECK_EQ_INT(sampler_sample(&s, logits, history, 4), 1); /* 2.0 / 2 = 1.0 < 1.5 */
    CHECK_NEAR(logits[0], 1.0, 0);                            /* once, not three times */
    CHECK_NEAR(logits[2], -2.0, 0);                           /* negative: multiplied */
    sampler_free(&s);
}

/* With temperature 1 and no filters, frequencies follow softmax(logits). 40000 draws give a
 * standard error of sqrt(p(1-p)/N) <= 0.0025 per token; 5 standard errors is the bound. */
TEST(distribution_follows_softmax)
{
    float base[4] = {1.0f, 0.0f, -0.5f, 0.5f};
    double z = 0, expect[4];
    for (int i = 0; i < 4; i++)
        z += exp(base[i]);
    for (int i = 0; i < 4; i++)
        expect[i] = exp(base[i]) / z;
    sampler_params p = sampler_defaults();
    p.temperature = 1;
    p.seed = 7;
    sampler s = make(p, 4);
    int counts[4] = {0};
    const int draws = 40000;
    for (int d = 0; d < draws; d++) {
        float logits[4] = {base[0], base[1], base[2], base[3]};
        counts[sampler_sample(&s, logits, NULL, 0)]++;
    }
    for (int i = 0; i < 4; i++)
        CHECK_NEAR((double)counts[i] / draws, expect[i], 5 * 0.0025);
    sampler_free(&s);
}

/* Draws 5000 tokens from base (4 logits) with p, counting each token. */
static void draw_counts(sampler_params p, const float *base, int seen[4])
{
    sampler s = make(p, 4);
    memset(seen, 0, 4 * sizeof(int));
    for (int d = 0; d < 5000; d++) {
        float logits[4] = {base[0], base[1], base[2], base[3]};
        seen[sampler_sample(&s, logits, NULL, 0)]++;
    }
    sampler_free(&s);
}

TEST(filters_cut_the_tail)
{
    /* probabilities ~ 0.6, 0.25, 0.1, 0.05 */
    const float base[4] = {logf(0.6f), logf(0.25f), logf(0.1f), logf(0.05f)};
    int seen[4];
    sampler_params p = sampler_defaults();
    p.temperature = 1;
    p.top_p = 0.8f; /* 0.6 + 0.25 reaches 0.8: tokens 2 and 3 are never drawn */
    draw_counts(p, base, seen);
    CHECK(seen[0] > 0 && seen[1] > 0 && seen[2] == 0 && seen[3] == 0);
    p = sampler_defaults();
    p.temperature = 1;
    p.min_p = 0.3f; /* keeps p >= 0.18: tokens 0 and 1 */
    draw_counts(p, base, seen);
    CHECK(seen[0] > 0 && seen[1] > 0 && seen[2] == 0 && seen[3] == 0);
    p = sampler_defaults();
    p.temperature = 1;
    p.top_k = 3;
    draw_counts(p, base, seen);
    CHECK(seen[2] > 0 && seen[3] == 0);
}

TEST(same_seed_same_stream)
{
    sampler_params p = sampler_defaults();
    p.temperature = 0.8f;
    p.seed = 1234;
    sampler a = make(p, 6), b = make(p, 6);
    int differ = 0;
    for (int i = 0; i < 200; i++) {
        float la[6] = {0.1f, 0.2f, 0.3f, 0.0f, -0.1f, 0.25f};
        float lb[6] = {0.1f, 0.2f, 0.3f, 0.0f, -0.1f, 0.25f};
        differ += sampler_sample(&a, la, NULL, 0) != sampler_sample(&b, lb, NULL, 0);
    }
    CHECK_EQ_INT(differ, 0);
    sampler_free(&a);
    sampler_free(&b);
}

TEST(parameter_ranges)
{
    dsq_error err;
    sampler_params p = sampler_defaults();
    p.top_p = 0;
    CHECK(sampler_check(&p, &err) == DSQ_EUSAGE);
    CHECK_STR_CONTAINS(err.msg, "--top-p");
    p = sampler_defaults();
    p.temperature = -1;
    CHECK(sampler_check(&p, &err) == DSQ_EUSAGE);
    p = sampler_defaults();
    p.min_p = 1;
    CHECK(sampler_check(&p, &err) == DSQ_EUSAGE);
}
