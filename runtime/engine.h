/* The backend boundary at the level of a whole model: an engine owns a loaded model's forward
 * pass over a batch of tokens at the next positions, its KV cache and its activations.
 * generate, chat, ppl and bench run through it. The CPU engine wraps model_forward (the
 * reference); the CUDA engine (cuda/) keeps weights, cache and activations on the device. */
#ifndef DSQ_ENGINE_H
#define DSQ_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "model_desc.h"
#include "sampler.h"

struct model;
typedef struct engine engine;

typedef struct {
    const char *name; /* "cpu", "cuda" */
    /* Runs n tokens at positions n_past..n_past+n-1 (engine_forward has checked them);
     * logits receives vocab floats per token if all_logits, else for the last token only.
     * With sample (below), logits may be NULL: they stay where the engine computed them. */
    int (*forward)(engine *e, const int *tokens, int n, float *logits, bool all_logits,
                   dsq_error *err);
    void (*close)(engine *e);
    /* Optional (NULL: one sequence only): tokens of several sequences in one pass; token i
     * goes to position pos[i] of sequence seq[i] (engine_forward_seqs has checked them);
     * logits receives vocab floats for every token. */
    int (*forward_seqs)(engine *e, const int *seq, const int *pos, const int *tokens, int n,
                        float *logits, dsq_error *err);
    /* Optional: GB/s of a device-to-device copy (bytes read + written), the roofline a decode
     * step is measured against; NULL where the host's memory read is the baseline. */
    double (*copy_bandwidth)(engine *e);
    /* Optional (NULL: the caller samples from the logits forward copied out): the next token
     * from the last token's logits of the last forward (not all_logits), drawn where they are,
     * as sampler_sample would draw it from them: s's parameters, its random state advanced,
     * the penalty over history. *bad: the first non-finite logit, or -1. */
    int (*sample)(engine *e, sampler *s, const int *history, int n_history, int *token, int *bad,
                  dsq_error *err);
} engine_ops;

struct engine {
    const engine_ops *ops;
    struct model *model;    /* the loaded model (config, mapped weights, RoPE tables) */
    const model_desc *desc; /* the same, as a backend sees it */
    int ctx;                /* cache capacity in tokens */
    int n_past;             /* tokens in the cache; lowering it truncates the cache */
    int n_seq;              /* sequences the cache holds (engine_forward_seqs), 1 by default */
    int *seq_past;          /* [n_seq] tokens in each sequence's cache (engine_forward_seqs) */
    void *state;            /* the backend's own */
    double load_seconds;    /* weights to the device (0 for the CPU: the mapping is the load) */
    uint64_t load_bytes, device_bytes; /* bytes copied at load; device memory taken */
    uint64_t graph_launches; /* CUDA: steps replayed from a captured graph (0: plain launches) */
    uint64_t device_draws;   /* engine_sample: tokens drawn on the device (CUDA; the others went
                              * to the host's sampler) */
    struct host_experts *host_experts; /* CUDA with a model larger than the device: the routed
                                        * experts computed in host memory, else NULL */
    struct expert_swap *expert_swap;   /* its expert cache, or NULL (the placement stays) */
};

typedef struct {
    const char *backend; /* "cpu", "cuda", or NULL: cuda when a device is present, else cpu */
    uint64_t vram;       /* CUDA: device bytes the engine may take; 0 = the free memory */
    bool no_graph;       /* CUDA: launch decode kernels one by one instead of a captured graph */
    int n_seq;           /* sequences decoded together (0 or 1: one); more need a backend
                          * with forward_seqs (cuda) */
    bool verbose;        /* print load time and memory use on stderr */
    const char *expert_stats; /* CUDA with experts in host memory: keep the most used on the
                               * device, by this file's counts (dsq ppl --save-expert-stats);
                               * checked against the model on every backend */
    bool expert_cache;        /* ... and move experts between GPU and host between decode
                               * passes (LFU with decay, docs/OFFLOAD.md); else the placement
                               * stays */
    double expert_half_life;  /* the expert cache's half-life in tokens; 0: the defaults of
                               * expert_cache.h for it and the margin alike */
    double expert_margin;     /* uses by which a load must pass the evicted expert, with a
                               * half-life given (0: none) */
} engine_options;

/* Whether this binary has the CUDA backend, and how many devices it sees (0 without). */
bool engine_cuda_built(void);
int engine_cuda_devices(void);

/* Binds an engine to an open model. Fails with DSQ_EUSAGE for an unknown backend name and
 * DSQ_ERESOURCE when the CUDA backend is missing, finds no device or too little memory. */
int engine_open(engine *e, struct model *m, const engine_options *o, dsq_error *err);
void engine_close(engine *e);

/* Checks the tokens and the room in the cache, then runs the backend's forward. logits may be
 * NULL for an engine that samples (engine_samples): engine_sample then draws from them. */
int engine_forward(engine *e, const int *tokens, int n, float *logits, bool all_logits,
                   dsq_error *err);

/* Whether the engine draws tokens itself (the CUDA engine, on the device: only a token comes
 * back instead of the vocabulary's logits). */
static inline bool engine_samples(const engine *e)
{
    return e->ops->sample != NULL;
}

/* The next token from the last engine_forward's logits (of its last token), as sampler_sample
 * draws it; fails (DSQ_EINPUT naming the file) on a non-finite logit, as engine_forward does. */
int engine_sample(engine *e, sampler *s, const int *history, int n_history, int *token,
                  dsq_error *err);

/* Runs n tokens of the engine's sequences at once (a decode step of a batch of sequences, or
 * prompts): token i is appended to sequence seq[i], in order; logits receives vocab floats per
 * token. Separate from engine_forward, which runs sequence 0's n_past: use one or the other. */
int engine_forward_seqs(engine *e, const int *seq, const int *tokens, int n, float *logits,
                        dsq_error *err);

/* Forgets the cache (a new sequence starts at position 0). */
static inline void engine_reset(engine *e)
{
    e->n_past = 0;
}

/* Forgets sequence s of a batch engine. */
static inline void engine_reset_seq(engine *e, int s)
{
    if (s >= 0 && s < e->n_seq)
        e->seq_past[s] = 0;
}

/* Keeps the first n tokens of the cache (n <= n_past). */
static inline void engine_truncate(engine *e, int n)
{
    if (n >= 0 && n < e->n_past)
        e->n_past = n;
}

#endif
