/* Expert routing counts: the record hook, the trace's token order, the JSON file and the
 * summary numbers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "expert_stats.h"
#include "fixture_model.h"
#include "test.h"

/* 4 layers, the first dense, 8 experts, top-2: MoE layers 1, 2, 3. */
static dsq_model_config small_config(void)
{
    dsq_model_config c = {0};
    c.n_layers = 4;
    c.n_routed_experts = 8;
    c.n_experts_per_tok = 2;
    c.first_k_dense_replace = 1;
    c.moe_layer_freq = 1;
    return c;
}

TEST(record_counts_and_orders_the_trace_token_by_token)
{
    const dsq_model_config c = small_config();
    expert_stats s;
    dsq_error err = {0};
    CHECK(expert_stats_init(&s, &c, true, &err) == DSQ_OK);
    CHECK_EQ_INT(s.n_moe, 3);
    CHECK_EQ_INT(s.moe_index[0], -1);
    CHECK_EQ_INT(s.moe_layer[2], 3);
    /* a prefill of 2 tokens goes layer by layer, then a decode of 1 token */
    const int ids1[] = {0, 1, 2, 3}, ids2[] = {4, 5, 6, 7}, ids3[] = {0, 7, 1, 6};
    CHECK(expert_stats_record(&s, 1, ids1, 2) == DSQ_OK);
    CHECK(expert_stats_record(&s, 2, ids2, 2) == DSQ_OK);
    CHECK(expert_stats_record(&s, 3, ids3, 2) == DSQ_OK);
    CHECK_EQ_INT(s.trace_tokens, 2);
    const int d1[] = {5, 5}, d2[] = {0, 1}, d3[] = {2, 3};
    CHECK(expert_stats_record(&s, 1, d1, 1) == DSQ_OK); /* a repeated id counts twice */
    CHECK(expert_stats_record(&s, 2, d2, 1) == DSQ_OK);
    CHECK(expert_stats_record(&s, 3, d3, 1) == DSQ_OK);
    CHECK_EQ_INT(s.trace_tokens, 3);
    CHECK_EQ_INT(s.tokens[0], 3);
    CHECK_EQ_INT(s.counts[0 * 8 + 5], 2);
    CHECK_EQ_INT(s.counts[0 * 8 + 0], 1);
    CHECK_EQ_INT(s.counts[2 * 8 + 0], 1);
    /* token 1: layer 1 chose {2, 3}, layer 2 {6, 7}, layer 3 {1, 6} */
    const uint16_t *t = expert_stats_trace_at(&s, 1, 0);
    CHECK(t[0] == 2 && t[1] == 3);
    t = expert_stats_trace_at(&s, 1, 2);
    CHECK(t[0] == 1 && t[1] == 6);
    t = expert_stats_trace_at(&s, 2, 1);
    CHECK(t[0] == 0 && t[1] == 1);

    /* the file gives back the same numbers */
    char path[512];
    snprintf(path, sizeof path, "%s/stats.json", test_tmp_dir());
    s.meta = json_pack("{s:s, s:i}", "text", "heldout.txt", "ctx", 64);
    CHECK_MSG(expert_stats_save(&s, path, &err) == DSQ_OK, "%s", err.msg);
    expert_stats r;
    CHECK_MSG(expert_stats_load(&r, path, &err) == DSQ_OK, "%s", err.msg);
    CHECK(expert_stats_check(&r, &c, path, &err) == DSQ_OK);
    CHECK_EQ_INT(r.n_moe, 3);
    CHECK_EQ_INT(r.trace_tokens, 3);
    CHECK(memcmp(r.counts, s.counts, 3 * 8 * sizeof *r.counts) == 0);
    CHECK(memcmp(r.trace, s.trace, 3 * 3 * 2 * sizeof *r.trace) == 0);
    CHECK_EQ_INT(json_integer_value(json_object_get(r.meta, "ctx")), 64);
    /* a model with another shape is refused, naming the file */
    dsq_model_config other = c;
    other.n_routed_experts = 16;
    CHECK(expert_stats_check(&r, &other, path, &err) == DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "stats.json");
    expert_stats_free(&r);
    expert_stats_free(&s);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

TEST(damaged_files_are_refused_naming_the_problem)
{
    char path[512];
    snprintf(path, sizeof path, "%s/bad.json", test_tmp_dir());
    expert_stats s;
    dsq_error err = {0};
    write_text(path, "{\"format\": \"dsq-logits\"}");
    CHECK(expert_stats_load(&s, path, &err) == DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "not an expert statistics file");
    /* counts that do not add up to tokens x k */
    write_text(path, "{\"format\": \"dsq-expert-stats\", \"version\": 1, \"n_layers\": 2, "
                     "\"n_experts\": 2, \"k\": 1, \"moe_layers\": [1], \"tokens\": [3], "
                     "\"counts\": [[1, 1]]}");
    CHECK(expert_stats_load(&s, path, &err) == DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "sum to 2");
    /* a trace id outside the experts */
    write_text(path, "{\"format\": \"dsq-expert-stats\", \"version\": 1, \"n_layers\": 2, "
                     "\"n_experts\": 2, \"k\": 1, \"moe_layers\": [1], \"tokens\": [2], "
                     "\"counts\": [[1, 1]], \"trace_tokens\": 2, \"trace\": [0, 2]}");
    CHECK(expert_stats_load(&s, path, &err) == DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "trace[1]");
    write_text(path, "{\"format\": \"dsq-expert-stats\", \"version\": 1, \"n_layers\": 2, "
                     "\"n_experts\": 2, \"k\": 1, \"moe_layers\": [1], \"tokens\": [2], "
                     "\"counts\": [[1, 1]], \"trace_tokens\": 2, \"trace\": [0, 1]}");
    CHECK_MSG(expert_stats_load(&s, path, &err) == DSQ_OK, "%s", err.msg);
    expert_stats_free(&s);
}

TEST(entropy_and_top_share)
{
    const dsq_model_config c = small_config();
    expert_stats s;
    dsq_error err = {0};
    CHECK(expert_stats_init(&s, &c, false, &err) == DSQ_OK);
    for (int e = 0; e < 8; e++) /* layer 1 uniform: log2(8) = 3 bits */
        s.counts[e] = 10;
    s.counts[8 + 3] = 40;  /* layer 2 on one expert: 0 bits */
    s.counts[16 + 0] = 30; /* layer 3: 3/4, 1/4: 0.811278 bits */
    s.counts[16 + 1] = 10;
    CHECK_NEAR(expert_stats_entropy(&s, 0), 3.0, 1e-12);
    CHECK_NEAR(expert_stats_entropy(&s, 1), 0.0, 1e-12);
    CHECK_NEAR(expert_stats_entropy(&s, 2), -(0.75 * log2(0.75) + 0.25 * log2(0.25)), 1e-12);
    CHECK_NEAR(expert_stats_top_share(&s, 0, 2), 0.25, 1e-12);
    CHECK_NEAR(expert_stats_top_share(&s, 2, 1), 0.75, 1e-12);
    expert_stats_free(&s);
}

TEST(the_forward_pass_counts_every_routed_token)
{
    model m;
    open_fixture_model("tiny-v2", 16, &m);
    expert_stats s;
    dsq_error err = {0};
    CHECK(expert_stats_init(&s, m.cfg, true, &err) == DSQ_OK);
    m.expert_stats = &s;
    const int tokens[] = {1, 5, 9, 13, 17, 21};
    float *logits = malloc((size_t)m.cfg->vocab_size * sizeof(float));
    CHECK_MSG(model_forward(&m, tokens, 5, logits, false, &err) == DSQ_OK, "%s", err.msg);
    CHECK_MSG(model_forward(&m, tokens + 5, 1, logits, false, &err) == DSQ_OK, "%s", err.msg);
    CHECK(s.n_moe > 0);
    CHECK_EQ_INT(s.trace_tokens, 6);
    for (int moe = 0; moe < s.n_moe; moe++) {
        uint64_t sum = 0;
        for (int e = 0; e < s.n_experts; e++)
            sum += s.counts[(size_t)moe * s.n_experts + e];
        CHECK_EQ_INT(s.tokens[moe], 6);
        CHECK_EQ_INT(sum, 6 * s.k);
        for (int t = 0; t < 6; t++) { /* k different experts per token and layer */
            const uint16_t *ids = expert_stats_trace_at(&s, (size_t)t, moe);
            for (int i = 0; i < s.k; i++)
                for (int j = 0; j < i; j++)
                    CHECK(ids[i] != ids[j]);
        }
    }
    free(logits);
    m.expert_stats = NULL;
    expert_stats_free(&s);
    model_close(&m);
}
