/* Renders a conversation in the DeepSeek chat format into token ids. */
#include "chat_template.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    char *s;
    size_t len, cap;
} text_buf;

static int append(text_buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p)
            return DSQ_ERESOURCE;
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
    return DSQ_OK;
}

/* Encodes the text gathered so far (no BOS/EOS added) onto out and empties it. */
static int flush(const tokenizer *tok, text_buf *b, token_list *out, dsq_error *err)
{
    if (b->len == 0)
        return DSQ_OK;
    int *ids = NULL;
    size_t n = 0;
    int rc = tokenizer_encode(tok, b->s, b->len, 0, &ids, &n, err);
    for (size_t i = 0; !rc && i < n; i++)
        if (token_list_push(out, ids[i]))
            rc = dsq_fail(err, DSQ_ERESOURCE, "out of memory");
    free(ids);
    b->len = 0;
    return rc;
}

int chat_template_tokens(const tokenizer *tok, const chat_message *msgs, int n, token_list *out,
                         dsq_error *err)
{
    text_buf b = {0};
    int rc = token_list_push(out, tokenizer_bos(tok));
    for (int i = 0; !rc && i < n; i++) {
        const chat_message *m = &msgs[i];
        switch (m->role) {
        case CHAT_SYSTEM:
            rc = append(&b, m->text, m->len) || append(&b, "\n\n", 2);
            break;
        case CHAT_USER:
            rc = append(&b, "User: ", 6) || append(&b, m->text, m->len) || append(&b, "\n\n", 2);
            break;
        case CHAT_ASSISTANT:
            rc = append(&b, "Assistant: ", 11) || append(&b, m->text, m->len);
            if (!rc && (rc = flush(tok, &b, out, err)))
                goto done;
            if (!rc)
                rc = token_list_push(out, tokenizer_eos(tok));
            break;
        }
    }
    if (!rc)
        rc = append(&b, "Assistant:", 10);
    if (!rc && (rc = flush(tok, &b, out, err)))
        goto done;
    if (rc)
        rc = dsq_fail(err, DSQ_ERESOURCE, "out of memory");
done:
    free(b.s);
    return rc;
}
