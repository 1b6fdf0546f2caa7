/* The CUDA engine's state, shared by the engine (cuda/engine.cu), its draws on the device
 * (cuda/engine_sample.cu) and its offload of routed experts to host memory (cuda/offload.cu). */
#ifndef DSQ_CUDA_ENGINE_STATE_H
#define DSQ_CUDA_ENGINE_STATE_H

#include "cuda_engine.h"
#include "kernels.h"
extern "C" {
#include "expert_swap.h"
#include "host_experts.h"
#include "types.h"
#include "vram_plan.h"
}

#define STAGE_BYTES (64ull << 20) /* pinned staging buffer for the weight upload (two) */
#define MAX_GRAPH 16              /* decode steps of up to this many tokens are graphs */

struct dlayer {
    dmat wq, wk, wv, q_a, q_b, kv_a, kv_b, wo;
    dmat dense_gate, dense_up, dense_down, router, shared_gate, shared_up, shared_down;
    const float *attn_norm, *ffn_norm, *q_a_norm, *kv_a_norm;
    const dmat *gates, *ups, *downs; /* device arrays [n_experts] */
    const dmat *ffn_pair;            /* device: gate, up of the dense or shared FFN */
    bool moe, has_shared;
};

/* A byte range of the file that is not uploaded (routed experts left in host memory). */
struct hole {
    uint64_t off, len;
};

struct cuda_state;
struct host_call { /* the argument of one MoE layer's host function */
    cuda_state *st;
    int layer;
};

struct cuda_state {
    cudaStream_t stream;
    void *allocs[64];
    int n_allocs;
    const uint8_t *file; /* device copy of the mapping */
    dlayer *layers;
    dmat embed, output;
    const float *norm;
    rope_dev rope;
    float *cache_a, *cache_b;
    size_t stride_a, stride_b;      /* floats per token per layer */
    int batch, expert_inter, top_k; /* tokens per pass; routed expert width; experts per token */
    float *x, *xn, *q, *qa, *k, *v, *ckv, *attn, *q_lat, *o_lat, *scores, *g, *u, *h, *ye, *xg,
        *shared_out, *router, *route_w, *logits;
    /* io: per token of a pass, [0, B) position, [B, 2B) sequence, [2B, 3B) id; host_io pinned */
    int *ids, *order, *starts, *io, *host_io, *zero_ids;
    /* pinned: a pass's logits come here, then to the caller's memory (a copy into pageable
     * memory would wait for the whole pass inside the copy call, spinning on a core the host's
     * experts need, instead of sleeping on the done event) */
    float *host_logits;
    /* the device sampler (samp.keys NULL: a draw copies the logits to the host's sampler);
     * samp_io: [0] the history's length, [1] the token, [2] the first non-finite logit, then
     * up to samp_cap tokens of history; host_samp the same and host_state the random state,
     * pinned */
    dsampler samp;
    int *samp_io, *host_samp, samp_cap;
    unsigned long long *host_state;
    bool logits_ready; /* logits holds the last forward's last row, not yet drawn from, */
    int logits_at;     /* for a cache of this many tokens (a reset or truncation voids it) */
    int n_seq;
    unsigned char *seen; /* [n_seq] scratch: which sequences a call has a token of */
    cudaGraphExec_t graphs[MAX_GRAPH + 1]; /* a step of n tokens with every row's logits */
    bool graph_ready[MAX_GRAPH + 1], use_graph;
    bool ran_plain[MAX_GRAPH + 1]; /* a step of n tokens has run once without a graph */
    /* offload: sorted, merged holes of the upload and the hole bytes before each */
    hole *holes;
    uint64_t *hole_before, hole_bytes;
    int n_holes;
    host_experts *he;  /* not owned */
    bool *host_layer;  /* [n_layers] some routed expert of the layer is in host memory */
    host_call *calls;  /* [n_layers] */
    cudaStream_t side; /* the device's experts while the host computes its own */
    cudaEvent_t fork, join;
    cudaEvent_t done; /* end of a pass, waited for without spinning: the host's cores compute */
    float *hx, *hw, *hout; /* pinned: a pass's layer input, routing weights, the host's sum */
    int *hids;             /* pinned: the pass's expert ids */
    float *dout;           /* device: the host's sum */
    int host_n, host_rc;   /* tokens of the pass running; the first host error */
    dsq_error host_err;
    /* expert cache (offload with swap): the host's copy of the expert tables, the device bytes
     * of each slot (gate, up, down), every layer's ids of a pass, and the loads of one */
    expert_swap *swap; /* not owned */
    dmat *tables, *tables_host;
    dmat *slot_mem;
    int *hids_log;    /* [n_layers][batch * k] each layer's choices of the pass */
    bool *slot_dirty; /* [slots] its expert changed in this pass's loads */
    bool broken;      /* an expert cache update failed: the engine refuses to run */
    expert_swap_load *swap_loads;
    const int **swap_ids; /* [n_moe] rows of hids_log */
};

#define TRY(call)                                                                                  \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess)                                                                     \
            return e_;                                                                             \
    } while (0)

/* cudaMalloc recorded in st->allocs (freed by the engine's state_free) */
cudaError_t dalloc(cuda_state *st, size_t bytes, void **p);
template <typename T> static inline cudaError_t dalloc_n(cuda_state *st, size_t count, T **p)
{
    return dalloc(st, count * sizeof(T), (void **)p);
}

/* cuda/engine.cu: a CUDA error as the engine reports it (DSQ_ERESOURCE, "CUDA what: ...") */
int cuda_fail(dsq_error *err, cudaError_t e, const char *what);

/* cuda/engine_sample.cu */
/* The device sampler's buffers for a vocabulary and a cache of ctx tokens (the device sampler
 * itself only where CUB's scratch fits the plan), and their release. */
cudaError_t sample_build(cuda_state *st, int vocab, int ctx);
void sample_free(cuda_state *st);
/* engine_ops.sample (runtime/engine.h) */
int cuda_sample(engine *en, sampler *s, const int *history, int n_history, int *token, int *bad,
                dsq_error *err);

/* cuda/offload.cu */
/* The device address of a byte of the mapping: its offset less the holes before it; NULL for
 * NULL and for a byte in a hole (not on the device). */
const uint8_t *dev_addr(const cuda_state *st, const model_desc *d, const void *p);
/* What an offload needs before the memory plan: the holes of the upload, the layers that take
 * the host path, their host calls. false when out of memory. */
bool offload_init(cuda_state *st, const model_desc *d, const cuda_offload *off);
/* The offload's buffers, streams and events for passes of B tokens of width H, and the expert
 * cache's (at the end of build, after the expert tables). */
cudaError_t offload_build(cuda_state *st, const model_desc *d, size_t B, size_t H);
/* A MoE layer's host path around the device's experts: fork (n tokens' inputs of width H and
 * k choices each to the host, the host function, its sum back, on s; the side stream branches
 * off), then join (s waits for it). */
cudaError_t offload_fork(cuda_state *st, int layer, int n, size_t H, size_t k, cudaStream_t s);
cudaError_t offload_join(cuda_state *st, cudaStream_t s);
/* The expert cache after a pass of n tokens; loads only if may_load (a decode call: one token
 * of each sequence in it). */
cudaError_t swap_experts(cuda_state *st, engine *en, int n, bool may_load);
/* Frees what offload_init and offload_build made (the engine's state_free calls it). */
void offload_free(cuda_state *st);

#endif
