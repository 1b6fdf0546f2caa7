/* The tensor-core prefill GEMM (cuda/gemm.cu) against the CPU's reference dot at the real shapes
 * (1408x2048 and 2048x1408 experts, 576x2048 V2-Lite kv_a, 1536x5120 V2, 102400x2048 head) and
 * odd ones (rows and widths that are no multiple of the 64 x 64 x 32 tile), every type, group
 * sizes 32, 64 and 128, token counts 1 to 200; outputs poisoned first, accumulate mode too. Then
 * the measured crossover: GEMV and GEMM timed at each token count on expert-sized q4 and q8
 * weights, printed (never asserted) against GEMM_MIN_TOKENS.
 *
 * Bound: each operand is split as v = hi + lo in bf16 (8 significant bits each), so the split
 * misses at most 2^-16 |v|; the dropped lo.lo term is at most 2^-16 |w x|; each product is then
 * within 3 2^-16 |w x| of exact, and the 3K fp32 accumulations of the tensor cores (rounding
 * toward zero at worst, 2^-23 of a partial sum <= S) add 3 K 2^-23 S. The fp32 reference adds
 * K 2^-24 S of its own. A wrong tile index or scale moves a row by O(S). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_check.h"
#include "kernels.h"
#include "matrix_fixture.h"

static int passed, failed;

static void check_gemm(uint32_t type, int rows, int cols, uint32_t group, int n, bool accumulate)
{
    uint64_t bytes;
    uint8_t *m = random_matrix(type, rows, cols, group, &bytes);
    const size_t nx = (size_t)n * cols, ny = (size_t)n * rows;
    float *x = (float *)malloc(nx * sizeof(float)), *y = (float *)malloc(ny * sizeof(float));
    float *y0 = (float *)malloc(ny * sizeof(float));
    for (size_t i = 0; i < nx; i++)
        x[i] = uniform();
    for (size_t i = 0; i < ny; i++)
        y0[i] = uniform();
    uint8_t *dm;
    float *dx, *dy;
    CUDA_CHECK(cudaMalloc(&dm, bytes));
    CUDA_CHECK(cudaMalloc(&dx, nx * sizeof(float)));
    CUDA_CHECK(cudaMalloc(&dy, ny * sizeof(float)));
    CUDA_CHECK(cudaMemcpy(dm, m, bytes, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(dx, x, nx * sizeof(float), cudaMemcpyHostToDevice));
    if (accumulate)
        CUDA_CHECK(cudaMemcpy(dy, y0, ny * sizeof(float), cudaMemcpyHostToDevice));
    else
        CUDA_CHECK(cudaMemset(dy, 0xff, ny * sizeof(float))); /* NaN poison */
    const dmat w = {dm, type, rows, cols, group};
    CUDA_CHECK(launch_gemm(w, dx, n, dy, accumulate, 0));
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaMemcpy(y, dy, ny * sizeof(float), cudaMemcpyDeviceToHost));
    int bad = 0;
    double worst = 0;
    const int step = rows > 4096 ? rows / 512 + 1 : 1;
    for (int t = 0; t < n && bad < 3; t++)
        for (int r = 0; r < rows && bad < 3; r++) {
            const float got = y[(size_t)t * rows + r];
            if (isnan(got)) {
                bad++;
                fprintf(stderr, "  token %d row %d not written\n", t, r);
                continue;
            }
            if (r % step && r != rows - 1)
                continue;
            const float *xt = x + (size_t)t * cols;
            const double want = dsq_dot_row_ref(type, m, rows, cols, group, r, xt, NULL) +
                                (accumulate ? y0[(size_t)t * rows + r] : 0.0);
            const double S = magnitude(type, m, rows, cols, group, r, xt);
            const double bound = (3 * ldexp(1.0, -16) + 3.0 * cols * ldexp(1.0, -23) +
                                  cols * ldexp(1.0, -24)) * S +
                                 (accumulate ? ldexp(fabs(want), -23) : 0.0);
            const double diff = fabs(got - want);
            worst = fmax(worst, bound > 0 ? diff / bound : 0);
            if (!(diff <= bound) && bad++ < 3)
                fprintf(stderr, "  %s %dx%d n=%d token %d row %d: %.9g vs %.9g (bound %.3g)\n",
                        dsq_type_info(type)->name, rows, cols, n, t, r, got, want, bound);
        }
    printf("  gemm %-4s %6d x %-5d group %3u tokens %3d%s: %s (largest error %.2f of the "
           "bound)\n",
           dsq_type_info(type)->name, rows, cols, group, n, accumulate ? " +=" : "",
           bad ? "FAIL" : "ok", worst);
    bad ? failed++ : passed++;
    cudaFree(dm);
    cudaFree(dx);
    cudaFree(dy);
    free(m);
    free(x);
    free(y);
    free(y0);
}

/* Median of 9 timed runs (after a warm one) of launch_gemv or launch_gemm, in microseconds. */
static double time_us(const dmat &w, const float *dx, int n, float *dy, bool gemm)
{
    cudaEvent_t a, b;
    CUDA_CHECK(cudaEventCreate(&a));
    CUDA_CHECK(cudaEventCreate(&b));
    float t[9];
    for (int i = -1; i < 9; i++) {
        CUDA_CHECK(cudaEventRecord(a, 0));
        for (int rep = 0; rep < 10; rep++)
            CUDA_CHECK(gemm ? launch_gemm(w, dx, n, dy, false, 0)
                            : launch_gemv(w, dx, n, dy, false, 0));
        CUDA_CHECK(cudaEventRecord(b, 0));
        CUDA_CHECK(cudaEventSynchronize(b));
        float ms;
        CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
        if (i >= 0)
            t[i] = ms * 100; /* per launch, us */
    }
    for (int i = 0; i < 9; i++) /* insertion sort for the median */
        for (int j = i; j > 0 && t[j] < t[j - 1]; j--) {
            const float s = t[j];
            t[j] = t[j - 1];
            t[j - 1] = s;
        }
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    return t[4];
}

static void crossover(uint32_t type, int rows, int cols)
{
    uint64_t bytes;
    uint8_t *m = random_matrix(type, rows, cols, 64, &bytes);
    const int max_n = 256;
    float *x = (float *)malloc((size_t)max_n * cols * sizeof(float));
    for (size_t i = 0; i < (size_t)max_n * cols; i++)
        x[i] = uniform();
    uint8_t *dm;
    float *dx, *dy;
    CUDA_CHECK(cudaMalloc(&dm, bytes));
    CUDA_CHECK(cudaMalloc(&dx, (size_t)max_n * cols * sizeof(float)));
    CUDA_CHECK(cudaMalloc(&dy, (size_t)max_n * rows * sizeof(float)));
    CUDA_CHECK(cudaMemcpy(dm, m, bytes, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(dx, x, (size_t)max_n * cols * sizeof(float), cudaMemcpyHostToDevice));
    const dmat w = {dm, type, rows, cols, 64};
    int first_win = -1;
    printf("  crossover %s %dx%d (us per product; GEMM_MIN_TOKENS = %d):\n",
           dsq_type_info(type)->name, rows, cols, GEMM_MIN_TOKENS);
    for (int n = 8; n <= max_n; n *= 2) {
        const double v = time_us(w, dx, n, dy, false), g = time_us(w, dx, n, dy, true);
        printf("    tokens %3d: gemv %8.1f  gemm %8.1f%s\n", n, v, g, g < v ? "  gemm wins" : "");
        if (g < v && first_win < 0)
            first_win = n;
    }
    printf("  crossover %s %dx%d: gemm first wins at %d tokens\n", dsq_type_info(type)->name,
           rows, cols, first_win);
    cudaFree(dm);
    cudaFree(dx);
    cudaFree(dy);
    free(m);
    free(x);
}

int main(void)
{
    if (!gpu_available("test_gemm"))
        return 0;
    const uint32_t quant[] = {DSQ_TYPE_Q4, DSQ_TYPE_Q8};
    for (int q = 0; q < 2; q++)
        for (uint32_t g = 32; g <= 128; g *= 2) {
            check_gemm(quant[q], 1408, 2048, g, 64, false);
            check_gemm(quant[q], 2048, 1408, g, 37, false);
        }
    const uint32_t all[] = {DSQ_TYPE_Q4, DSQ_TYPE_Q8, DSQ_TYPE_BF16, DSQ_TYPE_F32, DSQ_TYPE_Q6};
    for (int i = 0; i < 5; i++) {
        const uint32_t g = dsq_type_info(all[i])->quantized ? 64 : 0;
        check_gemm(all[i], 576, 2048, g, 33, false);  /* V2-Lite kv_a: 512 + 64 */
        check_gemm(all[i], 1536, 5120, g, 65, false); /* V2 q_a */
        check_gemm(all[i], 100, 192, g, 1, false);    /* partial tiles of rows and tokens */
        check_gemm(all[i], 130, 320, g, 200, true);   /* accumulate into the residual */
    }
    check_gemm(DSQ_TYPE_F32, 77, 45, 0, 70, false); /* widths no tile or chunk divides */
    check_gemm(DSQ_TYPE_BF16, 33, 21, 0, 5, true);
    check_gemm(DSQ_TYPE_Q4, 102400, 2048, 64, 40, false); /* the head */
    crossover(DSQ_TYPE_Q4, 1408, 2048);
    crossover(DSQ_TYPE_Q8, 1408, 2048);
    crossover(DSQ_TYPE_Q4, 2048, 1408);
    printf("test_gemm: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
