/* Text generation: feed tokens into the model's cache, sample, stream decoded text. */
#ifndef DSQ_GENERATE_H
#define DSQ_GENERATE_H

#include <stdbool.h>

#include "engine.h"
#include "sampler.h"
#include "tokenizer.h"

typedef void (*text_sink)(void *ctx, const char *text, size_t len);

typedef struct {
    int *ids;
    int n, cap;
} token_list;

int token_list_push(token_list *l, int id);
void token_list_free(token_list *l);

typedef struct {
    int n_prompt, n_generated;
    double prompt_seconds, generate_seconds;
    bool hit_eos, hit_context;
} gen_stats;

/* Largest number of tokens one forward call takes; longer prompts go in pieces. */
#define GEN_PREFILL_BATCH 256

/* Fails (DSQ_EUSAGE) if n_prompt tokens do not fit in what is left of the context. */
int generate_check_prompt(const engine *e, int n_prompt, dsq_error *err);

/* Appends prompt tokens to the engine's cache, then samples up to max_new tokens, streaming their
 * text to sink, until EOS or a full context. Every token fed or generated is appended to
 * history (the repetition penalty looks at it). */
int generate(engine *e, const tokenizer *tok, sampler *s, const int *prompt, int n_prompt,
             int max_new, text_sink sink, void *sink_ctx, token_list *history, gen_stats *st,
             dsq_error *err);

#endif
