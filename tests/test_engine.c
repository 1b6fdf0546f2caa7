/* The engine interface on the CPU: backend selection and its errors, the checks engine_forward
 * makes (a logits buffer included: the CPU engine does not sample), truncation (a truncated cache
 * replays to the same logits, bit for bit), and the model description a device backend reads. */
#include <stdlib.h>

#include "engine.h"
#include "fixture_model.h"

TEST(engine_backend_selection)
{
    model m;
    open_fixture_model("tiny-v2", 32, &m);
    engine e;
    dsq_error err = {0};
    engine_options tpu = {.backend = "tpu"}, cpu = {.backend = "cpu"}, cuda = {.backend = "cuda"};
    CHECK(engine_open(&e, &m, &tpu, &err) == DSQ_EUSAGE);
    CHECK_STR_CONTAINS(err.msg, "cpu and cuda");
    CHECK(engine_open(&e, &m, &cpu, &err) == DSQ_OK);
    CHECK(strcmp(e.ops->name, "cpu") == 0);
    engine_close(&e);
    if (engine_cuda_devices() == 0) { /* no device (or no CUDA in the build): exit code 3 */
        CHECK(engine_open(&e, &m, &cuda, &err) == DSQ_ERESOURCE);
        CHECK(strstr(err.msg, "no CUDA device") || strstr(err.msg, "built without CUDA"));
        CHECK(engine_open(&e, &m, NULL, &err) == DSQ_OK); /* the default falls back */
        CHECK(strcmp(e.ops->name, "cpu") == 0);
        engine_close(&e);
    }
    engine_options two = {.backend = "cpu", .n_seq = 2};
    CHECK(engine_open(&e, &m, &two, &err) == DSQ_EUSAGE); /* one sequence at a time */
    CHECK_STR_CONTAINS(err.msg, "one sequence at a time");
    CHECK(engine_open(&e, &m, &cpu, &err) == DSQ_OK);
    int seq = 0, tok = 1;
    float *logits = malloc((size_t)e.desc->vocab * sizeof(float));
    CHECK(engine_forward_seqs(&e, &seq, &tok, 1, logits, &err) == DSQ_EUSAGE);
    free(logits);
    engine_close(&e);
    model_close(&m);
}

TEST(engine_forward_checks_and_truncates)
{
    model m;
    open_fixture_model("tiny-v2", 16, &m);
    engine e;
    dsq_error err = {0};
    engine_options cpu = {.backend = "cpu"};
    CHECK(engine_open(&e, &m, &cpu, &err) == DSQ_OK);
    const int vocab = e.desc->vocab;
    int toks[16];
    for (int i = 0; i < 16; i++)
        toks[i] = (i * 37 + 5) % vocab;
    float *a = malloc((size_t)vocab * sizeof(float)), *b = malloc((size_t)vocab * sizeof(float));
    CHECK(engine_forward(&e, toks, 10, a, false, &err) == DSQ_OK);
    CHECK_EQ_INT(e.n_past, 10);
    engine_truncate(&e, 6);
    CHECK_EQ_INT(e.n_past, 6);
    CHECK(engine_forward(&e, toks + 6, 4, b, false, &err) == DSQ_OK);
    CHECK(memcmp(a, b, (size_t)vocab * sizeof(float)) == 0);
    CHECK(engine_forward(&e, toks, 7, a, false, &err) == DSQ_EUSAGE); /* 10 + 7 > 16 */
    CHECK_STR_CONTAINS(err.msg, "context full");
    int bad = vocab;
    CHECK(engine_forward(&e, &bad, 1, a, false, &err) == DSQ_EINPUT);
    CHECK_EQ_INT(e.n_past, 10);
    engine_reset(&e);
    /* the CPU engine hands its logits out and leaves sampling to the caller */
    CHECK(!engine_samples(&e));
    CHECK(engine_forward(&e, toks, 1, NULL, false, &err) == DSQ_EUSAGE);
    CHECK_STR_CONTAINS(err.msg, "needs a buffer for its logits");
    CHECK_EQ_INT(e.n_past, 0);
    sampler s;
    sampler_params sp = sampler_defaults();
    CHECK(sampler_init(&s, &sp, vocab, &err) == DSQ_OK);
    int next = -1;
    CHECK(engine_sample(&e, &s, NULL, 0, &next, &err) == DSQ_EUSAGE);
    CHECK_STR_CONTAINS(err.msg, "does not sample");
    sampler_free(&s);
    CHECK(engine_forward(&e, toks, 16, a, false, &err) == DSQ_OK);
    free(a);
    free(b);
    engine_close(&e);
    model_close(&m);
}

/* What cuda/ reads instead of the converter's structs: dimensions, routing and the weight views
 * inside the mapping. */
TEST(engine_model_description)
{
    model m;
    open_fixture_model("tiny-v2", 8, &m);
    engine e;
    dsq_error err = {0};
    engine_options cpu = {.backend = "cpu"};
    CHECK(engine_open(&e, &m, &cpu, &err) == DSQ_OK);
    const model_desc *d = e.desc;
    CHECK(d->mla);
    CHECK_EQ_INT(d->n_layers, m.cfg->n_layers);
    CHECK_EQ_INT(d->q_lora_rank, 48);
    CHECK(d->route.group_limited);
    CHECK_EQ_INT(d->route.n_group, 4);
    CHECK_EQ_INT(d->route.topk_group, 2);
    CHECK(d->route.routed_scaling == 2.5f);
    CHECK(d->softmax_scale == m.softmax_scale);
    CHECK(d->rope_cos == m.rope.cos && d->rope_n_pos == 8 && d->rope_interleaved);
    for (int l = 0; l < d->n_layers; l++) {
        const md_layer *L = &d->layers[l];
        CHECK(L->moe == m.w.layers[l].moe);
        CHECK((const uint8_t *)L->kv_b.data >= d->map &&
              (const uint8_t *)L->kv_b.data < d->map + d->map_size);
        if (L->moe)
            CHECK(L->experts[7].down.data == m.w.layers[l].experts[7].down.data);
    }
    engine_close(&e);
    model_close(&m);
}
