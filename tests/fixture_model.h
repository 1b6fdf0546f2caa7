/* For tests that run a fixture model: converts tests/data/<family> once per test program into
 * the scratch folder and opens it with a cache of ctx tokens, an f32 cache (the reference
 * arithmetic these tests hold; tests/test_kv_bf16.c covers the bf16 cache). */
#ifndef DSQ_FIXTURE_MODEL_H
#define DSQ_FIXTURE_MODEL_H

#include <unistd.h>

#include "convert.h"
#include "model.h"
#include "test.h"

static inline void open_fixture_model(const char *family, int ctx, model *m)
{
    char dir[512], out[512];
    snprintf(dir, sizeof dir, "%s/%s", test_data_dir(), family);
    snprintf(out, sizeof out, "%s/%s.dsq", test_tmp_dir(), family);
    dsq_error err = {0};
    if (access(out, F_OK) != 0) {
        convert_options o = {.hf_dir = dir, .out_path = out, .threads = 2};
        convert_stats st;
        CHECK_MSG(dsq_convert(&o, &st, &err) == DSQ_OK, "%s", err.msg);
    }
    model_set_kv_cache(KV_CACHE_F32);
    CHECK_MSG(model_open(m, out, ctx, &err) == DSQ_OK, "%s", err.msg);
    model_set_kv_cache(KV_CACHE_BF16);
}

#endif
