/* libFuzzer target for the tokenizer: any bytes are encoded with the fixture tokenizer, and
 * the ids must be valid and decode through the UTF-8 stream without overrunning its buffer. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "fixture_tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tokenizer *tok = fixture_tokenizer("fuzz_tokenizer");
    int *ids = NULL;
    size_t n = 0;
    dsq_error err = {0};
    if (tokenizer_encode(tok, (const char *)data, size, TOKENIZER_ADD_BOS, &ids, &n, &err) != 0)
        abort(); /* any bytes are valid input */
    utf8_stream s = {0};
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= tokenizer_n_tokens(tok))
            abort();
        size_t len;
        const char *bytes = tokenizer_token_bytes(tok, ids[i], &len);
        char *out = malloc(UTF8_STREAM_OUT_MAX(len));
        utf8_stream_push(&s, bytes, len, out);
        free(out);
    }
    char tail[8];
    utf8_stream_flush(&s, tail);
    free(ids);
    return 0;
}
