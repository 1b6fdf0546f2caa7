/* libFuzzer target for the tokenizer import: each input is the tokenizer.json of a scratch
 * checkpoint folder (no tokenizer_config.json; vocabulary 512, BOS 510 and EOS 511 as in the
 * fixtures). A refusal must say why; an accepted tokenizer must load in the runtime and encode
 * a fixed text with ids inside its vocabulary. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "convert/tokenizer_import.h"
#include "runtime/tokenizer.h"

static char dir[64], file[96];

static void remove_scratch(void)
{
    unlink(file);
    rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/fuzz-tokenizer-import-XXXXXX");
        if (!mkdtemp(dir))
            abort();
        snprintf(file, sizeof file, "%s/tokenizer.json", dir);
        atexit(remove_scratch);
    }
    FILE *f = fopen(file, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        abort();
    json_t *obj = NULL, *tmpl = NULL;
    dsq_error err = {0};
    if (tokenizer_import(dir, 510, 511, 512, &obj, &tmpl, &err) != DSQ_OK) {
        if (!err.msg[0] || obj || tmpl)
            abort(); /* a refusal says why and leaves nothing */
        return 0;
    }
    tokenizer *tok = NULL;
    if (tokenizer_load(&tok, obj, dir, &err) == DSQ_OK) {
        static const char text[] = "Hello, world! 123 ünïcödé\n\tend";
        int *ids = NULL;
        size_t n = 0;
        if (tokenizer_encode(tok, text, strlen(text), TOKENIZER_ADD_BOS, &ids, &n, &err) ==
            DSQ_OK)
            for (size_t i = 0; i < n; i++)
                if (ids[i] < 0 || ids[i] >= tokenizer_n_tokens(tok))
                    abort();
        free(ids);
        tokenizer_free(tok);
    }
    json_decref(obj);
    json_decref(tmpl);
    return 0;
}
