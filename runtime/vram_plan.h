/* Device memory the CUDA engine takes for a model at a context size: the file's bytes (uploaded
 * whole), the fp32 KV cache, and the work buffers of one pass (up to VRAM_MAX_BATCH tokens,
 * fewer when the attention scores of a long context would be large). Shared by the engine,
 * which checks it against --vram before allocating, and `dsq info`, which prints it. */
#ifndef DSQ_VRAM_PLAN_H
#define DSQ_VRAM_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VRAM_MAX_BATCH 64               /* tokens per device pass */
#define VRAM_SCORE_BYTES (256ull << 20) /* cap on the attention score scratch */
#define VRAM_MATRIX_BYTES 24 /* the device's view of one expert matrix (cuda/dmatrix.cuh) */
/* Scratch the device sampler's sort may take (CUB's radix sort of vocab 64-bit keys wants about
 * one more copy of them and its histograms); where CUB asks for more, the engine samples on
 * the host instead. */
#define VRAM_SAMPLE_SCRATCH(vocab) ((uint64_t)(vocab)*16 + (1ull << 20))

typedef struct {
    bool mla;
    int n_layers, hidden, vocab, n_heads, n_kv_heads, head_dim;
    int q_lora_rank, kv_lora_rank, qk_nope, qk_rope, v_head_dim;
    int n_experts, k;
    int ffn_inter;    /* widest dense or shared-expert FFN */
    int expert_inter; /* routed expert width, 0 without MoE layers */
    int rope_dim;
    uint64_t file_bytes;
    int n_seq; /* sequences with a cache each (decoded together) */
} vram_model;

/* Sizes in floats (ints for ids), and the byte totals. */
typedef struct {
    size_t cache_a, cache_b, q, qa, kv, ckv, attn, lat, scores, ffn, h, ye, router, ids, logits;
    size_t table_bytes;  /* expert tables and RoPE tables */
    size_t sample_bytes; /* the device sampler: keys, sort scratch, random state, and the
                          * penalty's history (ctx + 1 tokens) with its count, token and flag */
    int batch;
    uint64_t weights, cache_bytes, work_bytes, total;
} vram_plan;

void vram_plan_make(vram_plan *p, const vram_model *m, int ctx);

/* Device bytes an engine that leaves routed experts in host memory adds to its plan: the host's
 * sums of a pass, one row per token. */
static inline uint64_t vram_host_result_bytes(int hidden)
{
    return (uint64_t)VRAM_MAX_BATCH * (uint64_t)hidden * sizeof(float);
}

#endif
