/* The fused dequant GEMV (cuda/matvec.cu) and the routed-expert kernels against the CPU's
 * reference dot (quant/dot.h, dsq_dot_row_ref) for q8, q4, bf16 and f32 weights at the real
 * shapes (2048x1408 and 1408x2048 experts, 4096x512 latent, 1536x5120 V2, 102400x2048 head) and
 * batches 1..16. Outputs are poisoned first, so an unwritten row fails.
 *
 * Bound: both sides sum the same K products in fp32 in different orders; each rounding is at
 * most 2^-24 of a partial sum no larger than S = sum_k |w_k x_k| (q4: (|d q| + |m|) |x|), so
 * |gpu - cpu| <= 2 K 2^-24 S. A wrong index or scale moves a row by O(S). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_check.h"
#include "kernels.h"
#include "matrix_fixture.h"
extern "C" {
#include "dot.h"
}

static int passed, failed;

static void check_gemv(uint32_t type, int rows, int cols, uint32_t group, int n)
{
    uint64_t bytes;
    uint8_t *m = random_matrix(type, rows, cols, group, &bytes);
    float *x = (float *)malloc((size_t)n * cols * sizeof(float));
    float *y = (float *)malloc((size_t)n * rows * sizeof(float));
    for (size_t i = 0; i < (size_t)n * cols; i++)
        x[i] = uniform();
    uint8_t *dm;
    float *dx, *dy;
    CUDA_CHECK(cudaMalloc(&dm, bytes));
    CUDA_CHECK(cudaMalloc(&dx, (size_t)n * cols * sizeof(float)));
    CUDA_CHECK(cudaMalloc(&dy, (size_t)n * rows * sizeof(float)));
    CUDA_CHECK(cudaMemcpy(dm, m, bytes, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(dx, x, (size_t)n * cols * sizeof(float), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemset(dy, 0xff, (size_t)n * rows * sizeof(float))); /* NaN poison */
    dmat w = {dm, type, rows, cols, group};
    CUDA_CHECK(launch_gemv(w, dx, n, dy, false, 0));
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaMemcpy(y, dy, (size_t)n * rows * sizeof(float), cudaMemcpyDeviceToHost));
    /* every row must be written; the reference runs on a spread of rows (all for small shapes) */
    int bad = 0;
    double worst = 0;
    const int step = rows > 4096 ? rows / 1024 + 1 : 1;
    for (int t = 0; t < n && !bad; t++)
        for (int r = 0; r < rows; r++) {
            const float got = y[(size_t)t * rows + r];
            if (isnan(got)) {
                bad++;
                break;
            }
            if (r % step && r != rows - 1)
                continue;
            const float *xt = x + (size_t)t * cols;
            const float want = dsq_dot_row_ref(type, m, rows, cols, group, r, xt, NULL);
            const double bound =
                2.0 * cols * ldexp(1.0, -24) * magnitude(type, m, rows, cols, group, r, xt);
            const double diff = fabs((double)got - want);
            if (bound > 0 && diff / bound > worst)
                worst = diff / bound;
            if (diff > bound) {
                if (bad++ < 3)
                    fprintf(stderr, "  %s %dx%d n=%d token %d row %d: %.9g vs %.9g (bound %.3g)\n",
                            dsq_type_info(type)->name, rows, cols, n, t, r, got, want, bound);
            }
        }
    printf("  gemv %-4s %6d x %-5d batch %2d: %s (largest error %.2f of the bound)\n",
           dsq_type_info(type)->name, rows, cols, n, bad ? "FAIL" : "ok", worst);
    bad ? failed++ : passed++;
    cudaFree(dm);
    cudaFree(dx);
    cudaFree(dy);
    free(m);
    free(x);
    free(y);
}

/* Gate/up with SwiGLU, then down, over a table of 8 experts chosen per slot (one block row per
 * slot, or grouped by expert), against the reference dot and the CPU's SwiGLU formula. Gate/up:
 * each dot's bound (as above) carried through silu(g) u, whose slopes are at most 1.1 |u| in g
 * and |g| in u, plus 1e-6 relative for expf's last bits; down: against the reference dot of the
 * device's own h, with the bound above. */
static void check_experts(uint32_t type, int hidden, int inter, int n, int k, bool grouped)
{
    const int ne = 8;
    /* groups of 64 where both widths hold them (the 64 x 32 experts take 32) */
    const uint32_t group =
        type == DSQ_TYPE_Q4 || type == DSQ_TYPE_Q8 ? (inter % 64 == 0 ? 64u : 32u) : 0;
    uint8_t *host[3][8], *dev[3][8];
    dmat table[3][8];
    for (int p = 0; p < 3; p++)
        for (int e = 0; e < ne; e++) {
            uint64_t bytes;
            const int rows = p < 2 ? inter : hidden, cols = p < 2 ? hidden : inter;
            host[p][e] = random_matrix(type, rows, cols, group, &bytes);
            CUDA_CHECK(cudaMalloc(&dev[p][e], bytes));
            CUDA_CHECK(cudaMemcpy(dev[p][e], host[p][e], bytes, cudaMemcpyHostToDevice));
            table[p][e] = dmat{dev[p][e], type, rows, cols, group};
        }
    int *ids = (int *)malloc((size_t)n * k * sizeof(int));
    for (int i = 0; i < n * k; i++)
        ids[i] = (int)(next_u32() % ne);
    float *x = (float *)malloc((size_t)n * hidden * sizeof(float));
    for (size_t i = 0; i < (size_t)n * hidden; i++)
        x[i] = uniform();
    dmat *dtable;
    int *dids;
    float *dx, *dh, *dy;
    CUDA_CHECK(cudaMalloc(&dtable, sizeof table));
    CUDA_CHECK(cudaMemcpy(dtable, table, sizeof table, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMalloc(&dids, (size_t)n * k * sizeof(int)));
    CUDA_CHECK(cudaMemcpy(dids, ids, (size_t)n * k * sizeof(int), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMalloc(&dx, (size_t)n * hidden * sizeof(float)));
    CUDA_CHECK(cudaMemcpy(dx, x, (size_t)n * hidden * sizeof(float), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMalloc(&dh, (size_t)n * k * inter * sizeof(float)));
    CUDA_CHECK(cudaMalloc(&dy, (size_t)n * k * hidden * sizeof(float)));
    CUDA_CHECK(cudaMemset(dh, 0xff, (size_t)n * k * inter * sizeof(float)));
    CUDA_CHECK(cudaMemset(dy, 0xff, (size_t)n * k * hidden * sizeof(float)));
    int *dorder = NULL, *dstarts = NULL, *order = (int *)malloc((size_t)n * k * sizeof(int));
    float *dxg = NULL;
    if (grouped) {
        CUDA_CHECK(cudaMalloc(&dorder, (size_t)n * k * sizeof(int)));
        CUDA_CHECK(cudaMalloc(&dstarts, (ne + 1) * sizeof(int)));
        CUDA_CHECK(cudaMalloc(&dxg, (size_t)n * k * hidden * sizeof(float)));
        CUDA_CHECK(launch_experts_grouped(dtable, dtable + ne, dtable + 2 * ne, dids, n, k, ne, dx,
                                          hidden, inter, dorder, dstarts, dxg, dh, dy, 0));
    } else {
        CUDA_CHECK(
            launch_expert_gate_up(dtable, dtable + ne, dids, k, dx, n, hidden, inter, dh, 0));
        CUDA_CHECK(launch_expert_down(dtable + 2 * ne, dids, n * k, dh, inter, hidden, dy, 0));
    }
    CUDA_CHECK(cudaDeviceSynchronize());
    float *hd = (float *)malloc((size_t)n * k * inter * sizeof(float));
    float *h = (float *)malloc((size_t)n * k * inter * sizeof(float));
    float *y = (float *)malloc((size_t)n * k * hidden * sizeof(float));
    CUDA_CHECK(cudaMemcpy(hd, dh, (size_t)n * k * inter * sizeof(float), cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(y, dy, (size_t)n * k * hidden * sizeof(float), cudaMemcpyDeviceToHost));
    int bad = 0;
    if (grouped) { /* h is in expert order: a permutation of the slots, sorted by expert */
        CUDA_CHECK(cudaMemcpy(order, dorder, (size_t)n * k * sizeof(int), cudaMemcpyDeviceToHost));
        char *seen = (char *)calloc((size_t)n * k, 1);
        for (int pos = 0; pos < n * k; pos++) {
            const int s_ = order[pos];
            if (s_ < 0 || s_ >= n * k || seen[s_] || (pos && ids[order[pos - 1]] > ids[s_])) {
                bad++;
                break;
            }
            seen[s_] = 1;
            memcpy(h + (size_t)s_ * inter, hd + (size_t)pos * inter, (size_t)inter * sizeof(float));
        }
        free(seen);
    } else {
        memcpy(h, hd, (size_t)n * k * inter * sizeof(float));
    }
    for (int s = 0; s < n * k && bad < 3; s++) {
        const int e = ids[s];
        const float *xt = x + (size_t)(s / k) * hidden;
        for (int r = 0; r < inter; r++) {
            const float g = dsq_dot_row_ref(type, host[0][e], inter, hidden, group, r, xt, NULL);
            const float u = dsq_dot_row_ref(type, host[1][e], inter, hidden, group, r, xt, NULL);
            const double want = g / (1.0f + expf(-g)) * u;
            const double sg = magnitude(type, host[0][e], inter, hidden, group, r, xt);
            const double su = magnitude(type, host[1][e], inter, hidden, group, r, xt);
            const double scale =
                2.0 * hidden * ldexp(1.0, -24) * (sg * 1.1 * fabs(u) + su * fabs(g)) +
                1e-6 * fabs(want);
            if (!(fabs(h[(size_t)s * inter + r] - want) <= scale) && bad++ < 3)
                fprintf(stderr, "  experts gate/up slot %d row %d: %.9g vs %.9g\n", s, r,
                        h[(size_t)s * inter + r], want);
        }
        /* down from the device's own h, so only the down product is judged here */
        for (int r = 0; r < hidden; r++) {
            const float *hs = h + (size_t)s * inter;
            const float want = dsq_dot_row_ref(type, host[2][e], hidden, inter, group, r, hs, NULL);
            const double bound = 2.0 * inter * ldexp(1.0, -24) *
                                 magnitude(type, host[2][e], hidden, inter, group, r, hs);
            if (!(fabs(y[(size_t)s * hidden + r] - want) <= bound) && bad++ < 3)
                fprintf(stderr, "  experts down slot %d row %d: %.9g vs %.9g\n", s, r,
                        y[(size_t)s * hidden + r], want);
        }
    }
    printf("  experts%s %-4s %dx%d, %d tokens x top-%d: %s\n", grouped ? " grouped" : "",
           dsq_type_info(type)->name, inter, hidden, n, k, bad ? "FAIL" : "ok");
    bad ? failed++ : passed++;
    for (int p = 0; p < 3; p++)
        for (int e = 0; e < ne; e++) {
            cudaFree(dev[p][e]);
            free(host[p][e]);
        }
    cudaFree(dtable);
    cudaFree(dids);
    cudaFree(dx);
    cudaFree(dh);
    cudaFree(dy);
    cudaFree(dorder);
    cudaFree(dstarts);
    cudaFree(dxg);
    free(order);
    free(hd);
    free(ids);
    free(x);
    free(h);
    free(y);
}

int main(void)
{
    const char *name = "test_gemv_gpu";
    if (!gpu_available(name))
        return 0;
    const uint32_t types[] = {DSQ_TYPE_Q4, DSQ_TYPE_Q8, DSQ_TYPE_BF16, DSQ_TYPE_F32, DSQ_TYPE_Q6};
    const int shapes[][2] = {{1408, 2048}, {2048, 1408}, {4096, 512},
                             {1536, 5120}, {64, 32},     {160, 2048}};
    const int batches[] = {1, 2, 3, 5, 8, 11, 16};
    for (uint32_t ti = 0; ti < 5; ti++)
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
            for (size_t bi = 0; bi < sizeof batches / sizeof batches[0]; bi++) {
                const uint32_t type = types[ti];
                /* both group sizes, where the width holds them (64 x 32 takes 32 only) */
                const uint32_t wide = shapes[si][1] % 64 == 0 ? 32u << (bi % 2) : 32u;
                const uint32_t group = dsq_type_info(type)->quantized ? wide : 0;
                check_gemv(type, shapes[si][0], shapes[si][1], group, batches[bi]);
            }
    /* widths that are not a whole number of 16-byte loads take the per-element path */
    check_gemv(DSQ_TYPE_BF16, 50, 36, 0, 3);
    check_gemv(DSQ_TYPE_F32, 50, 30, 0, 9);
    check_gemv(DSQ_TYPE_Q6, 102400, 2048, 64, 1); /* the head, and its 6-bit form */
    for (uint32_t ti = 0; ti < 3; ti++) { /* the head: 102400 x 2048 */
        check_gemv(types[ti], 102400, 2048, types[ti] == DSQ_TYPE_BF16 ? 0 : 64, 1);
        check_gemv(types[ti], 102400, 2048, types[ti] == DSQ_TYPE_BF16 ? 0 : 64, 4);
    }
    for (uint32_t ti = 0; ti < 3; ti++) {
        for (int grouped = 0; grouped < 2; grouped++) {
            check_experts(types[ti], 2048, 1408, 1, 6, grouped);
            check_experts(types[ti], 2048, 1408, 5, 6, grouped);
            check_experts(types[ti], 2048, 1408, 12, 6, grouped); /* 9 slots per expert: 2 passes */
            check_experts(types[ti], 64, 32, 3, 2, grouped);
        }
    }
    printf("%s: %d passed, %d failed\n", name, passed, failed);
    return failed ? 1 : 0;
}
