/* Typed views of a model's weights inside the mapped .dsq file: one struct per layer, each
 * matrix a pointer plus its type and shape. Nothing is copied; loading is the mmap. */
#ifndef DSQ_WEIGHTS_H
#define DSQ_WEIGHTS_H

#include <stdbool.h>
#include <stdint.h>

#include "model_file.h"

typedef struct {
    const void *data;
    uint32_t type; /* enum dsq_type */
    int rows;      /* out_features */
    int cols;      /* in_features; rows are contiguous */
    uint32_t group; /* quantization group along a row (0 for float types) */
    const void *packed; /* q8/q4: the CPU's row-interleaved copy (quant/qpack.h), or NULL */
} dsq_matrix;

typedef struct {
    dsq_matrix gate; /* (inter, hidden) */
    dsq_matrix up;   /* (inter, hidden) */
    dsq_matrix down; /* (hidden, inter) */
} ffn_weights;

typedef struct {
    const float *attn_norm; /* (hidden) */
    const float *ffn_norm;  /* (hidden) */
    /* MHA: (heads * head_dim, hidden); MLA without q compression: (heads * (nope + rope), hidden) */
    dsq_matrix wq;
    /* DeepSeek-MoE (MHA) */
    dsq_matrix wk; /* (kv_heads * head_dim, hidden) */
    dsq_matrix wv; /* (kv_heads * head_dim, hidden) */
    /* DeepSeek-V2 (MLA) */
    dsq_matrix q_a;           /* (q_lora_rank, hidden), with q compression */
    const float *q_a_norm;    /* (q_lora_rank) */
    dsq_matrix q_b;           /* (heads * (nope + rope), q_lora_rank) */
    dsq_matrix kv_a;          /* (kv_lora_rank + rope, hidden) */
    const float *kv_a_norm;   /* (kv_lora_rank) */
    dsq_matrix kv_b;          /* (heads * (nope + v), kv_lora_rank): per head W_UK then W_UV */
    dsq_matrix wo;            /* (hidden, heads * v_head_dim) */
    bool moe;
    ffn_weights dense;        /* dense layers */
    dsq_matrix router;        /* (n_routed_experts, hidden) */
    bool has_shared;
    ffn_weights shared;       /* shared experts fused: (n_shared * moe_inter) wide */
    ffn_weights *experts;     /* [n_routed_experts] */
} layer_weights;

typedef struct {
    dsq_matrix embed;  /* (vocab, hidden) */
    const float *norm; /* (hidden) */
    dsq_matrix output; /* (vocab, hidden) */
    layer_weights *layers;
    int n_layers;
    void *packed_arena; /* the packed copies' memory (runtime/cpu_pack.c), or NULL */
    uint64_t packed_bytes;
    uint64_t unpacked_bytes; /* copies not made: the memory was not available */
} model_weights;

/* Stored bytes of a matrix (0 for one the model lacks). */
uint64_t weights_matrix_bytes(const dsq_matrix *w);

/* Builds the views; norms must be stored as f32 (the file says otherwise: error). */
int weights_build(model_weights *w, const model_file *m, dsq_error *err);
void weights_free(model_weights *w);

#endif
