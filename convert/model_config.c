/* Normalized model config: consistency checks and the metadata JSON form. */
#include "model_config.h"

#include <stddef.h>
#include <string.h>

const char *model_family_name(dsq_family f)
{
    return f == DSQ_FAMILY_V1 ? "deepseek-moe" : f == DSQ_FAMILY_V2 ? "deepseek-v2" : "unknown";
}

bool model_layer_is_moe(const dsq_model_config *c, int layer)
{
    return c->n_routed_experts > 0 && layer >= c->first_k_dense_replace &&
           layer % c->moe_layer_freq == 0;
}

int model_config_check(const dsq_model_config *c, const char *where, dsq_error *err)
{
#define REQUIRE(cond, ...)                                                                       \
    do {                                                                                         \
        if (!(cond))                                                                             \
            return dsq_fail(err, DSQ_EINPUT, __VA_ARGS__);                                       \
    } while (0)
    const int max_dim = 1 << 20;
    REQUIRE(c->vocab_size > 0 && c->vocab_size <= (1 << 24), "%s: vocab_size %d out of range",
            where, c->vocab_size);
    REQUIRE(c->hidden_size > 0 && c->hidden_size <= max_dim, "%s: hidden_size %d out of range",
            where, c->hidden_size);
    REQUIRE(c->n_layers > 0 && c->n_layers <= 1024, "%s: num_hidden_layers %d out of range", where,
            c->n_layers);
    REQUIRE(c->n_heads > 0 && c->n_heads <= 4096, "%s: num_attention_heads %d out of range", where,
            c->n_heads);
    REQUIRE(c->intermediate_size > 0 && c->intermediate_size <= max_dim,
            "%s: intermediate_size %d out of range", where, c->intermediate_size);
    if (c->family == DSQ_FAMILY_V1) {
        REQUIRE(c->n_kv_heads > 0 && c->n_heads % c->n_kv_heads == 0,
                "%s: num_key_value_heads %d must divide num_attention_heads %d", where,
                c->n_kv_heads, c->n_heads);
        REQUIRE(c->head_dim > 0 && c->head_dim % 2 == 0 && c->head_dim <= 4096,
                "%s: head size %d must be even and positive", where, c->head_dim);
    } else {
        REQUIRE(c->q_lora_rank >= 0 && c->q_lora_rank <= max_dim, "%s: q_lora_rank %d out of range",
                where, c->q_lora_rank);
        REQUIRE(c->kv_lora_rank > 0 && c->kv_lora_rank <= max_dim,
                "%s: kv_lora_rank %d out of range", where, c->kv_lora_rank);
        REQUIRE(c->qk_nope_head_dim > 0 && c->qk_nope_head_dim <= 4096,
                "%s: qk_nope_head_dim %d out of range", where, c->qk_nope_head_dim);
        REQUIRE(c->qk_rope_head_dim > 0 && c->qk_rope_head_dim % 2 == 0 &&
                    c->qk_rope_head_dim <= 4096,
                "%s: qk_rope_head_dim %d must be even and positive", where, c->qk_rope_head_dim);
        REQUIRE(c->v_head_dim > 0 && c->v_head_dim <= 4096, "%s: v_head_dim %d out of range",
                where, c->v_head_dim);
    }
    REQUIRE(c->first_k_dense_replace >= 0, "%s: first_k_dense_replace %d is negative", where,
            c->first_k_dense_replace);
    REQUIRE(c->moe_layer_freq > 0, "%s: moe_layer_freq %d must be positive", where,
            c->moe_layer_freq);
    if (c->n_routed_experts > 0) {
        REQUIRE(c->n_routed_experts <= 4096, "%s: n_routed_experts %d out of range", where,
                c->n_routed_experts);
        REQUIRE(c->moe_intermediate_size > 0 && c->moe_intermediate_size <= max_dim,
                "%s: moe_intermediate_size %d out of range", where, c->moe_intermediate_size);
        REQUIRE(c->n_experts_per_tok > 0 && c->n_experts_per_tok <= c->n_routed_experts,
                "%s: num_experts_per_tok %d must be in 1..n_routed_experts (%d)", where,
                c->n_experts_per_tok, c->n_routed_experts);
        REQUIRE(c->n_shared_experts >= 0 && c->n_shared_experts <= 64,
                "%s: n_shared_experts %d out of range", where, c->n_shared_experts);
        if (c->topk_method == DSQ_TOPK_GROUP_LIMITED) {
            REQUIRE(c->n_group > 0 && c->n_routed_experts % c->n_group == 0,
                    "%s: n_group %d must divide n_routed_experts %d", where, c->n_group,
                    c->n_routed_experts);
            REQUIRE(c->topk_group > 0 && c->topk_group <= c->n_group,
                    "%s: topk_group %d must be in 1..n_group (%d)", where, c->topk_group,
                    c->n_group);
            REQUIRE(c->n_experts_per_tok <= c->topk_group * (c->n_routed_experts / c->n_group),
                    "%s: num_experts_per_tok %d exceeds the experts in topk_group groups", where,
                    c->n_experts_per_tok);
        }
    }
    /* Ranges of the numeric choices: generous around what the published DeepSeek models use
     * (in brackets), excluding values that make the arithmetic meaningless. Written so that a
     * NaN fails too. */
    REQUIRE(c->rms_norm_eps >= 1e-12 && c->rms_norm_eps <= 1e-2,
            "%s: rms_norm_eps %g outside [1e-12, 0.01] (published: 1e-6)", where, c->rms_norm_eps);
    REQUIRE(c->rope_theta >= 100 && c->rope_theta <= 1e9,
            "%s: rope_theta %g outside [100, 1e9] (published: 10000)", where, c->rope_theta);
    REQUIRE(c->max_position_embeddings >= 1 && c->max_position_embeddings <= (1 << 24),
            "%s: max_position_embeddings %d outside [1, 16777216] (published: 4096 to 163840)",
            where, c->max_position_embeddings);
    REQUIRE(c->routed_scaling_factor > 0 && c->routed_scaling_factor <= 100,
            "%s: routed_scaling_factor %g outside (0, 100] (published: 1 to 16)", where,
            c->routed_scaling_factor);
    REQUIRE(c->n_group >= 1 && c->n_group <= 4096, "%s: n_group %d outside [1, 4096]", where,
            c->n_group);
    REQUIRE(c->topk_group >= 1 && c->topk_group <= c->n_group,
            "%s: topk_group %d outside [1, n_group %d]", where, c->topk_group, c->n_group);
    REQUIRE(c->first_k_dense_replace <= c->n_layers,
            "%s: first_k_dense_replace %d exceeds num_hidden_layers %d", where,
            c->first_k_dense_replace, c->n_layers);
    if (c->rope_yarn) {
        REQUIRE(c->yarn_factor >= 1 && c->yarn_factor <= 1024,
                "%s: rope_scaling.factor %g outside [1, 1024] (published: 40)", where,
                c->yarn_factor);
        REQUIRE(c->yarn_original_max_position >= 1 &&
                    c->yarn_original_max_position <= c->max_position_embeddings,
                "%s: rope_scaling.original_max_position_embeddings %d outside [1, "
                "max_position_embeddings %d] (published: 4096)",
                where, c->yarn_original_max_position, c->max_position_embeddings);
        REQUIRE(c->yarn_beta_fast > 0 && c->yarn_beta_fast <= 1024,
                "%s: rope_scaling.beta_fast %g outside (0, 1024] (published: 32)", where,
                c->yarn_beta_fast);
        REQUIRE(c->yarn_beta_slow > 0 && c->yarn_beta_slow < c->yarn_beta_fast,
                "%s: rope_scaling.beta_slow %g outside (0, beta_fast %g) (published: 1)", where,
                c->yarn_beta_slow, c->yarn_beta_fast);
        REQUIRE(c->yarn_mscale >= 0 && c->yarn_mscale <= 10,
                "%s: rope_scaling.mscale %g outside [0, 10] (published: 0.707)", where,
                c->yarn_mscale);
        REQUIRE(c->yarn_mscale_all_dim >= 0 && c->yarn_mscale_all_dim <= 10,
                "%s: rope_scaling.mscale_all_dim %g outside [0, 10] (published: 0.707)", where,
                c->yarn_mscale_all_dim);
    }
    REQUIRE(c->bos_token_id >= 0 && c->bos_token_id < c->vocab_size,
            "%s: bos_token_id %d outside the vocabulary", where, c->bos_token_id);
    REQUIRE(c->eos_token_id >= 0 && c->eos_token_id < c->vocab_size,
            "%s: eos_token_id %d outside the vocabulary", where, c->eos_token_id);
#undef REQUIRE
    return DSQ_OK;
}

/* The JSON fields, in one table so writing and reading cannot drift apart. */
typedef enum { F_INT, F_DOUBLE, F_BOOL } field_kind;
typedef struct {
    const char *key;
    field_kind kind;
    size_t offset;
} config_field;

#define FIELD(k, kind, member) {k, kind, offsetof(dsq_model_config, member)}
static const config_field fields[] = {
    FIELD("vocab_size", F_INT, vocab_size),
    FIELD("hidden_size", F_INT, hidden_size),
    FIELD("n_layers", F_INT, n_layers),
    FIELD("n_heads", F_INT, n_heads),
    FIELD("n_kv_heads", F_INT, n_kv_heads),
    FIELD("head_dim", F_INT, head_dim),
    FIELD("q_lora_rank", F_INT, q_lora_rank),
    FIELD("kv_lora_rank", F_INT, kv_lora_rank),
    FIELD("qk_nope_head_dim", F_INT, qk_nope_head_dim),
    FIELD("qk_rope_head_dim", F_INT, qk_rope_head_dim),
    FIELD("v_head_dim", F_INT, v_head_dim),
    FIELD("intermediate_size", F_INT, intermediate_size),
    FIELD("moe_intermediate_size", F_INT, moe_intermediate_size),
    FIELD("n_routed_experts", F_INT, n_routed_experts),
    FIELD("n_shared_experts", F_INT, n_shared_experts),
    FIELD("n_experts_per_tok", F_INT, n_experts_per_tok),
    FIELD("first_k_dense_replace", F_INT, first_k_dense_replace),
    FIELD("moe_layer_freq", F_INT, moe_layer_freq),
    FIELD("n_group", F_INT, n_group),
    FIELD("topk_group", F_INT, topk_group),
    FIELD("routed_scaling_factor", F_DOUBLE, routed_scaling_factor),
    FIELD("norm_topk_prob", F_BOOL, norm_topk_prob),
    FIELD("rms_norm_eps", F_DOUBLE, rms_norm_eps),
    FIELD("rope_theta", F_DOUBLE, rope_theta),
    FIELD("max_position_embeddings", F_INT, max_position_embeddings),
    FIELD("rope_yarn", F_BOOL, rope_yarn),
    FIELD("yarn_factor", F_DOUBLE, yarn_factor),
    FIELD("yarn_original_max_position", F_INT, yarn_original_max_position),
    FIELD("yarn_beta_fast", F_DOUBLE, yarn_beta_fast),
    FIELD("yarn_beta_slow", F_DOUBLE, yarn_beta_slow),
    FIELD("yarn_mscale", F_DOUBLE, yarn_mscale),
    FIELD("yarn_mscale_all_dim", F_DOUBLE, yarn_mscale_all_dim),
    FIELD("bos_token_id", F_INT, bos_token_id),
    FIELD("eos_token_id", F_INT, eos_token_id),
};

json_t *model_config_to_json(const dsq_model_config *c)
{
    json_t *o = json_object();
    json_object_set_new(o, "family", json_string(model_family_name(c->family)));
    json_object_set_new(o, "attention", json_string(c->family == DSQ_FAMILY_V1 ? "mha" : "mla"));
    json_object_set_new(o, "rope_style",
                        json_string(c->family == DSQ_FAMILY_V1 ? "neox" : "interleaved"));
    json_object_set_new(o, "topk_method", json_string(c->topk_method == DSQ_TOPK_GREEDY
                                                          ? "greedy"
                                                          : "group_limited_greedy"));
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        const char *p = (const char *)c + fields[i].offset;
        json_t *v = fields[i].kind == F_INT      ? json_integer(*(const int *)p)
                    : fields[i].kind == F_DOUBLE ? json_real(*(const double *)p)
                                                 : json_boolean(*(const bool *)p);
        json_object_set_new(o, fields[i].key, v);
    }
    return o;
}

int model_config_from_json(dsq_model_config *c, const json_t *obj, const char *where,
                           dsq_error *err)
{
    memset(c, 0, sizeof *c);
    if (!json_is_object(obj))
        return dsq_fail(err, DSQ_EINPUT, "%s: metadata has no \"model\" object", where);
    const char *family = json_string_value(json_object_get(obj, "family"));
    if (family && strcmp(family, "deepseek-moe") == 0)
        c->family = DSQ_FAMILY_V1;
    else if (family && strcmp(family, "deepseek-v2") == 0)
        c->family = DSQ_FAMILY_V2;
    else
        return dsq_fail(err, DSQ_EINPUT, "%s: model family '%s' unknown to this dsq", where,
                        family ? family : "(missing)");
    const char *topk = json_string_value(json_object_get(obj, "topk_method"));
    if (topk && strcmp(topk, "greedy") == 0)
        c->topk_method = DSQ_TOPK_GREEDY;
    else if (topk && strcmp(topk, "group_limited_greedy") == 0)
        c->topk_method = DSQ_TOPK_GROUP_LIMITED;
    else
        return dsq_fail(err, DSQ_EINPUT, "%s: model.topk_method '%s' unknown", where,
                        topk ? topk : "(missing)");
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        const json_t *v = json_object_get(obj, fields[i].key);
        char *p = (char *)c + fields[i].offset;
        if (fields[i].kind == F_INT && json_is_integer(v) && json_integer_value(v) >= -1 &&
            json_integer_value(v) <= (1 << 30))
            *(int *)p = (int)json_integer_value(v);
        else if (fields[i].kind == F_DOUBLE && json_is_number(v))
            *(double *)p = json_number_value(v);
        else if (fields[i].kind == F_BOOL && json_is_boolean(v))
            *(bool *)p = json_is_true(v);
        else
            return dsq_fail(err, DSQ_EINPUT, "%s: model.%s missing or of the wrong type", where,
                            fields[i].key);
    }
    return model_config_check(c, where, err);
}
