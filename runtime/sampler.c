/* Sampling pipeline over one logits vector. */
#include "sampler.h"

#include "sample_key.h"
#include "sampler_rng.h"

#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

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
    s->seen = malloc((size_t)vocab * sizeof(int));
    s->keys = malloc(2 * (size_t)vocab * sizeof(uint64_t));
    if (!s->probs || !s->seen || !s->keys) {
        sampler_free(s);
        return dsq_fail(err, DSQ_ERESOURCE, "out of memory for the sampler");
    }
    return DSQ_OK;
}

void sampler_free(sampler *s)
{
    free(s->probs);
    free(s->seen);
    free(s->keys);
    s->probs = NULL;
    s->seen = NULL;
    s->keys = NULL;
}

static int argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

static uint32_t float_bits(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, 4);
    return bits;
}

/* Sorts n keys by their upper half (the probability) and keeps equal ones in the order given:
 * keys stored by index come out in the sampler's order. LSD radix, 8 bits a pass; a pass whose
 * digit every key shares is skipped. Returns a or tmp, whichever holds the result. */
static uint64_t *sort_keys(uint64_t *a, uint64_t *tmp, int n)
{
    for (int shift = 32; n > 1 && shift < 64; shift += 8) {
        int start[256] = {0};
        for (int i = 0; i < n; i++)
            start[(a[i] >> shift) & 255]++;
        if (start[(a[0] >> shift) & 255] == n)
            continue;
        for (int d = 0, at = 0; d < 256; d++) {
            int count = start[d];
            start[d] = at;
            at += count;
        }
        for (int i = 0; i < n; i++)
            tmp[start[(a[i] >> shift) & 255]++] = a[i];
        uint64_t *t = a;
        a = tmp;
        tmp = t;
    }
    return a;
}

/* The candidates: tokens whose probability's bits are >= the bits returned, a power of two.
 * The highest power at which they surely decide the draw: at least need_count of them (top-k),
 * at least need_mass of probability (top-p, or the draw's point), or every token below cut by
 * min-p (floor_p). 0: every token. The per-exponent sums are in another order than the walk's,
 * so the walk checks its own and asks for every token when they fell short. */
static uint32_t candidate_bits(const float *probs, int n, int need_count, double need_mass,
                               double floor_p)
{
    int count[256] = {0};
    double mass[256] = {0};
    for (int i = 0; i < n; i++) {
        int e = (int)(float_bits(probs[i]) >> 23) & 255;
        count[e]++;
        mass[e] += probs[i];
    }
    int c = 0;
    double m = 0;
    for (int e = 254; e > 0; e--) { /* 255 holds Inf and NaN, never a bound */
        c += count[e];
        m += mass[e];
        if (c > 0 && (c >= need_count || m >= need_mass || ldexp(1, e - 127) <= floor_p))
            return (uint32_t)e << 23;
    }
    return 0;
}

/* The cuts and the draw over the first kn tokens in order (keys k); -1 when they need tokens
 * past those. tail_cut: every token past them is below min-p's floor. The draw's point is *r
 * when it was drawn before (no filter: the mass is known without the order), else drawn here
 * once the kept set is known. */
static int pick(sampler *s, const uint64_t *k, int kn, double floor_p, bool tail_cut, double *r)
{
    const sampler_params *p = &s->p;
    const int n = s->vocab;
    int keep = p->top_k > 0 && p->top_k < n ? p->top_k : n;
    if (p->top_p < 1 || p->min_p > 0) {
        double cum = 0;
        for (int i = 0; i < keep; i++) {
            if (i == kn) {
                if (!tail_cut)
                    return -1;
                keep = kn;
                break;
            }
            float pi = sample_key_prob(k[i]);
            if (i > 0 && pi < floor_p) {
                keep = i;
                break;
            }
            cum += pi;
            if (p->top_p < 1 && cum >= p->top_p) {
                keep = i + 1;
                break;
            }
        }
    }
    if (*r < 0) {
        if (keep > kn)
            return -1;
        double mass = 0;
        for (int i = 0; i < keep; i++)
            mass += sample_key_prob(k[i]);
        *r = sampler_rng_uniform(&s->state) * mass;
    }
    double acc = 0;
    for (int i = 0; i < keep && i < kn; i++) {
        acc += sample_key_prob(k[i]);
        if (*r < acc)
            return sample_key_index(k[i]);
    }
    return keep <= kn ? sample_key_index(k[keep - 1]) : -1;
}

int sampler_sample(sampler *s, float *logits, const int *history, int n_history)
{
    const sampler_params *p = &s->p;
    if (p->repeat_penalty != 1) {
        /* each distinct recent token is penalized once, however often it appeared */
        int from = n_history > p->repeat_last_n ? n_history - p->repeat_last_n : 0;
        for (int i = from; i < n_history; i++)
            if (history[i] >= 0 && history[i] < s->vocab)
                s->seen[history[i]] = -1;
        for (int i = from; i < n_history; i++) {
            int t = history[i];
            if (t < 0 || t >= s->vocab || s->seen[t] != -1)
                continue;
            s->seen[t] = 0;
            logits[t] = logits[t] > 0 ? logits[t] / p->repeat_penalty
                                      : logits[t] * p->repeat_penalty;
        }
    }
    if (p->temperature == 0 || p->top_k == 1)
        return argmax(logits, s->vocab);
    const int n = s->vocab, top = argmax(logits, n);
    const float max = logits[top];
    double sum = 0, total = 0;
    for (int i = 0; i < n; i++) {
        s->probs[i] = expf((logits[i] - max) / p->temperature);
        sum += s->probs[i];
    }
    for (int i = 0; i < n; i++) {
        s->probs[i] = (float)(s->probs[i] / sum);
        total += s->probs[i];
    }
    const bool by_k = p->top_k > 0 && p->top_k < n;
    const bool by_p = p->top_p < 1;
    const bool by_min = p->min_p > 0;
    const double floor_p = p->min_p * s->probs[top];
    /* with no filter every token is kept, so the draw's point comes first and the walk stops
     * where the probabilities in order pass it */
    double r = by_k || by_p || by_min ? -1 : sampler_rng_uniform(&s->state) * total;
    /* the margin of 1e-9 exceeds what the order of a double sum of the probabilities can
     * change it (n x 2^-53, 1e-11 at 10^5 tokens), so the candidates' own sum reaches it too */
    uint32_t from = candidate_bits(s->probs, n, by_k ? p->top_k : INT_MAX,
                                   by_p     ? p->top_p + 1e-9
                                   : r >= 0 ? r + 1e-9
                                            : INFINITY,
                                   by_min ? floor_p : -1);
    for (;;) { /* the candidates; every token in the rare case they fall short */
        int kn = 0;
        for (int i = 0; i < n; i++)
            if (float_bits(s->probs[i]) >= from)
                s->keys[kn++] = sample_key(s->probs[i], i);
        const uint64_t *sorted = sort_keys(s->keys, s->keys + n, kn);
        float bound;
        memcpy(&bound, &from, 4);
        int t = pick(s, sorted, kn, floor_p, by_min && from > 0 && bound <= floor_p, &r);
        if (t >= 0 || from == 0)
            return t >= 0 ? t : top;
        from = 0;
    }
}
