/* CPU backend. q8/q4 matmuls round each token's activations once to int8 and run the integer
 * kernels of quant/qdot.h (VNNI or AVX2, else the scalar reference) in tiles of four weight
 * rows by two tokens; other types, and q8/q4 with f32 activations, dot each weight row with every
 * token through the fused float kernels of quant/dot.h. Rows are split across OpenMP threads in
 * blocks small enough to stay in cache while every token passes over them. get_row widens with
 * the reference dequantizer. */
#include "backend_cpu.h"

#include <stdatomic.h>
#include <stdlib.h>

#include <omp.h>

#include "backend.h"
#include "dequant.h"
#include "dot.h"
#include "qdot.h"
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

static atomic_bool f32_activations;

void dsq_cpu_set_int8_activations(bool on)
{
    atomic_store_explicit(&f32_activations, !on, memory_order_relaxed);
}

bool dsq_cpu_int8_activations(void)
{
    return !atomic_load_explicit(&f32_activations, memory_order_relaxed);
}

/* Rows per block: ROW_BLOCK, or fewer when there are too few rows to give every thread one. */
static int row_block(int rows)
{
    const int per_thread = (rows + omp_get_max_threads() - 1) / omp_get_max_threads();
    return per_thread < 1 ? 1 : per_thread < ROW_BLOCK ? per_thread : ROW_BLOCK;
}

/* The integer path; false (nothing written) if its buffer cannot be allocated. */
static bool matmul_int8(const dsq_matrix *w, const float *x, float *y, int n)
{
    const int rows = w->rows, cols = w->cols, rb = row_block(rows);
    const int blocks = (rows + rb - 1) / rb;
    const uint64_t xb = dsq_qx_bytes((uint64_t)cols, w->group);
    uint8_t *buf = malloc((size_t)n * xb);
    if (!buf)
        return false;
#pragma omp parallel if ((long)rows * cols * n > PARALLEL_MIN_WORK)
    {
#pragma omp for schedule(static)
        for (int t = 0; t < n; t++)
            dsq_qx_quantize(w->type, x + (size_t)t * cols, (uint64_t)cols, w->group,
                            dsq_qx_at(buf + (size_t)t * xb, (uint64_t)cols, w->group));
#pragma omp for schedule(static)
        for (int b = 0; b < blocks; b++) {
            const int r0 = b * rb, r1 = r0 + rb < rows ? r0 + rb : rows;
            for (int t = 0; t < n; t += 2) { /* tiles of 4 rows by 2 tokens */
                const int nt = n - t < 2 ? n - t : 2;
                dsq_qx xt[2];
                for (int j = 0; j < nt; j++)
                    xt[j] = dsq_qx_at(buf + (size_t)(t + j) * xb, (uint64_t)cols, w->group);
                for (int r = r0; r < r1; r += 4) {
                    const int nr = r1 - r < 4 ? r1 - r : 4;
                    dsq_qdot_tile(w->type, w->data, (uint64_t)rows, (uint64_t)cols, w->group,
                                  (uint64_t)r, nr, xt, nt, y + (size_t)t * rows + r,
                                  (size_t)rows);
                }
            }
        }
    }
    free(buf);
    return true;
}

static void cpu_matmul(const dsq_matrix *w, const float *x, float *y, int n)
{
    if ((w->type == DSQ_TYPE_Q8 || w->type == DSQ_TYPE_Q4) && dsq_cpu_int8_activations() &&
        matmul_int8(w, x, y, n))
        return;
    const int rows = w->rows, cols = w->cols, rb = row_block(rows);
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
