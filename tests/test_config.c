/* config.json parsing for every published spelling, the tensor plan, and parameter counts. */
#include <stdlib.h>

#include "hf_config.h"
#include "tensor_map.h"
#include "test.h"

static int load(const char *name, dsq_model_config *c, dsq_error *err)
{
    char path[512], dtype[32];
    snprintf(path, sizeof path, "%s/configs/%s", test_data_dir(), name);
    return hf_config_load(c, dtype, sizeof dtype, path, err);
}

static void params(const dsq_model_config *c, uint64_t *total, uint64_t *active, uint64_t *embed)
{
    planned_tensor *plan;
    int n;
    dsq_error err;
    CHECK(tensor_plan_build(c, &plan, &n, &err) == DSQ_OK);
    tensor_plan_params(c, plan, n, total, active);
    *embed = plan[0].shape[0] * plan[0].shape[1];
    free(plan);
}

/* Model cards state sizes to 0.1 B (V2: to 1 B), so totals must round to them. "Active" is every
 * tensor one token touches; the DeepSeek-MoE and V2 cards count it so, the V2-Lite card leaves
 * out the embedding lookup and states 2.4 for 2.45 (truncated), so that one is checked as such. */
TEST(deepseek_v2_lite_published)
{
    dsq_model_config c;
    dsq_error err;
    CHECK_MSG(load("deepseek-v2-lite.json", &c, &err) == DSQ_OK, "%s", err.msg);
    CHECK_EQ_INT(c.family, DSQ_FAMILY_V2);
    CHECK_EQ_INT(c.n_layers, 27);
    CHECK_EQ_INT(c.q_lora_rank, 0);
    CHECK_EQ_INT(c.kv_lora_rank, 512);
    CHECK_EQ_INT(c.topk_method, DSQ_TOPK_GREEDY);
    CHECK(c.rope_yarn);
    CHECK_NEAR(c.yarn_factor, 40, 0);
    CHECK_EQ_INT(c.yarn_original_max_position, 4096);
    CHECK_NEAR(c.yarn_mscale_all_dim, 0.707, 1e-12);
    uint64_t total, active, embed;
    params(&c, &total, &active, &embed);
    CHECK_NEAR(total / 1e9, 15.7, 0.05);
    CHECK((active - embed) / 1e9 >= 2.4 && (active - embed) / 1e9 < 2.5);
}

TEST(deepseek_v2_published)
{
    dsq_model_config c;
    dsq_error err;
    CHECK_MSG(load("deepseek-v2.json", &c, &err) == DSQ_OK, "%s", err.msg);
    CHECK_EQ_INT(c.q_lora_rank, 1536);
    CHECK_EQ_INT(c.topk_method, DSQ_TOPK_GROUP_LIMITED);
    CHECK_EQ_INT(c.n_group, 8);
    CHECK_EQ_INT(c.topk_group, 3);
    CHECK_NEAR(c.routed_scaling_factor, 16.0, 0);
    uint64_t total, active, embed;
    params(&c, &total, &active, &embed);
    CHECK_NEAR(total / 1e9, 236, 0.5);
    CHECK_NEAR(active / 1e9, 21, 0.5);
    (void)embed;
}

TEST(deepseek_moe_16b_published)
{
    dsq_model_config c;
    dsq_error err;
    CHECK_MSG(load("deepseek-moe-16b.json", &c, &err) == DSQ_OK, "%s", err.msg);
    CHECK_EQ_INT(c.family, DSQ_FAMILY_V1);
    CHECK_EQ_INT(c.n_layers, 28);
    CHECK_EQ_INT(c.head_dim, 128);
    CHECK(!c.rope_yarn);
    uint64_t total, active, embed;
    params(&c, &total, &active, &embed);
    CHECK_NEAR(total / 1e9, 16.4, 0.05);
    CHECK_NEAR(active / 1e9, 2.8, 0.05);
    (void)embed;
}

static int same_config(const dsq_model_config *a, const dsq_model_config *b)
{
    json_t *ja = model_config_to_json(a), *jb = model_config_to_json(b);
    int same = json_equal(ja, jb);
    json_decref(ja);
    json_decref(jb);
    return same;
}

TEST(transformers5_spelling_is_the_same_model)
{
    dsq_model_config a, b;
    dsq_error err;
    CHECK(load("deepseek-v2-lite.json", &a, &err) == DSQ_OK);
    CHECK_MSG(load("deepseek-v2-lite-tf5.json", &b, &err) == DSQ_OK, "%s", err.msg);
    CHECK(same_config(&a, &b));
}

TEST(trainer_extra_keys_are_accepted)
{
    dsq_model_config a, b;
    dsq_error err;
    CHECK(load("deepseek-moe-16b.json", &a, &err) == DSQ_OK);
    CHECK_MSG(load("deepseek-moe-16b-trainer.json", &b, &err) == DSQ_OK, "%s", err.msg);
    CHECK(same_config(&a, &b));
}

TEST(json_round_trip)
{
    dsq_model_config a, b;
    dsq_error err;
    CHECK(load("deepseek-v2.json", &a, &err) == DSQ_OK);
    json_t *j = model_config_to_json(&a);
    CHECK_MSG(model_config_from_json(&b, j, "x", &err) == DSQ_OK, "%s", err.msg);
    CHECK(same_config(&a, &b));
    json_decref(j);
}

/* Parses an inline config text; returns the status, message in err. */
static int parse_text(const char *text, dsq_error *err)
{
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    CHECK(root != NULL);
    dsq_model_config c;
    int rc = hf_config_parse(&c, root, "cfg.json", err);
    json_decref(root);
    return rc;
}

#define V2_BASE                                                                                  \
    "\"vocab_size\": 512, \"hidden_size\": 64, \"num_hidden_layers\": 3, "                       \
    "\"num_attention_heads\": 4, \"intermediate_size\": 128, \"moe_intermediate_size\": 32, "     \
    "\"n_routed_experts\": 8, \"n_shared_experts\": 2, \"num_experts_per_tok\": 3, "             \
    "\"first_k_dense_replace\": 1, \"kv_lora_rank\": 32, \"qk_nope_head_dim\": 16, "              \
    "\"qk_rope_head_dim\": 8, \"v_head_dim\": 16, \"bos_token_id\": 1, \"eos_token_id\": 2"

TEST(refuses_unsupported_and_malformed)
{
    dsq_error err;
    CHECK(parse_text("{\"model_type\": \"deepseek_v2\", " V2_BASE "}", &err) == DSQ_OK);
    CHECK(parse_text("{\"model_type\": \"deepseek_v3\", " V2_BASE "}", &err) == DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "model_type \"deepseek_v3\" is not supported");
    CHECK(parse_text("{\"model_type\": \"llama\", " V2_BASE "}", &err) == DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "cfg.json");
    CHECK(parse_text("{" V2_BASE "}", &err) == DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "model_type");
    CHECK(parse_text("{\"model_type\": \"deepseek_v2\", " V2_BASE ", \"hidden_size\": \"64\"}",
                     &err) == DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "\"hidden_size\" must be a non-negative integer");
    CHECK(parse_text("{\"model_type\": \"deepseek_v2\", " V2_BASE ", \"scoring_func\": \"sigmoid\"}",
                     &err) == DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "scoring_func");
    CHECK(parse_text("{\"model_type\": \"deepseek_v2\", " V2_BASE ", \"topk_method\": \"noaux_tc\"}",
                     &err) == DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "noaux_tc");
    CHECK(parse_text("{\"model_type\": \"deepseek_v2\", " V2_BASE
                     ", \"topk_method\": \"group_limited_greedy\", \"n_group\": 3}",
                     &err) == DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "n_group 3 must divide n_routed_experts 8");
    CHECK(parse_text("{\"model_type\": \"deepseek_v2\", " V2_BASE ", \"num_experts_per_tok\": 9}",
                     &err) == DSQ_EINPUT);
    CHECK(parse_text("{\"model_type\": \"deepseek_v2\", " V2_BASE
                     ", \"rope_scaling\": {\"type\": \"linear\", \"factor\": 2}}",
                     &err) == DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "rope scaling \"linear\"");
    CHECK(parse_text("{\"model_type\": \"deepseek_v2\", " V2_BASE ", \"attention_bias\": true}",
                     &err) == DSQ_EINPUT);
    CHECK(parse_text("{\"model_type\": \"deepseek_v2\", " V2_BASE
                     ", \"quantization_config\": {\"quant_method\": \"fp8\"}}",
                     &err) == DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "already quantized");
    CHECK(parse_text("{\"model_type\": \"deepseek_v2\", " V2_BASE ", \"bos_token_id\": 600}",
                     &err) == DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "bos_token_id 600");
}

TEST(unreadable_config_file)
{
    dsq_model_config c;
    dsq_error err;
    char dtype[32];
    CHECK(hf_config_load(&c, dtype, sizeof dtype, "/nonexistent/config.json", &err) == DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "/nonexistent/config.json");
    char path[512];
    snprintf(path, sizeof path, "%s/bad.json", test_tmp_dir());
    FILE *f = fopen(path, "w");
    fputs("{\"model_type\": \"deepseek\",\n \"hidden_size\": 64,,}", f);
    fclose(f);
    CHECK(hf_config_load(&c, dtype, sizeof dtype, path, &err) == DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "line 2");
}

TEST(plan_orders_experts_contiguously)
{
    dsq_model_config c;
    dsq_error err;
    CHECK(load("deepseek-v2-lite.json", &c, &err) == DSQ_OK);
    planned_tensor *plan;
    int n;
    CHECK(tensor_plan_build(&c, &plan, &n, &err) == DSQ_OK);
    /* 27 layers: norms 2 + attention (q, kv_a, kv_a_norm, kv_b, o) = 7 each; layer 0 dense 3;
     * 26 MoE layers: router 1 + shared 3 + 64*3 experts; plus embed, norm, output */
    CHECK_EQ_INT(n, 27 * 7 + 3 + 26 * (1 + 3 + 192) + 3);
    int checked = 0;
    for (int i = 0; i + 2 < n; i++) {
        if (plan[i].cls == TC_ROUTED_EXPERT && strstr(plan[i].name, ".gate")) {
            CHECK(plan[i + 1].expert == plan[i].expert && strstr(plan[i + 1].name, ".up"));
            CHECK(plan[i + 2].expert == plan[i].expert && strstr(plan[i + 2].name, ".down"));
            checked++;
        }
    }
    CHECK_EQ_INT(checked, 26 * 64);
    CHECK(strcmp(plan[0].hf_name, "model.embed_tokens.weight") == 0);
    CHECK(strcmp(plan[n - 1].hf_name, "lm_head.weight") == 0);
    free(plan);
}

TEST(metadata_of_unknown_family_is_refused)
{
    dsq_model_config c;
    dsq_error err;
    json_t *j = json_pack("{s:s}", "family", "deepseek-v9");
    CHECK(model_config_from_json(&c, j, "m.dsq", &err) == DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "m.dsq: model family 'deepseek-v9' unknown to this dsq");
    json_decref(j);
}
