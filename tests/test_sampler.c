/* Sampler: greedy, filters, penalty, determinism, the sampled distribution, and the same token
 * as a sort of the whole vocabulary for every draw. */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

#include "sampler.h"
#include "sampler_rng.h"
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

/* The sampler's definition written plainly: every probability, the whole vocabulary sorted
 * (probability descending, then index), the cuts, then the draw (over the kept mass, or over
 * every token's in index order when no filter is on). The sampler sorts only the head of the
 * order it needs; with the same arithmetic it must pick the same token every time. */
static const float *ref_probs;
static int ref_order_cmp(const void *a, const void *b)
{
    float x = ref_probs[*(const int *)a], y = ref_probs[*(const int *)b];
    return x < y ? 1 : x > y ? -1 : *(const int *)a - *(const int *)b;
}

static int reference_sample(const sampler_params *p, const float *logits, int n, uint64_t *state)
{
    float *probs = malloc((size_t)n * sizeof(float));
    int *order = malloc((size_t)n * sizeof(int));
    int top = 0;
    for (int i = 1; i < n; i++)
        if (logits[i] > logits[top])
            top = i;
    double sum = 0, total = 0;
    for (int i = 0; i < n; i++) {
        probs[i] = expf((logits[i] - logits[top]) / p->temperature);
        sum += probs[i];
        order[i] = i;
    }
    for (int i = 0; i < n; i++) {
        probs[i] = (float)(probs[i] / sum);
        total += probs[i];
    }
    ref_probs = probs;
    qsort(order, (size_t)n, sizeof(int), ref_order_cmp);
    const bool filtered = (p->top_k > 0 && p->top_k < n) || p->top_p < 1 || p->min_p > 0;
    int keep = p->top_k > 0 && p->top_k < n ? p->top_k : n;
    double cum = 0, floor_p = p->min_p * probs[order[0]];
    for (int i = 0; i < keep; i++) {
        if (i > 0 && probs[order[i]] < floor_p) {
            keep = i;
            break;
        }
        cum += probs[order[i]];
        if (p->top_p < 1 && cum >= p->top_p) {
            keep = i + 1;
            break;
        }
    }
    double mass = 0;
    for (int i = 0; i < keep; i++)
        mass += probs[order[i]];
    double r = sampler_rng_uniform(state) * (filtered ? mass : total), acc = 0;
    int pick = order[keep - 1];
    for (int i = 0; i < keep; i++) {
        acc += probs[order[i]];
        if (r < acc) {
            pick = order[i];
            break;
        }
    }
    free(probs);
    free(order);
    return pick;
}

/* Logits of one kind: 0 peaked (a gaussian bulk and a few high outliers), 1 flat, 2 on a
 * coarse grid (many exact ties), 3 spread so wide that most probabilities are 0 or subnormal
 * at the temperatures below. */
static void fill_logits(float *l, int n, int kind, uint64_t *rng)
{
    for (int i = 0; i < n; i++) {
        *rng ^= *rng << 13, *rng ^= *rng >> 7, *rng ^= *rng << 17;
        double u = ((*rng >> 11) + 0.5) / 9007199254740992.0, v = u - 0.5;
        l[i] = kind == 0   ? (float)(3 * v)
               : kind == 1 ? (float)(0.2 * v)
               : kind == 2 ? (float)floor(8 * v) * 0.5f
                           : (float)(200 * v);
    }
    if (kind == 0)
        l[n / 3] = 9, l[n / 2] = 8.5f, l[n - 1] = 8.5f;
}

TEST(same_token_as_a_whole_sort)
{
    const struct {
        float temp, top_p, min_p;
        int top_k;
    } set[] = {{1, 1, 0, 0},        {0.7f, 1, 0, 0},    {3, 1, 0, 0},         {1, 0.5f, 0, 0},
               {0.8f, 0.95f, 0, 0}, {1, 0.999f, 0, 0},  {1, 1, 0, 40},        {1, 1, 0, 2000},
               {1, 1, 0.05f, 0},    {0.5f, 1, 0.3f, 0}, {1, 0.9f, 0.02f, 50}, {0.05f, 0.99f, 0, 0},
               {0.05f, 1, 0, 0}};
    const int vocabs[2] = {102400, 3000}, draws[2] = {1, 12};
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    int same = 0, total = 0;
    for (int v = 0; v < 2; v++) {
        const int n = vocabs[v];
        float *logits = malloc((size_t)n * sizeof(float));
        for (size_t c = 0; c < sizeof set / sizeof *set; c++)
            for (int kind = 0; kind < 4; kind++) {
                sampler_params p = sampler_defaults();
                p.temperature = set[c].temp;
                p.top_p = set[c].top_p;
                p.min_p = set[c].min_p;
                p.top_k = set[c].top_k;
                p.seed = 100 * c + kind;
                sampler s = make(p, n);
                uint64_t state = sampler_rng_seed(p.seed);
                for (int d = 0; d < draws[v]; d++) {
                    fill_logits(logits, n, kind, &rng);
                    int want = reference_sample(&p, logits, n, &state);
                    same += sampler_sample(&s, logits, NULL, 0) == want;
                    total++;
                }
                sampler_free(&s);
            }
        free(logits);
    }
    CHECK_EQ_INT(same, total);
}
