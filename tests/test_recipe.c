/* Recipes: preset assignment per tensor for every family, overrides, and refusals. */
#include <stdlib.h>

#include "hf_config.h"
#include "recipe.h"
#include "test.h"
#include "types.h"

static planned_tensor *plan_of(const char *config, int *n)
{
    char path[512], dtype[32];
    snprintf(path, sizeof path, "%s/%s", test_data_dir(), config);
    dsq_model_config c;
    dsq_error err;
    planned_tensor *plan = NULL;
    CHECK_MSG(hf_config_load(&c, dtype, sizeof dtype, path, &err) == DSQ_OK, "%s", err.msg);
    CHECK(tensor_plan_build(&c, &plan, n, &err) == DSQ_OK);
    return plan;
}

/* The type each preset gives a class (rows: bf16, q8, q4, q4-q6, q4-all; columns: embedding,
 * output, norm, attention, dense FFN, router, shared expert, routed expert). */
static const uint32_t expected[5][TC_COUNT] = {
    {DSQ_TYPE_BF16, DSQ_TYPE_BF16, DSQ_TYPE_F32, DSQ_TYPE_BF16, DSQ_TYPE_BF16, DSQ_TYPE_F32,
     DSQ_TYPE_BF16, DSQ_TYPE_BF16},
    {DSQ_TYPE_Q8, DSQ_TYPE_Q8, DSQ_TYPE_F32, DSQ_TYPE_Q8, DSQ_TYPE_Q8, DSQ_TYPE_F32, DSQ_TYPE_Q8,
     DSQ_TYPE_Q8},
    {DSQ_TYPE_Q8, DSQ_TYPE_Q8, DSQ_TYPE_F32, DSQ_TYPE_Q8, DSQ_TYPE_Q8, DSQ_TYPE_F32, DSQ_TYPE_Q8,
     DSQ_TYPE_Q4},
    {DSQ_TYPE_Q8, DSQ_TYPE_Q6, DSQ_TYPE_F32, DSQ_TYPE_Q6, DSQ_TYPE_Q6, DSQ_TYPE_F32, DSQ_TYPE_Q6,
     DSQ_TYPE_Q4},
    {DSQ_TYPE_Q4, DSQ_TYPE_Q4, DSQ_TYPE_F32, DSQ_TYPE_Q4, DSQ_TYPE_Q4, DSQ_TYPE_F32, DSQ_TYPE_Q4,
     DSQ_TYPE_Q4},
};

TEST(presets_assign_by_class_for_every_family)
{
    const char *configs[] = {"configs/deepseek-moe-16b.json", "configs/deepseek-v2-lite.json",
                             "configs/deepseek-v2.json"};
    for (int f = 0; f < 3; f++) {
        int n;
        planned_tensor *plan = plan_of(configs[f], &n);
        tensor_choice *choices = calloc((size_t)n, sizeof *choices);
        for (int p = 0; recipe_presets[p]; p++) {
            recipe_options o = {.preset = recipe_presets[p], .group_size = 64};
            char *unused;
            dsq_error err;
            CHECK_MSG(recipe_resolve(&o, plan, n, choices, &unused, &err) == DSQ_OK, "%s: %s",
                      configs[f], err.msg);
            int wrong = 0;
            for (int i = 0; i < n; i++) {
                wrong += choices[i].type != expected[p][plan[i].cls];
                wrong += choices[i].group != (dsq_type_info(choices[i].type)->quantized ? 64u : 0u);
            }
            CHECK_MSG(wrong == 0, "%s preset %s: %d wrong choices", configs[f], recipe_presets[p],
                      wrong);
        }
        free(choices);
        free(plan);
    }
}

TEST(overrides_match_names_and_later_ones_win)
{
    int n;
    planned_tensor *plan = plan_of("configs/deepseek-v2-lite.json", &n);
    tensor_choice *choices = calloc((size_t)n, sizeof *choices);
    recipe_options o = {.preset = "q4", .group_size = 64, .n_overrides = 3,
                        .overrides = {"layers.*.mlp.experts.*=q8", "layers.5.mlp.experts.*=bf16",
                                      "nothing.matches.this=q4"}};
    char *unused = NULL;
    dsq_error err;
    CHECK(recipe_resolve(&o, plan, n, choices, &unused, &err) == DSQ_OK);
    CHECK(unused && strcmp(unused, "nothing.matches.this=q4") == 0);
    free(unused);
    for (int i = 0; i < n; i++) {
        if (plan[i].cls != TC_ROUTED_EXPERT)
            continue;
        uint32_t want = plan[i].layer == 5 ? DSQ_TYPE_BF16 : DSQ_TYPE_Q8;
        CHECK_EQ_INT(choices[i].type, want);
        if (plan[i].layer == 5 && plan[i].expert == 0 && strstr(plan[i].name, ".gate"))
            CHECK_STR_CONTAINS(choices[i].why, "override layers.5.mlp.experts.*=bf16");
    }
    free(choices);
    free(plan);
}

TEST(group_size_must_divide_every_quantized_row)
{
    int n;
    planned_tensor *plan = plan_of("configs/deepseek-v2-lite.json", &n);
    tensor_choice *choices = calloc((size_t)n, sizeof *choices);
    char *unused;
    dsq_error err;
    /* 10944 (dense FFN rows of layer 0's down projection) is 64 x 171: 128 does not divide it */
    recipe_options o = {.preset = "q8", .group_size = 128};
    CHECK(recipe_resolve(&o, plan, n, choices, &unused, &err) == DSQ_EUSAGE);
    CHECK_STR_CONTAINS(err.msg, "tensor layers.0.mlp.down (rows of 10944)");
    CHECK_STR_CONTAINS(err.msg, "group size 128");
    /* the q4 preset keeps the dense FFN at q8, which 128 still does not divide */
    o.preset = "q4";
    CHECK(recipe_resolve(&o, plan, n, choices, &unused, &err) == DSQ_EUSAGE);
    /* 64 divides every row of all three families */
    o.group_size = 64;
    CHECK(recipe_resolve(&o, plan, n, choices, &unused, &err) == DSQ_OK);
    free(choices);
    free(plan);
}

TEST(bad_options_are_refused)
{
    int n;
    planned_tensor *plan = plan_of("configs/deepseek-moe-16b.json", &n);
    tensor_choice *choices = calloc((size_t)n, sizeof *choices);
    char *unused;
    dsq_error err;
    recipe_options o = {.preset = "q3", .group_size = 64};
    CHECK(recipe_resolve(&o, plan, n, choices, &unused, &err) == DSQ_EUSAGE);
    CHECK_STR_CONTAINS(err.msg, "unknown preset 'q3'");
    o = (recipe_options){.preset = "q4", .group_size = 48};
    CHECK(recipe_check(&o, &err) == DSQ_EUSAGE);
    CHECK_STR_CONTAINS(err.msg, "--group-size 48");
    o = (recipe_options){.preset = "q4", .group_size = 64, .n_overrides = 1,
                         .overrides = {"layers.*.attn.q=q2"}};
    CHECK(recipe_check(&o, &err) == DSQ_EUSAGE);
    CHECK_STR_CONTAINS(err.msg, "unknown type");
    o = (recipe_options){.preset = "q4", .group_size = 64, .n_overrides = 1,
                         .overrides = {"no-equals-sign"}};
    CHECK(recipe_check(&o, &err) == DSQ_EUSAGE);
    CHECK_STR_CONTAINS(err.msg, "expected GLOB=TYPE");
    o = (recipe_options){.preset = "bf16", .group_size = 64, .n_overrides = 1,
                         .overrides = {"layers.3.attn_norm=q8"}};
    CHECK(recipe_resolve(&o, plan, n, choices, &unused, &err) == DSQ_EUSAGE);
    CHECK_STR_CONTAINS(err.msg, "tensor layers.3.attn_norm is 1-D");
    free(choices);
    free(plan);
    /* a glob over the MLA attention sweeps over its 1-D kv_a_norm, which stays f32 */
    plan = plan_of("configs/deepseek-v2-lite.json", &n);
    choices = calloc((size_t)n, sizeof *choices);
    o = (recipe_options){.preset = "q4", .group_size = 64, .n_overrides = 1,
                         .overrides = {"layers.*.attn.*=q4"}};
    CHECK_MSG(recipe_resolve(&o, plan, n, choices, &unused, &err) == DSQ_OK, "%s", err.msg);
    for (int i = 0; i < n; i++)
        if (strstr(plan[i].name, ".attn."))
            CHECK_EQ_INT(choices[i].type, plan[i].ndim == 1 ? DSQ_TYPE_F32 : DSQ_TYPE_Q4);
    free(choices);
    free(plan);
}
