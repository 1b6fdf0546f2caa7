/* Value ranges of the model config (checked on convert and on every .dsq open), the tensor count
 * computed before a plan is allocated, and the chat template limits. */
#include <stdlib.h>

#include "chat_template.h"
#include "hf_config.h"
#include "model_config.h"
#include "tensor_map.h"
#include "test.h"

static int load(const char *name, dsq_model_config *c, dsq_error *err)
{
    char path[512], dtype[32];
    snprintf(path, sizeof path, "%s/configs/%s", test_data_dir(), name);
    return hf_config_load(c, dtype, sizeof dtype, path, err);
}

/* The .dsq metadata of config c with one key replaced; returns model_config_from_json's code. */
static int reopen_with(const dsq_model_config *c, const char *key, json_t *value, dsq_error *err)
{
    json_t *obj = model_config_to_json(c);
    json_object_set_new(obj, key, value);
    dsq_model_config back;
    int rc = model_config_from_json(&back, obj, "hand-made.dsq", err);
    json_decref(obj);
    return rc;
}

/* Every published config (both spellings) passes the ranges. */
TEST(published_configs_are_in_range)
{
    static const char *const names[] = {"deepseek-moe-16b.json", "deepseek-moe-16b-trainer.json",
                                        "deepseek-v2-lite.json", "deepseek-v2-lite-tf5.json",
                                        "deepseek-v2.json"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        dsq_model_config c;
        dsq_error err;
        CHECK_MSG(load(names[i], &c, &err) == DSQ_OK, "%s: %s", names[i], err.msg);
        CHECK_MSG(reopen_with(&c, "vocab_size", json_integer(c.vocab_size), &err) == DSQ_OK,
                  "%s: %s", names[i], err.msg);
    }
}

/* Each nonsense value is refused on a .dsq open with a message naming the key and the range. */
TEST(out_of_range_values_are_refused_by_key)
{
    dsq_model_config c;
    dsq_error err;
    CHECK(load("deepseek-v2.json", &c, &err) == DSQ_OK);
    static const struct {
        const char *key;
        double value;
        const char *message;
    } cases[] = {
        {"rope_theta", 1, "rope_theta 1 outside [100, 1e9]"},
        {"rope_theta", 1e12, "rope_theta 1e+12 outside [100, 1e9]"},
        {"yarn_beta_fast", 0, "rope_scaling.beta_fast 0 outside (0, 1024]"},
        {"yarn_beta_slow", 40, "rope_scaling.beta_slow 40 outside (0, beta_fast 32)"},
        {"yarn_factor", 0.5, "rope_scaling.factor 0.5 outside [1, 1024]"},
        {"yarn_factor", 1e6, "rope_scaling.factor 1e+06 outside [1, 1024]"},
        {"yarn_mscale", -1, "rope_scaling.mscale -1 outside [0, 10]"},
        {"yarn_mscale_all_dim", 100, "rope_scaling.mscale_all_dim 100 outside [0, 10]"},
        {"routed_scaling_factor", 1e6, "routed_scaling_factor 1e+06 outside (0, 100]"},
        {"routed_scaling_factor", 0, "routed_scaling_factor 0 outside (0, 100]"},
        {"rms_norm_eps", 0.5, "rms_norm_eps 0.5 outside [1e-12, 0.01]"},
        {"rms_norm_eps", 0, "rms_norm_eps 0 outside [1e-12, 0.01]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        CHECK_MSG(reopen_with(&c, cases[i].key, json_real(cases[i].value), &err) == DSQ_EINPUT,
                  "%s = %g accepted", cases[i].key, cases[i].value);
        CHECK_STR_CONTAINS(err.msg, cases[i].message);
        CHECK_STR_CONTAINS(err.msg, "hand-made.dsq");
    }
    static const struct {
        const char *key;
        int value;
        const char *message;
    } ints[] = {
        {"max_position_embeddings", 0, "max_position_embeddings 0 outside [1, 16777216]"},
        {"yarn_original_max_position", 200000,
         "original_max_position_embeddings 200000 outside [1, max_position_embeddings 163840]"},
        {"topk_group", 9, "topk_group 9"},
        {"n_group", 0, "n_group 0"},
        {"first_k_dense_replace", 61, "first_k_dense_replace 61 exceeds num_hidden_layers 60"},
    };
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++) {
        CHECK_MSG(reopen_with(&c, ints[i].key, json_integer(ints[i].value), &err) == DSQ_EINPUT,
                  "%s = %d accepted", ints[i].key, ints[i].value);
        CHECK_STR_CONTAINS(err.msg, ints[i].message);
    }
}

/* A greedy-routed model still needs a consistent n_group / topk_group pair. */
TEST(group_pair_checked_without_group_routing)
{
    dsq_model_config c;
    dsq_error err;
    CHECK(load("deepseek-v2-lite.json", &c, &err) == DSQ_OK);
    CHECK_EQ_INT(c.topk_method, DSQ_TOPK_GREEDY);
    CHECK(reopen_with(&c, "topk_group", json_integer(2), &err) == DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "topk_group 2 outside [1, n_group 1]");
}

/* Integers in config.json: a value beyond any integer type is refused before it is converted
 * (the conversion would be undefined; the sanitizer build traps it), as is a fraction. */
TEST(config_integers_checked_before_conversion)
{
    static const char *const values[] = {"1e300", "-1e300", "3.5", "1073741825"};
    for (size_t i = 0; i < sizeof values / sizeof *values; i++) {
        char text[512];
        snprintf(text, sizeof text,
                 "{\"model_type\": \"deepseek\", \"vocab_size\": 512, \"hidden_size\": 64, "
                 "\"num_hidden_layers\": %s, \"num_attention_heads\": 4, "
                 "\"intermediate_size\": 128, \"moe_intermediate_size\": 32, "
                 "\"n_routed_experts\": 8, \"num_experts_per_tok\": 2, \"bos_token_id\": 1, "
                 "\"eos_token_id\": 2}",
                 values[i]);
        json_t *root = json_loads(text, 0, NULL);
        CHECK(root != NULL);
        dsq_model_config c;
        dsq_error err;
        CHECK_MSG(hf_config_parse(&c, root, "cfg.json", &err) == DSQ_EINPUT, "%s accepted",
                  values[i]);
        CHECK_STR_CONTAINS(err.msg, "\"num_hidden_layers\" must be a non-negative integer");
        json_decref(root);
    }
}

/* The count that guards plan allocation equals what the plan builder makes, in every family. */
TEST(plan_count_matches_plan)
{
    static const char *const names[] = {"deepseek-moe-16b.json", "deepseek-v2-lite.json",
                                        "deepseek-v2.json"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        dsq_model_config c;
        dsq_error err;
        CHECK(load(names[i], &c, &err) == DSQ_OK);
        planned_tensor *plan;
        int n;
        CHECK(tensor_plan_build(&c, &plan, &n, &err) == DSQ_OK);
        CHECK_EQ_INT(tensor_plan_count(&c), n);
        free(plan);
    }
}

/* A hand-made .dsq promising 1024 layers of 4096 experts is refused by its count: the plan it
 * implies (12.6 million tensors, gigabytes) is never built. */
TEST(absurd_plan_count_exceeds_bound)
{
    dsq_model_config c;
    dsq_error err;
    CHECK(load("deepseek-v2.json", &c, &err) == DSQ_OK);
    c.n_layers = 1024;
    c.n_routed_experts = 4096;
    c.n_group = 8;
    CHECK(model_config_check(&c, "x", &err) == DSQ_OK); /* each value alone is allowed */
    CHECK(tensor_plan_count(&c) > 12000000ull);
    CHECK(tensor_plan_count(&c) > TENSOR_PLAN_MAX(100000));
}

TEST(chat_template_limits)
{
    dsq_error err;
    CHECK(chat_template_check(NULL, "t", &err) == DSQ_OK);
    json_t *v = json_null();
    CHECK(chat_template_check(v, "t", &err) == DSQ_OK);
    json_decref(v);
    v = json_stringn("ab\0cd", 5);
    CHECK(v != NULL);
    CHECK(chat_template_check(v, "t", &err) == DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "NUL byte at offset 2");
    json_decref(v);
    v = json_integer(3);
    CHECK(chat_template_check(v, "t", &err) == DSQ_EINPUT);
    json_decref(v);
    char *big = malloc(CHAT_TEMPLATE_MAX + 2);
    memset(big, 'a', CHAT_TEMPLATE_MAX + 1);
    v = json_stringn_nocheck(big, CHAT_TEMPLATE_MAX + 1);
    CHECK(chat_template_check(v, "t", &err) == DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "exceeds 16 MiB");
    json_decref(v);
    free(big);
}
