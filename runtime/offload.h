/* Which routed experts a device engine keeps when the model does not fit its memory: the
 * placement plan (placement.h) for a budget, over the model's weights (a file or a model built
 * in memory): every routed expert's bytes, and the rest of the mapping (other tensors, header,
 * padding: the upload copies all of it). The budget is first reduced by what the engine needs
 * beyond the plan (the caches of further sequences, the buffer the host's sums come back to);
 * the result is per-layer flags. */
#ifndef DSQ_OFFLOAD_H
#define DSQ_OFFLOAD_H

#include <stdint.h>

#include "error.h"
#include "placement.h"

struct model;

/* Device bytes an engine with n_seq sequences needs beyond the placement of m's mapping. */
uint64_t offload_reserve(const struct model *m, int n_seq);

/* Plans m for budget device bytes, hottest experts first by stats (checked against m by the
 * caller) or evenly across layers (NULL); *on_gpu (malloc'd, [n_layers * n_experts],
 * layer-major) flags the routed experts to upload. DSQ_ERESOURCE, saying what is needed, when the
 * part that must be on the device does not fit. p is filled as placement_make fills it (free it
 * with placement_free). */
int offload_plan(const struct model *m, int n_seq, uint64_t budget, const expert_stats *stats,
                 placement *p, unsigned char **on_gpu, dsq_error *err);

/* The budget at which a share (0..1) of the routed experts' bytes fits on the device, by the
 * plan's order: 0 gives the smallest budget that runs at all. */
int offload_budget(const struct model *m, int n_seq, double share, uint64_t *budget,
                   dsq_error *err);

#endif
