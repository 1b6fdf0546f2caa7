/* Routed experts of one MoE layer on the CPU for tokens whose choices are already made: the CPU
 * forward pass uses it after its router, and a device engine for the experts it leaves in host
 * memory (host_experts.h). Every chosen expert's gate and up (and the shared experts') run in
 * one batch of matmuls, then every down in another; each token is rounded once for all of its
 * experts. */
#ifndef DSQ_MOE_EXPERTS_H
#define DSQ_MOE_EXPERTS_H

#include "backend_cpu.h"
#include "dsq_format.h"
#include "weights.h"

/* Buffers for up to max_tokens tokens of one layer, so a caller that runs every step can
 * allocate them once. */
typedef struct {
    int max_tokens, n_experts, k, inter, hidden, shared_inter;
    float *g, *u, *ye;    /* [max_tokens * k * inter + max_tokens * shared_inter], ye by slot */
    int *start, *count;   /* [n_experts] each expert's rows of ye */
    int *rows;            /* [max_tokens * k] token of each row */
    float *row_weight;    /* [max_tokens * k] its routing weight */
    dsq_matmul_job *jobs; /* [2 * (n_experts + 1)] */
} moe_workspace;

/* shared_inter: width of the shared experts run in the same batch (0: none). DSQ_ERESOURCE
 * when out of memory. */
int moe_workspace_init(moe_workspace *ws, const dsq_model_config *c, int shared_inter,
                       int max_tokens);
void moe_workspace_free(moe_workspace *ws);

/* Groups the n * k choices by expert, in token order within an expert, leaving out those whose
 * expert skip flags (skip: [n_experts] or NULL); fills ws->start, count, rows and row_weight. */
void moe_group_by_expert(moe_workspace *ws, const int *ids, const float *weights, int n,
                         const unsigned char *skip);

/* out[t] = sum over token t's choices not skipped of weight * down(silu(gate xn[t]) * up xn[t]),
 * added in expert order (n <= ws->max_tokens); with shared_out (needs ws->shared_inter) the
 * layer's shared experts' output for every token, computed in the same batches. */
int moe_experts_cpu(moe_workspace *ws, const layer_weights *lw, const float *xn, int n,
                    const int *ids, const float *weights, const unsigned char *skip, float *out,
                    float *shared_out);

#endif
