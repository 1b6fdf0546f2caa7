/* The model as dsq serve drives it: one sequence at a time, a KV cache that keeps the tokens of
 * the previous request so a prompt extending them runs only its new part, and sampling with the
 * OpenAI penalties. Every call into the model (prefill, decode step, sampling, cache truncation)
 * made by the server is in serve_engine.c. */
#ifndef DSQ_SERVE_ENGINE_H
#define DSQ_SERVE_ENGINE_H

#include <stdbool.h>

#include "engine.h"
#include "generate.h"
#include "model.h"
#include "sampler.h"
#include "tokenizer.h"

typedef struct {
    model m;
    engine eng; /* runs m on the chosen backend; owns the cache */
    tokenizer *tok;
    float *logits;     /* vocab floats: next-token logits after the last prefill or feed */
    int *counts;       /* vocab ints, zero between calls: scratch for the penalties */
    token_list cached; /* the tokens whose keys and values are in the cache, in order */
} serve_engine;

/* OpenAI's additive penalties over the tokens generated so far: a token's logit is lowered by
 * frequency * (times it was generated) + presence * (1 if generated at all). */
typedef struct {
    float frequency, presence;
} serve_penalties;

/* Lowers logits[t] by frequency * count(t) + presence for every token t in
 * generated[0..n) (ids outside 0..vocab-1 are skipped). counts: vocab ints, zero on entry and
 * on return. */
void serve_penalties_apply(const serve_penalties *pen, float *logits, int vocab, int *counts,
                           const int *generated, int n);

/* Opens the model with a cache of ctx tokens (0: min(4096, the model's maximum)) on the backend
 * eo names. */
int serve_engine_open(serve_engine *e, const char *path, int ctx, const engine_options *eo,
                      dsq_error *err);
void serve_engine_close(serve_engine *e);

static inline int serve_engine_ctx(const serve_engine *e)
{
    return e->eng.ctx;
}
static inline int serve_engine_vocab(const serve_engine *e)
{
    return e->m.cfg->vocab_size;
}

/* Called between prefill batches; true stops the prefill. */
typedef bool (*serve_cancel_fn)(void *ctx);

/* Makes the cache hold prompt[0..n) (1 <= n <= ctx) and the logits predict the token after it.
 * The longest prefix shared with the cached tokens is kept (*reused tokens; at least one token
 * is always run to get logits). Returns DSQ_OK, an error, or DSQ_OK with *cancelled set. */
int serve_engine_prefill(serve_engine *e, const int *prompt, int n, serve_cancel_fn cancel,
                         void *cancel_ctx, int *reused, bool *cancelled, dsq_error *err);

/* Samples the next token from the current logits. history[0..n_history) is the prompt and the
 * tokens generated so far (the sampler's repetition penalty looks at it); the OpenAI penalties
 * look at history[n_prompt..n_history). */
int serve_engine_sample(serve_engine *e, sampler *s, const serve_penalties *pen, const int *history,
                        int n_history, int n_prompt);

/* Runs one generated token through the model (appending it to the cache). */
int serve_engine_feed(serve_engine *e, int token, dsq_error *err);

/* Tokens the cache still has room for. */
static inline int serve_engine_room(const serve_engine *e)
{
    return e->eng.ctx - e->eng.n_past;
}

#endif
