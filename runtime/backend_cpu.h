/* Settings of the CPU backend (runtime/backend_cpu.c). */
#ifndef DSQ_BACKEND_CPU_H
#define DSQ_BACKEND_CPU_H

#include <stdbool.h>
#include <stddef.h>

#include "weights.h"

/* How activations enter q8/q6/q4 matmuls: rounded once per matmul to int8 with a scale per weight
 * group, for the integer kernels of quant/qdot.h (true, the default), or as f32 through the fused
 * float kernels of quant/dot.h (false: the reference the golden tests hold to upstream). Other
 * weight types always take f32 activations. Set it before running a model, not during. */
void dsq_cpu_set_int8_activations(bool on);
bool dsq_cpu_int8_activations(void);

/* One matmul of a batch: y[t][w->rows] = w · x[row t] for t < n, where row t is t, or
 * x_rows[t] when given (the experts of a MoE layer read their tokens' rows of one input, which
 * the batch then rounds once for all of them). */
typedef struct {
    const dsq_matrix *w;
    const float *x;
    float *y;
    int n;
    const int *x_rows; /* NULL, or n row indices into x */
} dsq_matmul_job;

/* Runs independent matmuls in one parallel region, their row blocks shared out across the
 * threads together (the experts of a MoE layer at decode: one barrier instead of one per
 * matrix). 0, or DSQ_ERESOURCE with nothing computed if a buffer cannot be allocated. */
int dsq_cpu_matmul_many(const dsq_matmul_job *jobs, int count);

/* Bytes of scratch dsq_cpu_dot_rows needs for w on one thread. */
size_t dsq_cpu_dot_rows_scratch(const dsq_matrix *w);

/* y[i] = row r0 + i of w dotted with x, for i < nr: one vector against a run of rows, on the
 * calling thread (inside a caller's parallel region), with the kernels a decode step's matmul
 * takes: x rounded to int8 once for q8/q6/q4 (the packed copy's kernel when the run is whole
 * 16-row blocks of it, else the planar tiles), or the fused float kernels with f32 activations
 * and for the other types. Absorbed MLA takes each head's W_UV this way (its own rows, its own
 * vector). scratch: dsq_cpu_dot_rows_scratch(w) bytes, 64-byte aligned. */
void dsq_cpu_dot_rows(const dsq_matrix *w, int r0, int nr, const float *x, float *y, void *scratch);

#endif
