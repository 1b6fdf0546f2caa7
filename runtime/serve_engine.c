/* Prefix-reusing prefill, sampling with penalties, and the decode step for dsq serve. */
#include "serve_engine.h"

#include <stdlib.h>

int serve_engine_open(serve_engine *e, const char *path, int ctx, const engine_options *eo,
                      dsq_error *err)
{
    *e = (serve_engine){0};
    if (ctx == 0) {
        model_file probe;
        int rc = model_file_open(&probe, path, err);
        if (rc)
            return rc;
        ctx = model_default_ctx(&probe.config);
        model_file_close(&probe);
    }
    int rc = model_open(&e->m, path, ctx, err);
    if (rc)
        return rc;
    if ((rc = engine_open(&e->eng, &e->m, eo, err))) {
        model_close(&e->m);
        return rc;
    }
    rc = tokenizer_load(&e->tok, json_object_get(e->m.file.file.meta, "tokenizer"), path, err);
    if (rc) {
        engine_close(&e->eng);
        model_close(&e->m);
        return rc;
    }
    e->logits = malloc((size_t)e->m.cfg->vocab_size * sizeof(float));
    e->counts = calloc((size_t)e->m.cfg->vocab_size, sizeof(int));
    if (!e->logits || !e->counts) {
        serve_engine_close(e);
        return dsq_fail(err, DSQ_ERESOURCE, "out of memory");
    }
    return DSQ_OK;
}

void serve_engine_close(serve_engine *e)
{
    free(e->logits);
    free(e->counts);
    token_list_free(&e->cached);
    tokenizer_free(e->tok);
    if (e->eng.ops)
        engine_close(&e->eng);
    model_close(&e->m);
    *e = (serve_engine){0};
}

int serve_engine_prefill(serve_engine *e, const int *prompt, int n, serve_cancel_fn cancel,
                         void *cancel_ctx, int *reused, bool *cancelled, dsq_error *err)
{
    *cancelled = false;
    if (n < 1 || n > e->eng.ctx)
        return dsq_fail(err, DSQ_EUSAGE, "a prompt of %d tokens does not fit a context of %d", n,
                        e->eng.ctx);
    int keep = 0;
    while (keep < e->cached.n && keep < n && e->cached.ids[keep] == prompt[keep])
        keep++;
    if (keep == n)
        keep--; /* the last prompt token runs again: its logits are the ones needed */
    engine_truncate(&e->eng, keep);
    e->cached.n = keep;
    *reused = keep;
    for (int i = keep; i < n; i += GEN_PREFILL_BATCH) {
        if (cancel && cancel(cancel_ctx)) {
            *cancelled = true;
            return DSQ_OK;
        }
        int b = n - i < GEN_PREFILL_BATCH ? n - i : GEN_PREFILL_BATCH;
        int rc = engine_forward(&e->eng, prompt + i, b, e->logits, false, err);
        for (int j = 0; !rc && j < b; j++)
            if (token_list_push(&e->cached, prompt[i + j]))
                rc = dsq_fail(err, DSQ_ERESOURCE, "out of memory");
        if (rc) { /* the cache no longer matches the list: start the next request afresh */
            engine_reset(&e->eng);
            e->cached.n = 0;
            return rc;
        }
    }
    return DSQ_OK;
}

void serve_penalties_apply(const serve_penalties *pen, float *logits, int vocab, int *counts,
                           const int *generated, int n)
{
    if (pen->frequency == 0 && pen->presence == 0)
        return;
    for (int i = 0; i < n; i++)
        if (generated[i] >= 0 && generated[i] < vocab)
            counts[generated[i]]++;
    for (int i = 0; i < n; i++) {
        int t = generated[i];
        if (t < 0 || t >= vocab || counts[t] == 0)
            continue;
        logits[t] -= pen->frequency * (float)counts[t] + pen->presence;
        counts[t] = 0; /* once per distinct token; leaves counts zeroed */
    }
}

int serve_engine_sample(serve_engine *e, sampler *s, const serve_penalties *pen, const int *history,
                        int n_history, int n_prompt)
{
    serve_penalties_apply(pen, e->logits, e->m.cfg->vocab_size, e->counts, history + n_prompt,
                          n_history - n_prompt);
    return sampler_sample(s, e->logits, history, n_history);
}

int serve_engine_feed(serve_engine *e, int token, dsq_error *err)
{
    int rc = engine_forward(&e->eng, &token, 1, e->logits, false, err);
    if (!rc && token_list_push(&e->cached, token))
        rc = dsq_fail(err, DSQ_ERESOURCE, "out of memory");
    if (rc) {
        engine_reset(&e->eng);
        e->cached.n = 0;
    }
    return rc;
}
