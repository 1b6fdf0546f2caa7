/* The normalized model config: every dimension and numeric choice of a DeepSeek MoE model, read
 * from a Hugging Face config.json by hf_config.c, stored in the .dsq metadata as "model", and
 * read back by the runtime. */
#ifndef DSQ_MODEL_CONFIG_H
#define DSQ_MODEL_CONFIG_H

#include <jansson.h>
#include <stdbool.h>

#include "error.h"

typedef enum {
    DSQ_FAMILY_V1 = 1, /* DeepSeek-MoE: MHA, NeoX RoPE (model_type "deepseek") */
    DSQ_FAMILY_V2 = 2, /* DeepSeek-V2 / V2-Lite: MLA, interleaved RoPE (model_type "deepseek_v2") */
} dsq_family;

typedef enum {
    DSQ_TOPK_GREEDY = 0,
    DSQ_TOPK_GROUP_LIMITED = 1, /* best topk_group of n_group groups by max score, then top-k */
} dsq_topk_method;

typedef struct {
    dsq_family family;
    int vocab_size;
    int hidden_size;
    int n_layers;
    int n_heads;
    int n_kv_heads;
    int head_dim; /* V1 attention head size; V2 uses the MLA dims below */

    /* MLA (V2 only) */
    int q_lora_rank; /* 0: q_proj without compression (V2-Lite) */
    int kv_lora_rank;
    int qk_nope_head_dim;
    int qk_rope_head_dim;
    int v_head_dim;

    /* FFN and routing */
    int intermediate_size; /* dense layers */
    int moe_intermediate_size;
    int n_routed_experts;
    int n_shared_experts;
    int n_experts_per_tok;
    int first_k_dense_replace;
    int moe_layer_freq;
    dsq_topk_method topk_method;
    int n_group;
    int topk_group;
    double routed_scaling_factor;
    bool norm_topk_prob;

    double rms_norm_eps;
    double rope_theta;
    int max_position_embeddings;
    bool rope_yarn; /* YaRN scaling (V2); the fields below are meaningful only then */
    double yarn_factor;
    int yarn_original_max_position;
    double yarn_beta_fast;
    double yarn_beta_slow;
    double yarn_mscale;
    double yarn_mscale_all_dim;

    int bos_token_id;
    int eos_token_id;
} dsq_model_config;

const char *model_family_name(dsq_family f);

/* True if layer i is a mixture-of-experts layer. */
bool model_layer_is_moe(const dsq_model_config *c, int layer);

/* Checks internal consistency (positive dims, top-k <= experts, group rules); names `where`. */
int model_config_check(const dsq_model_config *c, const char *where, dsq_error *err);

/* To and from the metadata's "model" object. */
json_t *model_config_to_json(const dsq_model_config *c);
int model_config_from_json(dsq_model_config *c, const json_t *obj, const char *where,
                           dsq_error *err);

#endif
