/* The placement report `dsq plan` and `dsq info --vram` print. */
#ifndef DSQ_CLI_PLAN_H
#define DSQ_CLI_PLAN_H

#include <stdbool.h>
#include <stdint.h>

#include "model_config.h"
#include "tensor_map.h"

/* Prints the GPU / host placement (runtime/placement.h) of a model of n planned tensors with
 * bytes[i] each; stats_path (optional) orders the experts. Returns the exit code: 3 with a
 * message when the GPU-resident part does not fit vram. */
int cli_placement_report(const char *cmd, const dsq_model_config *c, const planned_tensor *plan,
                         const uint64_t *bytes, int n, uint64_t vram, int ctx,
                         const char *stats_path, bool per_layer);

#endif
