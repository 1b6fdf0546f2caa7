/* The routed experts a device engine leaves in host memory (a model larger than the GPU): for a
 * MoE layer and the tokens of one pass, the weighted sum of the chosen experts the device does
 * not hold, computed by the CPU's kernels from the mapped file. The device engine calls it
 * between its router and its combine, from its own thread; buffers are allocated once, at open,
 * and the calls run on as many threads as the opening thread's OpenMP team. */
#ifndef DSQ_HOST_EXPERTS_H
#define DSQ_HOST_EXPERTS_H

#include <stdbool.h>

#include "error.h"

struct model;
typedef struct host_experts host_experts;

/* on_gpu: [n_layers * n_routed_experts], layer-major, 1 where the device computes the expert
 * (copied). max_tokens: the most tokens a call takes. */
int host_experts_open(host_experts **out, const struct model *m, const unsigned char *on_gpu,
                      int max_tokens, dsq_error *err);
void host_experts_close(host_experts *he);

/* Seconds spent in host_experts_run so far (a benchmark's split of a step). */
double host_experts_seconds(const host_experts *he);

/* An expert moved to the device (on_gpu) or back to host memory by the device's expert cache;
 * calls after it see the change. */
void host_experts_place(host_experts *he, int layer, int expert, bool on_gpu);

/* Whether any routed expert of the layer is computed here. */
bool host_experts_in_layer(const host_experts *he, int layer);
/* Experts of the layer computed here. */
int host_experts_count(const host_experts *he, int layer);

/* out[t][hidden] = sum over token t's choices (ids[t * k + j], weights[t * k + j]) of experts
 * held here of weight * expert(xn[t]); zero where none is. n <= max_tokens. */
int host_experts_run(host_experts *he, int layer, const float *xn, int n, const int *ids,
                     const float *weights, float *out, dsq_error *err);

#endif
