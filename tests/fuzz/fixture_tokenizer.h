/* Fuzz targets that need a tokenizer: the tiny-v2-lite fixture's, loaded once per process
 * ($DSQ_TEST_DATA or tests/data); a fixture that does not load aborts the target. */
#ifndef DSQ_FIXTURE_TOKENIZER_H
#define DSQ_FIXTURE_TOKENIZER_H

#include <stdio.h>
#include <stdlib.h>

#include "convert/tokenizer_import.h"
#include "runtime/tokenizer.h"

static tokenizer *fixture_tokenizer(const char *target)
{
    static tokenizer *tok;
    if (tok)
        return tok;
    const char *data = getenv("DSQ_TEST_DATA");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/tiny-v2-lite", data ? data : "tests/data");
    json_t *obj = NULL, *tmpl = NULL;
    dsq_error err = {0};
    if (tokenizer_import(dir, 510, 511, 512, &obj, &tmpl, &err) ||
        tokenizer_load(&tok, obj, dir, &err)) {
        fprintf(stderr, "%s: %s\n", target, err.msg);
        abort();
    }
    json_decref(obj);
    json_decref(tmpl);
    return tok;
}

#endif
