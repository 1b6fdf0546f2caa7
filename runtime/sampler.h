/* Next-token sampling: repetition penalty, then greedy (temperature 0) or temperature with
 * top-k, top-p (nucleus) and min-p filtering, drawn from a seeded generator. */
#ifndef DSQ_SAMPLER_H
#define DSQ_SAMPLER_H

#include <stdint.h>

#include "error.h"

typedef struct {
    float temperature;    /* 0: greedy */
    int top_k;            /* 0: off */
    float top_p;          /* 1: off */
    float min_p;          /* 0: off; keeps tokens with p >= min_p * p_max */
    float repeat_penalty; /* 1: off; divides positive logits of recent tokens, multiplies negative */
    int repeat_last_n;    /* how many recent tokens the penalty looks at */
    uint64_t seed;
} sampler_params;

typedef struct {
    sampler_params p;
    uint64_t state;
    int vocab;
    float *probs;   /* scratch, vocab entries */
    int *seen;      /* scratch, vocab entries: the penalty's marks */
    uint64_t *keys; /* scratch, 2 * vocab entries: the candidates' sort keys, the sort's buffer */
} sampler;

/* Defaults: greedy, no filters, penalty off, last 64 tokens, seed 0. */
sampler_params sampler_defaults(void);

/* Checks ranges (temperature >= 0, 0 < top_p <= 1, 0 <= min_p < 1, penalty > 0, top_k >= 0). */
int sampler_check(const sampler_params *p, dsq_error *err);

int sampler_init(sampler *s, const sampler_params *p, int vocab, dsq_error *err);
void sampler_free(sampler *s);

/* Picks the next token from logits (modified in place by the penalty). The draw walks the
 * tokens by probability, highest first (equal ones by index), over those the filters keep; only
 * the head of that order the filters and the draw reach is sorted, with the same result as
 * sorting the whole vocabulary. top-p 1, top-k 0 and min-p 0 are off. */
int sampler_sample(sampler *s, float *logits, const int *history, int n_history);

#endif
