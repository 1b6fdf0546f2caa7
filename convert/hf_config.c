/* Hugging Face config.json -> dsq_model_config, with every key type-checked and every
 * unsupported variant refused by name. */
#include "hf_config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

#include "input_file.h"

#include "json_error.h"

typedef struct {
    const json_t *root;
    const char *where;
    dsq_error *err;
} reader;

/* An integer key: absent or null gives def (or fails when required). */
static int get_int(reader *r, const char *key, int def, int required, int *out)
{
    const json_t *v = json_object_get(r->root, key);
    if (!v || json_is_null(v)) {
        if (required)
            return dsq_fail(r->err, DSQ_EINPUT, "%s: required key \"%s\" is missing", r->where,
                            key);
        *out = def;
        return DSQ_OK;
    }
    /* range first: casting a double outside the integer's range is undefined */
    double value = json_is_number(v) ? json_number_value(v) : -2;
    if (!(value >= 0 && value <= (double)(1 << 30)) || value != (double)(int)value)
        return dsq_fail(r->err, DSQ_EINPUT, "%s: \"%s\" must be a non-negative integer (at most %d)",
                        r->where, key, 1 << 30);
    *out = (int)value;
    return DSQ_OK;
}

static int get_number(reader *r, const json_t *obj, const char *key, double def, double *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return DSQ_OK;
    }
    if (!json_is_number(v))
        return dsq_fail(r->err, DSQ_EINPUT, "%s: \"%s\" must be a number", r->where, key);
    *out = json_number_value(v);
    return DSQ_OK;
}

static int get_bool(reader *r, const char *key, bool def, bool *out)
{
    const json_t *v = json_object_get(r->root, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return DSQ_OK;
    }
    if (!json_is_boolean(v))
        return dsq_fail(r->err, DSQ_EINPUT, "%s: \"%s\" must be true or false", r->where, key);
    *out = json_is_true(v);
    return DSQ_OK;
}

/* A string key; absent or null gives def. */
static int get_string(reader *r, const char *key, const char *def, const char **out)
{
    const json_t *v = json_object_get(r->root, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return DSQ_OK;
    }
    if (!json_is_string(v))
        return dsq_fail(r->err, DSQ_EINPUT, "%s: \"%s\" must be a string", r->where, key);
    *out = json_string_value(v);
    return DSQ_OK;
}

/* A token id that may be written as a list (first entry counts). */
static int get_token_id(reader *r, const char *key, int def, int *out)
{
    const json_t *v = json_object_get(r->root, key);
    if (json_is_array(v) && json_array_size(v) > 0)
        v = json_array_get(v, 0);
    if (!v || json_is_null(v)) {
        *out = def;
        return DSQ_OK;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > (1 << 30))
        return dsq_fail(r->err, DSQ_EINPUT, "%s: \"%s\" must be a token id", r->where, key);
    *out = (int)json_integer_value(v);
    return DSQ_OK;
}

/* rope_scaling (published) or rope_parameters (transformers 5): none or YaRN. */
static int parse_rope(reader *r, dsq_model_config *c)
{
    const json_t *scaling = json_object_get(r->root, "rope_scaling");
    const json_t *params = json_object_get(r->root, "rope_parameters");
    const json_t *src = scaling && !json_is_null(scaling) ? scaling : params;
    int rc = get_number(r, r->root, "rope_theta", 10000.0, &c->rope_theta);
    if (rc)
        return rc;
    if (!src || json_is_null(src))
        return DSQ_OK;
    if (!json_is_object(src))
        return dsq_fail(r->err, DSQ_EINPUT, "%s: \"%s\" must be an object or null", r->where,
                        src == scaling ? "rope_scaling" : "rope_parameters");
    if (json_object_get(src, "rope_theta"))
        if ((rc = get_number(r, src, "rope_theta", c->rope_theta, &c->rope_theta)))
            return rc;
    const char *type = json_string_value(json_object_get(src, "rope_type"));
    if (!type)
        type = json_string_value(json_object_get(src, "type"));
    if (!type || strcmp(type, "default") == 0)
        return DSQ_OK;
    if (strcmp(type, "yarn") != 0 || c->family != DSQ_FAMILY_V2)
        return dsq_fail(r->err, DSQ_EINPUT,
                        "%s: rope scaling \"%s\" is not supported for this model type (DeepSeek-V2 "
                        "uses yarn, DeepSeek-MoE none)",
                        r->where, type);
    double orig = 0;
    c->rope_yarn = true;
    if ((rc = get_number(r, src, "factor", 1.0, &c->yarn_factor)) ||
        (rc = get_number(r, src, "original_max_position_embeddings", 0, &orig)) ||
        (rc = get_number(r, src, "beta_fast", 32.0, &c->yarn_beta_fast)) ||
        (rc = get_number(r, src, "beta_slow", 1.0, &c->yarn_beta_slow)) ||
        (rc = get_number(r, src, "mscale", 1.0, &c->yarn_mscale)) ||
        (rc = get_number(r, src, "mscale_all_dim", 0.0, &c->yarn_mscale_all_dim)))
        return rc;
    if (!(orig >= 1 && orig <= (1 << 30)) || orig != (double)(int)orig)
        return dsq_fail(r->err, DSQ_EINPUT,
                        "%s: rope yarn needs original_max_position_embeddings, an integer from 1 "
                        "to %d",
                        r->where, 1 << 30);
    c->yarn_original_max_position = (int)orig;
    return DSQ_OK;
}

/* Keys whose values dsq cannot honour: refuse rather than silently compute something else. */
static int refuse_unsupported(reader *r, const dsq_model_config *c)
{
    const char *act, *scoring;
    bool attention_bias, mlp_bias, tied;
    int rc;
    if ((rc = get_string(r, "hidden_act", "silu", &act)) ||
        (rc = get_string(r, "scoring_func", "softmax", &scoring)) ||
        (rc = get_bool(r, "attention_bias", false, &attention_bias)) ||
        (rc = get_bool(r, "mlp_bias", false, &mlp_bias)) ||
        (rc = get_bool(r, "tie_word_embeddings", false, &tied)))
        return rc;
    if (strcmp(act, "silu") != 0)
        return dsq_fail(r->err, DSQ_EINPUT, "%s: hidden_act \"%s\" unsupported (only silu)",
                        r->where, act);
    if (strcmp(scoring, "softmax") != 0)
        return dsq_fail(r->err, DSQ_EINPUT, "%s: scoring_func \"%s\" unsupported (only softmax)",
                        r->where, scoring);
    if (attention_bias || mlp_bias)
        return dsq_fail(r->err, DSQ_EINPUT, "%s: attention_bias/mlp_bias true is unsupported",
                        r->where);
    if (tied)
        return dsq_fail(r->err, DSQ_EINPUT,
                        "%s: tie_word_embeddings true is unsupported (DeepSeek MoE models have a "
                        "separate lm_head)",
                        r->where);
    const json_t *q = json_object_get(r->root, "quantization_config");
    if (q && !json_is_null(q))
        return dsq_fail(r->err, DSQ_EINPUT,
                        "%s: checkpoint is already quantized (quantization_config); convert the "
                        "original bf16 checkpoint",
                        r->where);
    int pretraining_tp;
    if ((rc = get_int(r, "pretraining_tp", 1, 0, &pretraining_tp)))
        return rc;
    if (pretraining_tp > 1)
        return dsq_fail(r->err, DSQ_EINPUT, "%s: pretraining_tp %d unsupported (only 1)", r->where,
                        pretraining_tp);
    (void)c;
    return DSQ_OK;
}

static int parse_family(reader *r, dsq_model_config *c)
{
    const char *type;
    int rc = get_string(r, "model_type", NULL, &type);
    if (rc)
        return rc;
    if (!type)
        return dsq_fail(r->err, DSQ_EINPUT, "%s: no \"model_type\" key", r->where);
    if (strcmp(type, "deepseek") == 0)
        c->family = DSQ_FAMILY_V1;
    else if (strcmp(type, "deepseek_v2") == 0)
        c->family = DSQ_FAMILY_V2;
    else
        return dsq_fail(r->err, DSQ_EINPUT,
                        "%s: model_type \"%s\" is not supported; dsq converts \"deepseek\" "
                        "(DeepSeek-MoE) and \"deepseek_v2\" (DeepSeek-V2, V2-Lite)",
                        r->where, type);
    return DSQ_OK;
}

static int parse_attention(reader *r, dsq_model_config *c)
{
    int rc;
    if ((rc = get_int(r, "num_key_value_heads", c->n_heads, 0, &c->n_kv_heads)))
        return rc;
    if (c->family == DSQ_FAMILY_V1) {
        if (c->n_heads <= 0 || c->hidden_size % c->n_heads != 0)
            return dsq_fail(r->err, DSQ_EINPUT,
                            "%s: hidden_size %d is not a multiple of num_attention_heads %d",
                            r->where, c->hidden_size, c->n_heads);
        int explicit_dim;
        c->head_dim = c->hidden_size / c->n_heads;
        if ((rc = get_int(r, "head_dim", c->head_dim, 0, &explicit_dim)))
            return rc;
        if (explicit_dim != c->head_dim)
            return dsq_fail(r->err, DSQ_EINPUT, "%s: head_dim %d differs from hidden/heads = %d",
                            r->where, explicit_dim, c->head_dim);
        return DSQ_OK;
    }
    /* MLA; transformers 5 writes head_dim = qk_rope_head_dim, which carries nothing new */
    if ((rc = get_int(r, "q_lora_rank", 0, 0, &c->q_lora_rank)) ||
        (rc = get_int(r, "kv_lora_rank", 0, 1, &c->kv_lora_rank)) ||
        (rc = get_int(r, "qk_nope_head_dim", 0, 1, &c->qk_nope_head_dim)) ||
        (rc = get_int(r, "qk_rope_head_dim", 0, 1, &c->qk_rope_head_dim)) ||
        (rc = get_int(r, "v_head_dim", 0, 1, &c->v_head_dim)))
        return rc;
    c->head_dim = c->qk_nope_head_dim + c->qk_rope_head_dim;
    if (c->n_kv_heads != c->n_heads)
        return dsq_fail(r->err, DSQ_EINPUT,
                        "%s: num_key_value_heads %d must equal num_attention_heads %d for MLA",
                        r->where, c->n_kv_heads, c->n_heads);
    return DSQ_OK;
}

static int parse_moe(reader *r, dsq_model_config *c)
{
    int rc;
    if ((rc = get_int(r, "moe_intermediate_size", 0, 1, &c->moe_intermediate_size)) ||
        (rc = get_int(r, "n_routed_experts", 0, 1, &c->n_routed_experts)) ||
        (rc = get_int(r, "n_shared_experts", 0, 0, &c->n_shared_experts)) ||
        (rc = get_int(r, "num_experts_per_tok", 0, 1, &c->n_experts_per_tok)) ||
        (rc = get_int(r, "first_k_dense_replace", 0, 0, &c->first_k_dense_replace)) ||
        (rc = get_int(r, "moe_layer_freq", 1, 0, &c->moe_layer_freq)) ||
        (rc = get_bool(r, "norm_topk_prob", false, &c->norm_topk_prob)))
        return rc;
    const char *method;
    if ((rc = get_string(r, "topk_method", "greedy", &method)))
        return rc;
    if (strcmp(method, "greedy") == 0)
        c->topk_method = DSQ_TOPK_GREEDY;
    else if (strcmp(method, "group_limited_greedy") == 0 && c->family == DSQ_FAMILY_V2)
        c->topk_method = DSQ_TOPK_GROUP_LIMITED;
    else
        return dsq_fail(r->err, DSQ_EINPUT,
                        "%s: topk_method \"%s\" unsupported (greedy, group_limited_greedy)",
                        r->where, method);
    if ((rc = get_int(r, "n_group", 1, 0, &c->n_group)) ||
        (rc = get_int(r, "topk_group", 1, 0, &c->topk_group)) ||
        (rc = get_number(r, r->root, "routed_scaling_factor", 1.0, &c->routed_scaling_factor)))
        return rc;
    return DSQ_OK;
}

int hf_config_parse(dsq_model_config *c, const json_t *root, const char *where, dsq_error *err)
{
    memset(c, 0, sizeof *c);
    reader r = {root, where, err};
    if (!json_is_object(root))
        return dsq_fail(err, DSQ_EINPUT, "%s: not a JSON object", where);
    int rc;
    if ((rc = parse_family(&r, c)) ||
        (rc = get_int(&r, "vocab_size", 0, 1, &c->vocab_size)) ||
        (rc = get_int(&r, "hidden_size", 0, 1, &c->hidden_size)) ||
        (rc = get_int(&r, "num_hidden_layers", 0, 1, &c->n_layers)) ||
        (rc = get_int(&r, "num_attention_heads", 0, 1, &c->n_heads)) ||
        (rc = get_int(&r, "intermediate_size", 0, 1, &c->intermediate_size)) ||
        (rc = get_int(&r, "max_position_embeddings", 4096, 0, &c->max_position_embeddings)) ||
        (rc = get_number(&r, root, "rms_norm_eps", 1e-6, &c->rms_norm_eps)) ||
        (rc = get_token_id(&r, "bos_token_id", 100000, &c->bos_token_id)) ||
        (rc = get_token_id(&r, "eos_token_id", 100001, &c->eos_token_id)) ||
        (rc = parse_attention(&r, c)) || (rc = parse_moe(&r, c)) || (rc = parse_rope(&r, c)) ||
        (rc = refuse_unsupported(&r, c)))
        return rc;
    return model_config_check(c, where, err);
}

int hf_config_load(dsq_model_config *c, char *source_dtype, size_t dtype_cap, const char *path,
                   dsq_error *err)
{
    json_error_t jerr;
    char *text;
    size_t len;
    int read_rc = input_read_all(path, INPUT_CAP_CONFIG, "config", 0, &text, &len, err);
    if (read_rc)
        return read_rc;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
    if (!root && dsq_json_out_of_memory(&jerr))
        return dsq_fail(err, DSQ_ERESOURCE, "%s: out of memory reading the config", path);
    if (!root)
        return dsq_fail(err, DSQ_EINPUT, "%s: cannot read config: %s (line %d, column %d)", path,
                        jerr.text, jerr.line, jerr.column);
    int rc = hf_config_parse(c, root, path, err);
    const char *dtype = json_string_value(json_object_get(root, "torch_dtype"));
    if (!dtype)
        dtype = json_string_value(json_object_get(root, "dtype"));
    snprintf(source_dtype, dtype_cap, "%s", dtype ? dtype : "");
    json_decref(root);
    return rc;
}
