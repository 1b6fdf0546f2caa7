/* The expert cache of a device engine that leaves routed experts in host memory: its slots are
 * the device copies of the experts the placement put there (the same bytes serve any expert,
 * all experts having one shape), and the LFU-with-decay policy of expert_cache.h decides,
 * from the experts each pass routed to, which host expert to copy into which slot between
 * passes. This file keeps the bookkeeping (CPU only, tested by tests/test_expert_swap.c); the
 * engine does the copies. */
#ifndef DSQ_EXPERT_SWAP_H
#define DSQ_EXPERT_SWAP_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

/* Expert `expert` of layer `layer` moves into slot `slot`, whose previous expert goes back to
 * the host. */
typedef struct {
    int slot;
    int layer, expert;         /* now on the device */
    int old_layer, old_expert; /* now in host memory */
} expert_swap_load;

typedef struct expert_swap expert_swap;

/* on_gpu: [n_layers * n_experts], layer-major (placement's flags), moe: [n_layers] whether a
 * layer has routed experts. Slot s starts with the s-th flagged expert in (layer, expert)
 * order. The LFU scores start from counts ([n_moe * n_experts], a profile's, as the placement
 * that chose the flagged experts by them) when given and they pick the same experts, else at 1
 * for the flagged ones and 0 for the others. half_life in tokens, margin in uses (see
 * expert_cache.h). */
int expert_swap_open(expert_swap **s, int n_layers, int n_experts, const bool *moe,
                     const unsigned char *on_gpu, const uint64_t *counts, double half_life,
                     double margin, dsq_error *err);
void expert_swap_close(expert_swap *s);

int expert_swap_slots(const expert_swap *s);
int expert_swap_moe_layers(const expert_swap *s);
/* The layer number of MoE layer m. */
int expert_swap_layer(const expert_swap *s, int m);
/* Whether the policy counts the expert as on the device. */
bool expert_swap_resident(const expert_swap *s, int layer, int expert);
/* Loads made so far (0 without a cache: s NULL). */
uint64_t expert_swap_loads(const expert_swap *s);

/* The expert slot s holds now (at init: the s-th expert on_gpu flags, in layer, expert order). */
void expert_swap_slot_expert(const expert_swap *s, int slot, int *layer, int *expert);

/* One pass of n tokens with k experts each: ids[m][t * k + j] for MoE layer m (MoE index) in
 * routing order; tokens are taken in order, each layer's choices in turn, as a decode sees
 * them. Without may_load the uses are only counted (a long prompt would otherwise churn). Writes
 * the loads the policy makes, in order, to loads (room for n * n_moe * k, one per choice at most)
 * and returns how many; -1 (nothing done) when max_loads is smaller. */
int expert_swap_pass(expert_swap *s, const int *const *ids, int n, int k, bool may_load,
                     expert_swap_load *loads, int max_loads);

#endif
