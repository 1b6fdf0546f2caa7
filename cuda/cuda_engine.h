/* The CUDA engine's C entry points (cuda/engine.cu): runtime/engine.c calls them when the binary
 * is built with nvcc. */
#ifndef DSQ_CUDA_ENGINE_H
#define DSQ_CUDA_ENGINE_H

#ifdef __cplusplus
extern "C" {
#endif

#include "engine.h"

/* CUDA devices this process can use; 0 when there is none or no driver. */
int cuda_device_count(void);

/* Uploads the model in e->desc to device 0, plans memory for e->ctx tokens of cache and sets
 * e->ops and e->state. DSQ_ERESOURCE: no device, too little memory (said before allocating);
 * DSQ_EINPUT: a tensor type or shape the kernels lack. */
int cuda_engine_open(engine *e, const engine_options *o, dsq_error *err);

#ifdef __cplusplus
}
#endif

#endif
