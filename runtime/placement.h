/* Where each part of a model lives when the GPU has less memory than the model: everything but
 * the routed experts (attention, dense layers, shared experts, norms, routers, embeddings, head),
 * the KV cache and the work buffers stay on the GPU; the routed experts that fit in the rest of
 * --vram are cached there too, hottest first by expert statistics (evenly across layers without
 * them), and the others are read and computed in host memory. Byte counts come from the same
 * per-tensor sizes the file stores (or the converter would store, for a config alone) and from
 * the CUDA engine's memory plan (vram_plan.h) for the cache and buffers. */
#ifndef DSQ_PLACEMENT_H
#define DSQ_PLACEMENT_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "expert_stats.h"
#include "recipe.h"
#include "tensor_map.h"
#include "vram_plan.h"

typedef struct {
    uint64_t vram;
    int ctx;
    uint64_t class_bytes[TC_COUNT]; /* by class; routed experts: all of them */
    uint64_t resident_weights;      /* every class but the routed experts */
    uint64_t kv_cache, work;        /* the CUDA engine's, at ctx */
    uint64_t resident;              /* resident_weights + kv_cache + work */
    int n_moe, n_experts;
    int experts_gpu, experts_total;
    uint64_t experts_gpu_bytes, experts_host_bytes;
    int *moe_layer;          /* [n_moe] layer number */
    int *gpu_per_layer;      /* [n_moe] experts cached on the GPU */
    unsigned char *on_gpu;   /* [n_moe * n_experts] */
    bool by_stats;           /* hottest first (else evenly across layers) */
    double routed_share_gpu; /* with stats: share of their routed uses the GPU experts take */
} placement;

/* The description the CUDA memory plan takes, from a config and the bytes of its weights. */
vram_model placement_vram_model(const dsq_model_config *c, uint64_t weight_bytes);

/* Each planned tensor's stored bytes for a config under a recipe, as the converter would write
 * them (*plan and *bytes malloc'd, free() both). */
int placement_bytes_from_config(const dsq_model_config *c, const recipe_options *r,
                                planned_tensor **plan, uint64_t **bytes, int *n, dsq_error *err);

/* Plans a model of n planned tensors with bytes[i] each, for vram bytes and a cache of ctx
 * tokens; stats (optional, checked against c by the caller) orders the experts. Fails with
 * DSQ_ERESOURCE, saying how much is needed, when the GPU-resident part alone exceeds vram. */
int placement_make(placement *p, const dsq_model_config *c, const planned_tensor *plan,
                   const uint64_t *bytes, int n, uint64_t vram, int ctx, const expert_stats *stats,
                   dsq_error *err);
void placement_free(placement *p);

#endif
