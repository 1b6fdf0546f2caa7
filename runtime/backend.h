/* The compute backend behind the CPU forward pass: the operations that touch weights. Device
 * backends plug in a level higher, as engines that own the whole forward (engine.h). */
#ifndef DSQ_BACKEND_H
#define DSQ_BACKEND_H

#include "weights.h"

typedef struct {
    const char *name;
    /* y[t][w->rows] = w · x[t] for t < n (x is n rows of w->cols); fp32 accumulation */
    void (*matmul)(const dsq_matrix *w, const float *x, float *y, int n);
    /* out[w->cols] = row r of w, as f32 */
    void (*get_row)(const dsq_matrix *w, int r, float *out);
} dsq_backend;

extern const dsq_backend dsq_backend_cpu;

#endif
