/* CPU backend: rows are widened to f32 once and dotted with every token, fp32 accumulation,
 * rows split across OpenMP threads. Clear first; fast paths come with the quant types. */
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "dequant.h"
#include "types.h"

/* Below this many multiply-adds a parallel region costs more than it saves (and on a busy
 * machine spinning threads wait for descheduled ones). */
#define PARALLEL_MIN_WORK (1l << 20)

static void widen_row(const dsq_matrix *w, int r, float *out)
{
    dsq_dequant_row(w->type, w->data, (uint64_t)w->rows, (uint64_t)w->cols, w->group,
                    (uint64_t)r, out);
}

static float dot(const float *a, const float *b, int n)
{
    float sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int k = 0; k < n; k++)
        sum += a[k] * b[k];
    return sum;
}

static void cpu_matmul(const dsq_matrix *w, const float *x, float *y, int n)
{
    const int rows = w->rows, cols = w->cols;
#pragma omp parallel if ((long)rows * cols * n > PARALLEL_MIN_WORK)
    {
        float *row = malloc((size_t)cols * sizeof(float));
#pragma omp for schedule(static)
        for (int r = 0; r < rows; r++) {
            widen_row(w, r, row);
            for (int t = 0; t < n; t++)
                y[(size_t)t * rows + r] = dot(row, x + (size_t)t * cols, cols);
        }
        free(row);
    }
}

const dsq_backend dsq_backend_cpu = {
    .name = "cpu",
    .matmul = cpu_matmul,
    .get_row = widen_row,
};
