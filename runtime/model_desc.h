/* A loaded model as a backend sees it: dimensions, numerics and views of the weights inside the
 * mapped file, in plain C types, so a backend (cuda/) builds against runtime/ alone. Built from a
 * model by engine_open; the views point into the mapping, nothing is copied. */
#ifndef DSQ_MODEL_DESC_H
#define DSQ_MODEL_DESC_H

#include <stdbool.h>
#include <stdint.h>

#include "moe_route.h"

typedef struct {
    const void *data; /* inside the mapping */
    uint32_t type;    /* enum dsq_type */
    int rows, cols;   /* out, in features; rows contiguous */
    uint32_t group;   /* quantization group along a row, 0 for float types */
} md_matrix;

typedef struct {
    md_matrix gate, up, down; /* (inter, hidden), (inter, hidden), (hidden, inter) */
} md_ffn;

typedef struct {
    const float *attn_norm, *ffn_norm, *q_a_norm, *kv_a_norm; /* f32 vectors in the mapping */
    md_matrix wq, wk, wv;           /* MHA; wq also MLA without q compression */
    md_matrix q_a, q_b, kv_a, kv_b; /* MLA */
    md_matrix wo;
    bool moe, has_shared;
    md_ffn dense, shared;
    md_matrix router;
    md_ffn *experts; /* [n_experts] */
} md_layer;

typedef struct {
    bool mla; /* DeepSeek-V2 attention; else MHA with NeoX RoPE (DeepSeek-MoE) */
    int n_layers, hidden, vocab;
    int n_heads, n_kv_heads, head_dim;                           /* MHA */
    int q_lora_rank, kv_lora_rank, qk_nope, qk_rope, v_head_dim; /* MLA */
    moe_route_params route;
    float rms_eps, softmax_scale;
    int rope_dim, rope_n_pos; /* rotated dims per head; positions tabulated (= ctx) */
    bool rope_interleaved;
    const float *rope_cos, *rope_sin; /* [rope_n_pos][rope_dim / 2] */
    const uint8_t *map;               /* the mapped file; every weight lies inside */
    uint64_t map_size;
    uint64_t tensor_align; /* every tensor starts at a multiple of this; the bytes
                            * up to the next multiple after it are padding */
    md_matrix embed, output;
    const float *norm;
    md_layer *layers; /* [n_layers] */
} model_desc;

#endif
