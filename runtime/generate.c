/* Prefill in batches, then the sample-decode loop with streaming UTF-8 output. */
#include "generate.h"

#include <stdlib.h>

#include "progress.h"

int token_list_push(token_list *l, int id)
{
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 256;
        int *ids = realloc(l->ids, (size_t)cap * sizeof(int));
        if (!ids)
            return DSQ_ERESOURCE;
        l->ids = ids;
        l->cap = cap;
    }
    l->ids[l->n++] = id;
    return DSQ_OK;
}

void token_list_free(token_list *l)
{
    free(l->ids);
    l->ids = NULL;
    l->n = l->cap = 0;
}

int generate_check_prompt(const engine *e, int n_prompt, dsq_error *err)
{
    if (e->n_past + n_prompt > e->ctx)
        return dsq_fail(err, DSQ_EUSAGE,
                        "the prompt needs %d tokens but only %d of the context (--ctx %d) are left",
                        n_prompt, e->ctx - e->n_past, e->ctx);
    return DSQ_OK;
}

int generate(engine *e, const tokenizer *tok, sampler *s, const int *prompt, int n_prompt,
             int max_new, text_sink sink, void *sink_ctx, token_list *history, gen_stats *st,
             dsq_error *err)
{
    const int vocab = e->desc->vocab;
    *st = (gen_stats){.n_prompt = n_prompt};
    int rc = generate_check_prompt(e, n_prompt, err);
    if (rc)
        return rc;
    /* an engine that samples keeps its logits: only the token comes back */
    float *logits = engine_samples(e) ? NULL : malloc((size_t)vocab * sizeof(float));
    if (!logits && !engine_samples(e))
        return dsq_fail(err, DSQ_ERESOURCE, "out of memory");
    double t0 = progress_now();
    for (int i = 0; !rc && i < n_prompt; i += GEN_PREFILL_BATCH) {
        int n = n_prompt - i < GEN_PREFILL_BATCH ? n_prompt - i : GEN_PREFILL_BATCH;
        rc = engine_forward(e, prompt + i, n, logits, false, err);
    }
    for (int i = 0; !rc && i < n_prompt; i++)
        if (token_list_push(history, prompt[i]))
            rc = dsq_fail(err, DSQ_ERESOURCE, "out of memory");
    double t1 = progress_now();
    st->prompt_seconds = t1 - t0;
    utf8_stream stream = {0};
    char text[UTF8_STREAM_OUT_MAX(16)];
    for (int i = 0; !rc && i < max_new; i++) {
        int next;
        if (logits)
            next = sampler_sample(s, logits, history->ids, history->n);
        else if ((rc = engine_sample(e, s, history->ids, history->n, &next, err)))
            break;
        if (token_list_push(history, next)) {
            rc = dsq_fail(err, DSQ_ERESOURCE, "out of memory");
            break;
        }
        st->n_generated++;
        if (next == tokenizer_eos(tok)) {
            st->hit_eos = true;
            break;
        }
        size_t len;
        const char *bytes = tokenizer_token_bytes(tok, next, &len);
        for (size_t off = 0; off < len; off += 16) { /* bounded pieces into a small buffer */
            size_t piece = len - off < 16 ? len - off : 16;
            size_t out = utf8_stream_push(&stream, bytes + off, piece, text);
            if (out)
                sink(sink_ctx, text, out);
        }
        if (e->n_past >= e->ctx) {
            st->hit_context = true;
            break;
        }
        if (i + 1 < max_new)
            rc = engine_forward(e, &next, 1, logits, false, err);
    }
    size_t out = utf8_stream_flush(&stream, text);
    if (out)
        sink(sink_ctx, text, out);
    st->generate_seconds = progress_now() - t1;
    free(logits);
    return rc;
}
