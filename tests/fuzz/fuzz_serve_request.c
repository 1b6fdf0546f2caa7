/* libFuzzer target for dsq serve's request parser: any bytes as the body of a chat and of a
 * completion request. A parse either succeeds with a prompt and max_tokens that fit the
 * context, or fails with a 4xx status and an error body that is JSON. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "fixture_tokenizer.h"
#include "runtime/serve_openai.h"

#define CTX 64

static void parse(const tokenizer *tok, openai_kind kind, const uint8_t *data, size_t size)
{
    openai_limits lim = {.tok = tok, .ctx = CTX, .model_name = "m", .seed = 1};
    openai_request r;
    openai_error e;
    int status = openai_parse_request(kind, (const char *)data, size, &lim, &r, &e);
    if (status == 0) {
        const serve_gen_params *g = &r.gen;
        if (g->n_prompt < 1 || g->n_prompt >= CTX || g->max_tokens < 1 ||
            g->n_prompt + g->max_tokens > CTX || g->n_stop < 0 || g->n_stop > SERVE_MAX_STOP)
            abort();
        for (int i = 0; i < g->n_prompt; i++)
            if (g->prompt[i] < 0 || g->prompt[i] >= tokenizer_n_tokens(tok))
                abort();
        openai_request_free(&r);
        return;
    }
    if (status != 400 && status != 404)
        abort();
    char *body = openai_error_body(&e);
    json_t *o = body ? json_loads(body, 0, NULL) : NULL;
    if (!o || !json_is_string(json_object_get(json_object_get(o, "error"), "message")))
        abort();
    json_decref(o);
    free(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tokenizer *tok = fixture_tokenizer("fuzz_serve_request");
    parse(tok, OPENAI_CHAT, data, size);
    parse(tok, OPENAI_COMPLETION, data, size);
    return 0;
}
