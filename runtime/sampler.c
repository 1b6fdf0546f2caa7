/* Sampling pipeline over one logits vector. */
#include "sampler.h"

#include "sampler_rng.h"

#include <math.h>
#include <stdlib.h>

sampler_params sampler_defaults(void)
{
    return (sampler_params){.temperature = 0, .top_k = 0, .top_p = 1, .min_p = 0,
                            .repeat_penalty = 1, .repeat_last_n = 64, .seed = 0};
}

int sampler_check(const sampler_params *p, dsq_error *err)
{
    if (!(p->temperature >= 0 && p->temperature <= 100))
        return dsq_fail(err, DSQ_EUSAGE, "--temp must be in 0..100 (0 = greedy)");
    if (p->top_k < 0)
        return dsq_fail(err, DSQ_EUSAGE, "--top-k must be >= 0 (0 = off)");
    if (!(p->top_p > 0 && p->top_p <= 1))
        return dsq_fail(err, DSQ_EUSAGE, "--top-p must be in (0, 1] (1 = off)");
    if (!(p->min_p >= 0 && p->min_p < 1))
        return dsq_fail(err, DSQ_EUSAGE, "--min-p must be in [0, 1) (0 = off)");
    if (!(p->repeat_penalty > 0 && p->repeat_penalty <= 10))
        return dsq_fail(err, DSQ_EUSAGE, "--repeat-penalty must be in (0, 10] (1 = off)");
    if (p->repeat_last_n < 0)
        return dsq_fail(err, DSQ_EUSAGE, "--repeat-last-n must be >= 0");
    return DSQ_OK;
}

int sampler_init(sampler *s, const sampler_params *p, int vocab, dsq_error *err)
{
    int rc = sampler_check(p, err);
    if (rc)
        return rc;
    s->p = *p;
    s->state = sampler_rng_seed(p->seed);
    s->vocab = vocab;
    s->probs = malloc((size_t)vocab * sizeof(float));
    s->order = malloc((size_t)vocab * sizeof(int));
    if (!s->probs || !s->order) {
        sampler_free(s);
        return dsq_fail(err, DSQ_ERESOURCE, "out of memory for the sampler");
    }
    return DSQ_OK;
}

void sampler_free(sampler *s)
{
    free(s->probs);
    free(s->order);
    s->probs = NULL;
    s->order = NULL;
}

static int by_prob_desc(const void *a, const void *b, void *probs)
{
    float x = ((const float *)probs)[*(const int *)a], y = ((const float *)probs)[*(const int *)b];
    return x < y ? 1 : x > y ? -1 : *(const int *)a - *(const int *)b;
}

static int argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

int sampler_sample(sampler *s, float *logits, const int *history, int n_history)
{
    const sampler_params *p = &s->p;
    if (p->repeat_penalty != 1) {
        /* each distinct recent token is penalized once, however often it appeared */
        int from = n_history > p->repeat_last_n ? n_history - p->repeat_last_n : 0;
        for (int i = from; i < n_history; i++)
            if (history[i] >= 0 && history[i] < s->vocab)
                s->order[history[i]] = -1;
        for (int i = from; i < n_history; i++) {
            int t = history[i];
            if (t < 0 || t >= s->vocab || s->order[t] != -1)
                continue;
            s->order[t] = 0;
            logits[t] = logits[t] > 0 ? logits[t] / p->repeat_penalty
                                      : logits[t] * p->repeat_penalty;
        }
    }
    if (p->temperature == 0 || p->top_k == 1)
        return argmax(logits, s->vocab);
    int n = s->vocab;
    float max = logits[argmax(logits, n)];
    double sum = 0;
    for (int i = 0; i < n; i++) {
        s->probs[i] = expf((logits[i] - max) / p->temperature);
        sum += s->probs[i];
        s->order[i] = i;
    }
    for (int i = 0; i < n; i++)
        s->probs[i] = (float)(s->probs[i] / sum);
    qsort_r(s->order, (size_t)n, sizeof(int), by_prob_desc, s->probs);
    int keep = p->top_k > 0 && p->top_k < n ? p->top_k : n;
    double cum = 0, floor_p = p->min_p * s->probs[s->order[0]];
    for (int i = 0; i < keep; i++) {
        float pi = s->probs[s->order[i]];
        if (i > 0 && pi < floor_p) {
            keep = i;
            break;
        }
        cum += pi;
        if (cum >= p->top_p) {
            keep = i + 1;
            break;
        }
    }
    double mass = 0;
    for (int i = 0; i < keep; i++)
        mass += s->probs[s->order[i]];
    double r = sampler_rng_uniform(&s->state) * mass, acc = 0;
    for (int i = 0; i < keep; i++) {
        acc += s->probs[s->order[i]];
        if (r < acc)
            return s->order[i];
    }
    return s->order[keep - 1];
}
