/* Settings of the CPU backend (runtime/backend_cpu.c). */
#ifndef DSQ_BACKEND_CPU_H
#define DSQ_BACKEND_CPU_H

#include <stdbool.h>

/* How activations enter q8/q4 matmuls: rounded once per matmul to int8 with a scale per weight
 * group, for the integer kernels of quant/qdot.h (true, the default), or as f32 through the fused
 * float kernels of quant/dot.h (false: the reference the golden tests hold to upstream). Other
 * weight types always take f32 activations. Set it before running a model, not during. */
void dsq_cpu_set_int8_activations(bool on);
bool dsq_cpu_int8_activations(void);

#endif
