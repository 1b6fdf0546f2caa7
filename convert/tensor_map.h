/* The tensor plan of a model: every tensor dsq stores, in file order, with its dsq name, the
 * Hugging Face name it comes from, its class and its expected shape. Derived from the config
 * alone, so the converter can check a checkpoint against it before reading any weights. */
#ifndef DSQ_TENSOR_MAP_H
#define DSQ_TENSOR_MAP_H

#include <stdint.h>

#include "model_config.h"

typedef enum {
    TC_EMBEDDING,
    TC_OUTPUT,
    TC_NORM,
    TC_ATTENTION,
    TC_DENSE_FFN,
    TC_ROUTER,
    TC_SHARED_EXPERT,
    TC_ROUTED_EXPERT,
    TC_COUNT
} tensor_class;

typedef struct {
    char name[64];     /* dsq name, e.g. "layers.3.mlp.experts.17.up" */
    char hf_name[96];  /* e.g. "model.layers.3.mlp.experts.17.up_proj.weight" */
    tensor_class cls;
    int layer;  /* -1 for embedding, final norm, output */
    int expert; /* routed expert index, else -1 */
    uint32_t ndim;
    uint64_t shape[2]; /* [out_features, in_features] for matrices */
} planned_tensor;

const char *tensor_class_name(tensor_class c);

/* Builds the plan; *out is malloc'd, free() it. Order: embedding, then per layer the attention
 * tensors, norms and FFN (routed experts last, each expert's gate, up, down adjacent), then the
 * final norm and output head. */
int tensor_plan_build(const dsq_model_config *c, planned_tensor **out, int *count, dsq_error *err);

/* The number of tensors tensor_plan_build makes, computed from the config alone, so a config
 * can be checked against a file's tensor count before anything per tensor is allocated. */
uint64_t tensor_plan_count(const dsq_model_config *c);

/* The most tensors a plan may have before it is built for a file holding n_present: a larger
 * plan would mostly name missing tensors, and could take gigabytes for a few bytes of config.
 * Up to this bound the plan is built and every missing tensor named. */
#define TENSOR_PLAN_MAX(n_present) (2 * (uint64_t)(n_present) + 1024)

/* Parameters: total, and active per token (routed experts counted n_experts_per_tok times). */
void tensor_plan_params(const dsq_model_config *c, const planned_tensor *plan, int count,
                        uint64_t *total, uint64_t *active);

#endif
