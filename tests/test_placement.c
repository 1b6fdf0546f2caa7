/* The GPU / host placement: byte counts worked out by hand for the published DeepSeek-V2 config,
 * the budget never exceeded, the early refusal, hottest-first and even spreads, and the same
 * per-tensor bytes from a config as in a converted file. */
#include <stdio.h>
#include <stdlib.h>

#include "convert.h"
#include "hf_config.h"
#include "model_file.h"
#include "placement.h"
#include "test.h"

static void load_config(const char *name, dsq_model_config *c)
{
    char path[512], dtype[32];
    snprintf(path, sizeof path, "%s/configs/%s.json", test_data_dir(), name);
    dsq_error err = {0};
    CHECK_MSG(hf_config_load(c, dtype, sizeof dtype, path, &err) == DSQ_OK, "%s", err.msg);
}

static void config_bytes(const dsq_model_config *c, const char *preset, planned_tensor **plan,
                         uint64_t **bytes, int *n)
{
    recipe_options r = {.preset = preset, .group_size = 64};
    dsq_error err = {0};
    CHECK_MSG(placement_bytes_from_config(c, &r, plan, bytes, n, &err) == DSQ_OK, "%s", err.msg);
}

TEST(deepseek_v2_q4_under_40_gib)
{
    dsq_model_config c;
    load_config("deepseek-v2", &c);
    planned_tensor *plan;
    uint64_t *bytes;
    int n;
    config_bytes(&c, "q4", &plan, &bytes, &n);
    placement p;
    dsq_error err = {0};
    const uint64_t vram = 40ull << 30;
    CHECK_MSG(placement_make(&p, &c, plan, bytes, n, vram, 4096, NULL, &err) == DSQ_OK, "%s",
              err.msg);
    /* q4 at group 64 (quant/q4.h): rows * cols / 2 + 4 * rows * cols / 64 bytes. An expert is
     * gate and up (1536 x 5120) and down (5120 x 1536): 3 * 4,423,680 = 13,271,040 bytes;
     * 59 MoE layers x 160 experts of them. */
    const uint64_t expert = 3 * (1536ull * 5120 / 2 + 4 * 1536ull * 5120 / 64);
    CHECK_EQ_INT(expert, 13271040);
    CHECK_EQ_INT(p.class_bytes[TC_ROUTED_EXPERT], 59ull * 160 * expert);
    CHECK_EQ_INT(p.experts_total, 59 * 160);
    /* the q4 preset keeps what every token uses at q8 (rows * cols * 66 / 64 bytes): the
     * embedding and head, 102400 x 5120 each */
    CHECK_EQ_INT(p.class_bytes[TC_EMBEDDING], 102400ull * 5120 * 66 / 64);
    CHECK_EQ_INT(p.class_bytes[TC_OUTPUT], 102400ull * 5120 * 66 / 64);
    /* fp32 latent cache: 60 layers x (kv_lora_rank 512 + rope 64) floats per token */
    CHECK_EQ_INT(p.kv_cache, 60ull * 4096 * (512 + 64) * 4);
    CHECK_EQ_INT(p.resident, p.resident_weights + p.kv_cache + p.work);
    uint64_t all = 0;
    for (int i = 0; i < n; i++)
        all += bytes[i];
    CHECK_EQ_INT(p.resident_weights, all - 59ull * 160 * expert);
    /* every routed expert the same size: as many as fit whole in what is left */
    CHECK_EQ_INT(p.experts_gpu, (vram - p.resident) / expert);
    CHECK_EQ_INT(p.experts_gpu_bytes, (uint64_t)p.experts_gpu * expert);
    CHECK(p.resident + p.experts_gpu_bytes <= vram);
    CHECK(vram - p.resident - p.experts_gpu_bytes < expert);
    CHECK_EQ_INT(p.experts_host_bytes, (uint64_t)(59 * 160 - p.experts_gpu) * expert);
    /* spread evenly: layers differ by at most one expert */
    int lo = 1 << 30, hi = 0;
    for (int m = 0; m < p.n_moe; m++) {
        lo = p.gpu_per_layer[m] < lo ? p.gpu_per_layer[m] : lo;
        hi = p.gpu_per_layer[m] > hi ? p.gpu_per_layer[m] : hi;
    }
    CHECK(hi - lo <= 1);
    CHECK_EQ_INT(p.moe_layer[0], 1); /* first_k_dense_replace 1 */
    const uint64_t resident = p.resident;
    placement_free(&p);

    /* exactly the resident part: no expert on the GPU; one byte less: refused, saying how much */
    CHECK(placement_make(&p, &c, plan, bytes, n, resident, 4096, NULL, &err) == DSQ_OK);
    CHECK_EQ_INT(p.experts_gpu, 0);
    placement_free(&p);
    CHECK(placement_make(&p, &c, plan, bytes, n, resident - 1, 4096, NULL, &err) == DSQ_ERESOURCE);
    char want[64];
    snprintf(want, sizeof want, "%llu bytes", (unsigned long long)resident);
    CHECK_STR_CONTAINS(err.msg, want);
    CHECK_EQ_INT(p.resident, resident); /* still readable after the refusal */
    placement_free(&p);
    free(plan);
    free(bytes);
}

TEST(hottest_experts_first_by_statistics)
{
    dsq_model_config c;
    load_config("deepseek-v2-lite", &c);
    planned_tensor *plan;
    uint64_t *bytes;
    int n;
    config_bytes(&c, "q8", &plan, &bytes, &n);
    expert_stats s;
    dsq_error err = {0};
    CHECK(expert_stats_init(&s, &c, false, &err) == DSQ_OK);
    /* V2-Lite: 26 MoE layers x 64 experts, top-6. Layer 5 (MoE index 4), expert 7 gets 50 uses,
     * MoE index 20 expert 63 gets 30, every other expert 1: 26 * 64 - 2 + 80 = 1742 uses */
    for (size_t i = 0; i < (size_t)s.n_moe * s.n_experts; i++)
        s.counts[i] = 1;
    s.counts[4 * 64 + 7] = 50;
    s.counts[20 * 64 + 63] = 30;
    placement p;
    CHECK(placement_make(&p, &c, plan, bytes, n, 1ull << 40, 512, NULL, &err) == DSQ_OK);
    const uint64_t resident = p.resident;
    const uint64_t expert = p.class_bytes[TC_ROUTED_EXPERT] / (uint64_t)p.experts_total;
    /* q8: 3 matrices of 1408 x 2048 at 66 / 64 bytes per weight */
    CHECK_EQ_INT(expert, 3ull * 1408 * 2048 * 66 / 64);
    CHECK_EQ_INT(p.experts_gpu, 26 * 64); /* a terabyte holds everything */
    placement_free(&p);
    /* room for two and a half experts: the two hot ones and the first of the ties */
    CHECK(placement_make(&p, &c, plan, bytes, n, resident + 2 * expert + expert / 2, 512, &s,
                         &err) == DSQ_OK);
    CHECK_EQ_INT(p.experts_gpu, 2);
    CHECK(p.on_gpu[4 * 64 + 7] && p.on_gpu[20 * 64 + 63]);
    CHECK_NEAR(p.routed_share_gpu, 80.0 / 1742.0, 1e-12);
    placement_free(&p);
    CHECK(placement_make(&p, &c, plan, bytes, n, resident + 3 * expert, 512, &s, &err) == DSQ_OK);
    CHECK_EQ_INT(p.experts_gpu, 3);
    CHECK(p.on_gpu[0]); /* ties go to the lowest layer and expert */
    placement_free(&p);
    /* without statistics 26 slots give every MoE layer one expert */
    CHECK(placement_make(&p, &c, plan, bytes, n, resident + 26 * expert, 512, NULL, &err) ==
          DSQ_OK);
    for (int m = 0; m < p.n_moe; m++)
        CHECK_EQ_INT(p.gpu_per_layer[m], 1);
    placement_free(&p);
    expert_stats_free(&s);
    free(plan);
    free(bytes);
}

TEST(config_bytes_match_a_converted_file)
{
    char dir[512], out[512];
    /* the trained tiny model: its rows (128 wide) take q4 groups, the fixtures' do not */
    snprintf(dir, sizeof dir, "%s/../../models/tiny-v2", test_data_dir());
    snprintf(out, sizeof out, "%s/tiny-v2-q4.dsq", test_tmp_dir());
    convert_options o = {.hf_dir = dir, .out_path = out, .threads = 2};
    o.recipe.preset = "q4";
    o.recipe.group_size = 32;
    convert_stats st;
    dsq_error err = {0};
    CHECK_MSG(dsq_convert(&o, &st, &err) == DSQ_OK, "%s", err.msg);
    free(st.unused_overrides);
    model_file m;
    CHECK_MSG(model_file_open(&m, out, &err) == DSQ_OK, "%s", err.msg);
    planned_tensor *plan;
    uint64_t *bytes;
    int n;
    recipe_options r = {.preset = "q4", .group_size = 32};
    CHECK_MSG(placement_bytes_from_config(&m.config, &r, &plan, &bytes, &n, &err) == DSQ_OK, "%s",
              err.msg);
    CHECK_EQ_INT(n, m.n_plan);
    int same = 0;
    for (int i = 0; i < n && i < m.n_plan; i++)
        same += bytes[i] == m.tensors[i]->size && !strcmp(plan[i].name, m.plan[i].name);
    CHECK_EQ_INT(same, n);
    free(plan);
    free(bytes);
    model_file_close(&m);
}
