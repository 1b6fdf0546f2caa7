/* The CPU engine's packed copies of a model's q8/q4 (quant/qpack.h) and bf16 (quant/bf16pack.h)
 * matmul weights. */
#ifndef DSQ_CPU_PACK_H
#define DSQ_CPU_PACK_H

#include <stdbool.h>

#include "error.h"
#include "weights.h"

/* Whether packing pays here: q8/q4 matmuls take int8 activations and the CPU runs a packed
 * kernel (AVX-512 VNNI, AVX-VNNI or AVX2) at the ISA of the planar kernel it replaces
 * (dsq_qpack_replaces_qdot), or the CPU runs a packed bf16 kernel (AVX-512 or AVX2). */
bool cpu_pack_useful(void);

/* Packs every matrix that has a packed form the CPU uses (q8/q4 as cpu_pack_useful says, bf16 with
 * AVX2 or AVX-512), except the embedding (only ever read by rows), into one anonymous mapping, in
 * parallel, and points each matrix's packed at its copy. Only copies that fit in the memory
 * available (MemAvailable of /proc/meminfo, or of the file DSQ_MEMINFO names) are made: the bf16
 * copies need twice their size (decode keeps reading the planar rows) and go first, then the q8/q4
 * ones; what is left out is added to w->unpacked_bytes and runs on the planar kernels.
 * Does nothing if already packed. DSQ_ERESOURCE when the mapping fails (the matrices then stay
 * planar and the model still runs). */
int cpu_pack_weights(model_weights *w, int n_routed_experts, dsq_error *err);

/* The same for the routed experts a device leaves in host memory only: those on_gpu
 * ([n_layers * n_routed_experts], layer-major) does not flag. */
int cpu_pack_host_experts(model_weights *w, int n_routed_experts, const unsigned char *on_gpu,
                          dsq_error *err);

/* Drops every packed copy: the matrices run on the planar kernels again (tests). Needs the
 * memory for a list of the matrices; without it the copies stay. */
void cpu_pack_free(model_weights *w, int n_routed_experts);

#endif
