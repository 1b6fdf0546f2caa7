/* The CUDA engine's C entry points (cuda/engine.cu): runtime/engine.c calls them when the binary
 * is built with nvcc. */
#ifndef DSQ_CUDA_ENGINE_H
#define DSQ_CUDA_ENGINE_H

#ifdef __cplusplus
extern "C" {
#endif

#include <stdint.h>

#include "engine.h"
#include "expert_swap.h"
#include "host_experts.h"

/* CUDA devices this process can use; 0 when there is none or no driver. */
int cuda_device_count(void);

/* Free and total memory of device 0; false without one. */
bool cuda_memory(uint64_t *free_bytes, uint64_t *total_bytes);

/* Device bytes the engine plans for e->desc, e->ctx and e->n_seq with every weight uploaded. */
uint64_t cuda_engine_plan_bytes(const engine *e);

/* A model larger than the device: the routed experts on_gpu does not flag ([n_layers *
 * n_experts], layer-major) stay in host memory and he computes them; with swap (NULL: the
 * placement stays) its policy moves experts between the two after every pass. */
typedef struct {
    const unsigned char *on_gpu;
    host_experts *he;
    expert_swap *swap;
} cuda_offload;

/* Uploads the model in e->desc to device 0 (without the experts an offload leaves in host
 * memory), plans memory for e->ctx tokens of cache and sets e->ops and e->state.
 * DSQ_ERESOURCE: no device, too little memory (said before allocating); DSQ_EINPUT: a tensor
 * type or shape the kernels lack. */
int cuda_engine_open(engine *e, const engine_options *o, const cuda_offload *off, dsq_error *err);

#ifdef __cplusplus
}
#endif

#endif
