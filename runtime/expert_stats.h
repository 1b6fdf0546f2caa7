/* How often the router sends tokens to each routed expert, per layer, and optionally the order
 * in which it did (a routing trace). The forward pass fills it through one optional pointer on
 * the model (runtime/moe.c); `dsq ppl --save-expert-stats` writes it as JSON, the placement
 * plan (placement.h) puts the hottest experts on the GPU from it, and the expert cache
 * simulator (expert_cache.h) replays the trace. */
#ifndef DSQ_EXPERT_STATS_H
#define DSQ_EXPERT_STATS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "model_config.h"

#define EXPERT_STATS_FORMAT "dsq-expert-stats"
#define EXPERT_STATS_VERSION 1

typedef struct expert_stats {
    int n_layers, n_experts, k;
    int n_moe;        /* MoE layers */
    int *moe_index;   /* [n_layers]: the layer's index among MoE layers, -1 for dense */
    int *moe_layer;   /* [n_moe]: the layer number of each MoE layer */
    uint64_t *counts; /* [n_moe * n_experts]: tokens routed to each expert */
    uint64_t *tokens; /* [n_moe]: tokens routed in each MoE layer */
    /* Routing trace (keep_trace): token-major, for each token every MoE layer's k ids, in the
     * order the router chose them. A batch of tokens goes through one layer at a time; the
     * trace still reads token by token, as a decode would see it. */
    bool keep_trace;
    uint16_t *trace;
    size_t trace_tokens, trace_cap; /* complete tokens in the trace; tokens of room */
    /* Set by the writer of a file (or read back): what produced the counts. */
    json_t *meta; /* {"model": {...}, "file": ..., "file_size": ..., "text": ..., "ctx": ...} */
} expert_stats;

/* Zeroed counts for a model's config; keep_trace also records the routing order. */
int expert_stats_init(expert_stats *s, const dsq_model_config *c, bool keep_trace, dsq_error *err);
void expert_stats_free(expert_stats *s);

/* Counts n tokens' choices in layer (ids: n rows of k expert ids); DSQ_ERESOURCE when the
 * trace cannot grow. */
int expert_stats_record(expert_stats *s, int layer, const int *ids, int n);

/* The trace's k ids of a token in a MoE layer (by MoE index). */
static inline const uint16_t *expert_stats_trace_at(const expert_stats *s, size_t token, int moe)
{
    return s->trace + (token * (size_t)s->n_moe + (size_t)moe) * (size_t)s->k;
}

/* Writes the stats (and the trace, if kept) as one JSON object, atomically; the caller has
 * checked the path with output_path_check. */
int expert_stats_save(const expert_stats *s, const char *path, dsq_error *err);

/* Reads a file written by expert_stats_save; errors name the file and the field. */
int expert_stats_load(expert_stats *s, const char *path, dsq_error *err);

/* Whether the stats fit a model (same layers, MoE layers, experts and k); else DSQ_EINPUT
 * naming path and what differs. */
int expert_stats_check(const expert_stats *s, const dsq_model_config *c, const char *path,
                       dsq_error *err);

/* Per MoE layer summary: the entropy of the routing distribution in bits (at most
 * log2 n_experts: uniform), and the share of all routed tokens that the top_n most used experts
 * took. */
double expert_stats_entropy(const expert_stats *s, int moe);
double expert_stats_top_share(const expert_stats *s, int moe, int top_n);

#endif
