/* A model ready to run: the mapped file, weight views, RoPE tables and the KV cache, and the
 * forward pass over a batch of tokens at the next positions. */
#ifndef DSQ_MODEL_H
#define DSQ_MODEL_H

#include <stdbool.h>

#include "backend.h"
#include "model_file.h"
#include "rope.h"
#include "weights.h"

/* MLA attention form: expanded (K and V rebuilt from the cached latent; prefill) or absorbed
 * (scores and values computed in the 512-d latent; decode). Both read the same cache. */
typedef enum { ATTN_AUTO, ATTN_EXPANDED, ATTN_ABSORBED } attn_mode;

/* How the KV cache is kept: bf16 (the default: half the bytes a long context reads per token,
 * AMX tiles for MLA where the CPU has them; runtime/kv_bf16.h), f32 (the reference
 * arithmetic the golden tests hold) or, for MHA only, q8 (int8 codes with a scale per 32
 * values; runtime/kv_q8.h). */
typedef enum { KV_CACHE_BF16, KV_CACHE_F32, KV_CACHE_Q8 } kv_cache_type;

/* For the models opened (or built) after the call. */
void model_set_kv_cache(kv_cache_type t);
kv_cache_type model_kv_cache(void);

typedef struct model {
    model_file file;
    model_weights w;
    const dsq_model_config *cfg; /* = &file.config */
    const dsq_backend *be;
    rope_table rope;
    int ctx;    /* KV cache capacity in tokens */
    int n_past; /* tokens already in the cache */
    attn_mode mode;
    float softmax_scale;
    /* KV cache, per layer. MHA: keys and values, (ctx, kv_heads * head_dim) each.
     * MLA: RMSNorm(c_kv), (ctx, kv_lora_rank), and the roped shared key, (ctx, rope). */
    float *cache_a, *cache_b;
    size_t cache_a_stride, cache_b_stride; /* values per token */
    /* A bf16 cache (model_kv_cache()) in place of cache_a and cache_b. MHA: keys_bf16 and
     * values_bf16, shaped as those. MLA: latent_bf16, per layer (ctx, cache_a_stride), rows
     * [latent | key hi | key lo | zeros] (kv_bf16_latent_row). */
    uint16_t *keys_bf16, *values_bf16, *latent_bf16;
    /* A q8 cache (MHA only): codes shaped as keys_bf16 and values_bf16, and per layer one
     * scale per kv_q8_group(head_dim) of them, at element / group. */
    int8_t *keys_q8, *values_q8;
    float *key_scales, *value_scales;
    bool latent_tiles; /* MLA's absorbed decode runs on AMX tiles (else widened) */
    struct expert_stats *expert_stats;     /* optional: counts each routing (expert_stats.h) */
} model;

/* Bytes of KV cache a context of ctx tokens takes on the CPU, kept as t (MLA has no q8 cache:
 * its bf16 figure). */
size_t model_cache_bytes(const dsq_model_config *c, int ctx, kv_cache_type t);

/* The context a command uses when none is given: the model's maximum, at most 4096 tokens. */
static inline int model_default_ctx(const dsq_model_config *c)
{
    return c->max_position_embeddings < 4096 ? c->max_position_embeddings : 4096;
}

/* Opens path and allocates a cache of ctx tokens (1..max_position_embeddings); a cache larger
 * than the machine's memory is refused before allocating. */
int model_open(model *m, const char *path, int ctx, dsq_error *err);
void model_close(model *m);

/* What a model needs beyond its weights, for m->cfg and m->ctx: cache strides, the softmax
 * scale, the KV cache and the RoPE tables (model_open calls it; so does a model built in
 * memory). model_state_free releases them. */
int model_state_init(model *m, dsq_error *err);
void model_state_free(model *m);

/* Forgets the cache (a new sequence starts at position 0). */
static inline void model_reset(model *m)
{
    m->n_past = 0;
}

/* A NaN or infinite logit means damaged weights or a config the arithmetic cannot follow:
 * every command stops on it (DSQ_EINPUT naming the file) rather than sample from or score
 * garbage. rows of vocab floats; pos: the first row's position. engine_forward checks every
 * backend's logits with it. */
int model_check_logits(const model *m, const float *logits, int rows, int pos, dsq_error *err);
/* The same error for logits checked elsewhere (a device sampler): the first non-finite one is
 * token `token` at position pos. */
int model_logit_error(const model *m, int token, int pos, dsq_error *err);

/* Runs n tokens at positions n_past..n_past+n-1 and appends them to the cache. logits receives
 * vocab floats per token if all_logits, else for the last token only. */
int model_forward(model *m, const int *tokens, int n, float *logits, bool all_logits,
                  dsq_error *err);

/* Per-layer pieces of the forward pass (runtime/attention.c, runtime/moe.c). xn is n rows of
 * hidden; out receives n rows of hidden. */
int attention_forward(model *m, int layer, const float *xn, int n, float *out);
int ffn_forward(const model *m, int layer, const float *xn, int n, float *out);

#endif
