/* Tensor plan per family: dsq names, Hugging Face names and shapes. */
#include "tensor_map.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static const char *const class_names[TC_COUNT] = {
    [TC_EMBEDDING] = "embedding",       [TC_OUTPUT] = "output",
    [TC_NORM] = "norm",                 [TC_ATTENTION] = "attention",
    [TC_DENSE_FFN] = "dense_ffn",       [TC_ROUTER] = "router",
    [TC_SHARED_EXPERT] = "shared_expert", [TC_ROUTED_EXPERT] = "routed_expert",
};

const char *tensor_class_name(tensor_class c)
{
    return c < TC_COUNT ? class_names[c] : "unknown";
}

typedef struct {
    planned_tensor *items;
    int count, cap;
    int layer, expert;
} plan_builder;

/* Appends one tensor; name and hf_name are printf formats taking the layer (and expert). */
static int add(plan_builder *b, tensor_class cls, uint64_t rows, uint64_t cols, const char *name,
               const char *hf_name)
{
    if (b->count == b->cap) {
        int cap = b->cap ? 2 * b->cap : 64;
        planned_tensor *p = realloc(b->items, (size_t)cap * sizeof *p);
        if (!p)
            return -1;
        b->items = p;
        b->cap = cap;
    }
    planned_tensor *t = &b->items[b->count++];
    snprintf(t->name, sizeof t->name, name, b->layer, b->expert);
    snprintf(t->hf_name, sizeof t->hf_name, hf_name, b->layer, b->expert);
    t->cls = cls;
    t->layer = b->layer;
    t->expert = b->expert;
    t->ndim = cols ? 2 : 1;
    t->shape[0] = rows;
    t->shape[1] = cols;
    return 0;
}

static int add_attention(plan_builder *b, const dsq_model_config *c)
{
    const uint64_t h = (uint64_t)c->hidden_size, nh = (uint64_t)c->n_heads;
    int rc = 0;
    if (c->family == DSQ_FAMILY_V1) {
        const uint64_t hd = (uint64_t)c->head_dim, kv = (uint64_t)c->n_kv_heads * hd;
        rc |= add(b, TC_ATTENTION, nh * hd, h, "layers.%d.attn.q",
                  "model.layers.%d.self_attn.q_proj.weight");
        rc |= add(b, TC_ATTENTION, kv, h, "layers.%d.attn.k",
                  "model.layers.%d.self_attn.k_proj.weight");
        rc |= add(b, TC_ATTENTION, kv, h, "layers.%d.attn.v",
                  "model.layers.%d.self_attn.v_proj.weight");
        rc |= add(b, TC_ATTENTION, h, nh * hd, "layers.%d.attn.o",
                  "model.layers.%d.self_attn.o_proj.weight");
        return rc;
    }
    const uint64_t qk = (uint64_t)(c->qk_nope_head_dim + c->qk_rope_head_dim);
    const uint64_t kvr = (uint64_t)c->kv_lora_rank, rope = (uint64_t)c->qk_rope_head_dim;
    if (c->q_lora_rank == 0) {
        rc |= add(b, TC_ATTENTION, nh * qk, h, "layers.%d.attn.q",
                  "model.layers.%d.self_attn.q_proj.weight");
    } else {
        const uint64_t qr = (uint64_t)c->q_lora_rank;
        rc |= add(b, TC_ATTENTION, qr, h, "layers.%d.attn.q_a",
                  "model.layers.%d.self_attn.q_a_proj.weight");
        rc |= add(b, TC_NORM, qr, 0, "layers.%d.attn.q_a_norm",
                  "model.layers.%d.self_attn.q_a_layernorm.weight");
        rc |= add(b, TC_ATTENTION, nh * qk, qr, "layers.%d.attn.q_b",
                  "model.layers.%d.self_attn.q_b_proj.weight");
    }
    rc |= add(b, TC_ATTENTION, kvr + rope, h, "layers.%d.attn.kv_a",
              "model.layers.%d.self_attn.kv_a_proj_with_mqa.weight");
    rc |= add(b, TC_NORM, kvr, 0, "layers.%d.attn.kv_a_norm",
              "model.layers.%d.self_attn.kv_a_layernorm.weight");
    rc |= add(b, TC_ATTENTION, nh * (uint64_t)(c->qk_nope_head_dim + c->v_head_dim), kvr,
              "layers.%d.attn.kv_b", "model.layers.%d.self_attn.kv_b_proj.weight");
    rc |= add(b, TC_ATTENTION, h, nh * (uint64_t)c->v_head_dim, "layers.%d.attn.o",
              "model.layers.%d.self_attn.o_proj.weight");
    return rc;
}

static int add_ffn(plan_builder *b, const dsq_model_config *c, int layer)
{
    const uint64_t h = (uint64_t)c->hidden_size;
    int rc = 0;
    if (!model_layer_is_moe(c, layer)) {
        const uint64_t f = (uint64_t)c->intermediate_size;
        rc |= add(b, TC_DENSE_FFN, f, h, "layers.%d.mlp.gate", "model.layers.%d.mlp.gate_proj.weight");
        rc |= add(b, TC_DENSE_FFN, f, h, "layers.%d.mlp.up", "model.layers.%d.mlp.up_proj.weight");
        rc |= add(b, TC_DENSE_FFN, h, f, "layers.%d.mlp.down", "model.layers.%d.mlp.down_proj.weight");
        return rc;
    }
    const uint64_t f = (uint64_t)c->moe_intermediate_size;
    rc |= add(b, TC_ROUTER, (uint64_t)c->n_routed_experts, h, "layers.%d.mlp.router",
              "model.layers.%d.mlp.gate.weight");
    if (c->n_shared_experts > 0) {
        const uint64_t fs = f * (uint64_t)c->n_shared_experts;
        rc |= add(b, TC_SHARED_EXPERT, fs, h, "layers.%d.mlp.shared.gate",
                  "model.layers.%d.mlp.shared_experts.gate_proj.weight");
        rc |= add(b, TC_SHARED_EXPERT, fs, h, "layers.%d.mlp.shared.up",
                  "model.layers.%d.mlp.shared_experts.up_proj.weight");
        rc |= add(b, TC_SHARED_EXPERT, h, fs, "layers.%d.mlp.shared.down",
                  "model.layers.%d.mlp.shared_experts.down_proj.weight");
    }
    for (b->expert = 0; b->expert < c->n_routed_experts; b->expert++) {
        rc |= add(b, TC_ROUTED_EXPERT, f, h, "layers.%d.mlp.experts.%d.gate",
                  "model.layers.%d.mlp.experts.%d.gate_proj.weight");
        rc |= add(b, TC_ROUTED_EXPERT, f, h, "layers.%d.mlp.experts.%d.up",
                  "model.layers.%d.mlp.experts.%d.up_proj.weight");
        rc |= add(b, TC_ROUTED_EXPERT, h, f, "layers.%d.mlp.experts.%d.down",
                  "model.layers.%d.mlp.experts.%d.down_proj.weight");
    }
    b->expert = -1;
    return rc;
}

uint64_t tensor_plan_count(const dsq_model_config *c)
{
    const uint64_t attention = c->family == DSQ_FAMILY_V1 ? 4 : (c->q_lora_rank ? 3 : 1) + 4;
    const uint64_t moe = 1 + (c->n_shared_experts > 0 ? 3 : 0) + 3 * (uint64_t)c->n_routed_experts;
    uint64_t n = 3; /* embedding, final norm, output */
    for (int l = 0; l < c->n_layers; l++)
        n += 2 + attention + (model_layer_is_moe(c, l) ? moe : 3);
    return n;
}

int tensor_plan_build(const dsq_model_config *c, planned_tensor **out, int *count, dsq_error *err)
{
    plan_builder b = {.layer = -1, .expert = -1};
    const uint64_t h = (uint64_t)c->hidden_size, v = (uint64_t)c->vocab_size;
    int rc = add(&b, TC_EMBEDDING, v, h, "embed", "model.embed_tokens.weight");
    for (int l = 0; l < c->n_layers; l++) {
        b.layer = l;
        rc |= add(&b, TC_NORM, h, 0, "layers.%d.attn_norm",
                  "model.layers.%d.input_layernorm.weight");
        rc |= add_attention(&b, c);
        rc |= add(&b, TC_NORM, h, 0, "layers.%d.ffn_norm",
                  "model.layers.%d.post_attention_layernorm.weight");
        rc |= add_ffn(&b, c, l);
    }
    b.layer = -1;
    rc |= add(&b, TC_NORM, h, 0, "norm", "model.norm.weight");
    rc |= add(&b, TC_OUTPUT, v, h, "output", "lm_head.weight");
    if (rc) {
        free(b.items);
        return dsq_fail(err, DSQ_ERESOURCE, "out of memory planning tensors");
    }
    *out = b.items;
    *count = b.count;
    return DSQ_OK;
}

void tensor_plan_params(const dsq_model_config *c, const planned_tensor *plan, int count,
                        uint64_t *total, uint64_t *active)
{
    uint64_t all = 0, routed = 0;
    for (int i = 0; i < count; i++) {
        uint64_t n = plan[i].shape[0] * (plan[i].ndim == 2 ? plan[i].shape[1] : 1);
        all += n;
        if (plan[i].cls == TC_ROUTED_EXPERT)
            routed += n;
    }
    *total = all;
    *active = all - routed;
    if (c->n_routed_experts > 0)
        *active += routed / (uint64_t)c->n_routed_experts * (uint64_t)c->n_experts_per_tok;
}
