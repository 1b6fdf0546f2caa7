/* CPU backend: each weight row is dotted with every token by the fused kernels of quant/dot.h
 * (AVX2 where the CPU has it, else the scalar reference), fp32 accumulation, rows split across
 * OpenMP threads. get_row widens with the reference dequantizer. */
#include <stdlib.h>

#include <omp.h>

#include "backend.h"
#include "dequant.h"
#include "dot.h"
#include "types.h"

/* Below this many multiply-adds a parallel region costs more than it saves (and on a busy
 * machine spinning threads wait for descheduled ones). */
#define PARALLEL_MIN_WORK (1l << 20)

/* Rows dotted with one token before moving to the next: the token's x stays in L1 while a block
 * of rows (at most 16 * cols * 4 bytes) stays in L2. */
#define ROW_BLOCK 16

static void widen_row(const dsq_matrix *w, int r, float *out)
{
    dsq_dequant_row(w->type, w->data, (uint64_t)w->rows, (uint64_t)w->cols, w->group, (uint64_t)r,
                    out);
}

static void cpu_matmul(const dsq_matrix *w, const float *x, float *y, int n)
{
    const int rows = w->rows, cols = w->cols;
    /* smaller blocks when there are too few rows to give every thread one */
    const int per_thread = (rows + omp_get_max_threads() - 1) / omp_get_max_threads();
    const int rb = per_thread < 1 ? 1 : per_thread < ROW_BLOCK ? per_thread : ROW_BLOCK;
    const int blocks = (rows + rb - 1) / rb;
    /* per-token group sums (q4), computed once here rather than once per row; if the allocation
     * fails the kernels compute them per row instead */
    const uint64_t ns = dsq_dot_xsum_len(w->type, (uint64_t)cols, w->group);
    float *xsum = ns ? malloc((size_t)n * ns * sizeof(float)) : NULL;
    if (xsum)
        for (int t = 0; t < n; t++)
            dsq_dot_xsums(w->type, x + (size_t)t * cols, (uint64_t)cols, w->group,
                          xsum + (size_t)t * ns);
#pragma omp parallel for schedule(static) if ((long)rows * cols * n > PARALLEL_MIN_WORK)
    for (int b = 0; b < blocks; b++) {
        const int r0 = b * rb, r1 = r0 + rb < rows ? r0 + rb : rows;
        for (int t = 0; t < n; t++) {
            const float *xt = x + (size_t)t * cols, *st = xsum ? xsum + (size_t)t * ns : NULL;
            for (int r = r0; r < r1; r++)
                y[(size_t)t * rows + r] =
                    dsq_dot_row(w->type, w->data, (uint64_t)rows, (uint64_t)cols, w->group,
                                (uint64_t)r, xt, st);
        }
    }
    free(xsum);
}

const dsq_backend dsq_backend_cpu = {
    .name = "cpu",
    .matmul = cpu_matmul,
    .get_row = widen_row,
};
