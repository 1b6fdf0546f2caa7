/* The q8, q4 and q6 element formulas of quant/q8.h, quant/q4.h and quant/q6.h give the same bits
 * on the GPU as on the host, over tensors of random codes and scales at every group size. */
#include <stdint.h>
#include <string.h>

#include "gpu_check.h"
#include "quant/q4.h"
#include "quant/q6.h"
#include "quant/q8.h"

/* Element i of a q8 (kind 0), q4 (1) or q6 (2) tensor. */
static inline __host__ __device__ float element(int kind, const uint8_t *base, uint64_t rows,
                                                uint64_t cols, uint64_t group, uint64_t i)
{
    return kind == 1   ? dsq_q4_get(base, rows, cols, group, i / cols, i % cols)
           : kind == 2 ? dsq_q6_get(base, rows, cols, group, i / cols, i % cols)
                       : dsq_q8_get(base, rows, cols, group, i / cols, i % cols);
}

__global__ void dequant_kernel(const uint8_t *base, int kind, uint64_t rows, uint64_t cols,
                               uint64_t group, float *out)
{
    uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < rows * cols)
        out[i] = element(kind, base, rows, cols, group, i);
}

int main(void)
{
    const char *name = "test_dequant_gpu";
    if (!gpu_available(name))
        return 0;
    const uint64_t rows = 37, cols = 1408;
    int bad = 0;
    uint64_t state = 88172645463325252ull;
    for (int kind = 0; kind < 3; kind++)
        for (uint64_t group = 32; group <= 128; group *= 2) {
            if (cols % group)
                continue;
            const uint64_t bytes = kind == 1   ? dsq_q4_bytes(rows, cols, group)
                                   : kind == 2 ? dsq_q6_bytes(rows, cols, group)
                                               : dsq_q8_bytes(rows, cols, group);
            const uint64_t codes = kind == 1   ? rows * cols / 2
                                   : kind == 2 ? rows * cols * 3 / 4
                                               : rows * cols;
            uint8_t *host = (uint8_t *)malloc(bytes);
            for (uint64_t i = 0; i < codes; i++) {
                state ^= state << 13, state ^= state >> 7, state ^= state << 17;
                host[i] = (uint8_t)state;
            }
            uint16_t *scales = (uint16_t *)(host + codes); /* finite f16 values */
            for (uint64_t i = 0; i < (bytes - codes) / 2; i++)
                scales[i] = dsq_f32_to_f16((float)((int)(i % 97) - 48) * 0.0013f);
            uint8_t *dev;
            float *dout, *out = (float *)malloc(rows * cols * 4);
            CUDA_CHECK(cudaMalloc(&dev, bytes));
            CUDA_CHECK(cudaMalloc(&dout, rows * cols * 4));
            CUDA_CHECK(cudaMemcpy(dev, host, bytes, cudaMemcpyHostToDevice));
            dequant_kernel<<<(unsigned)((rows * cols + 255) / 256), 256>>>(dev, kind, rows, cols,
                                                                           group, dout);
            CUDA_CHECK(cudaGetLastError());
            CUDA_CHECK(cudaMemcpy(out, dout, rows * cols * 4, cudaMemcpyDeviceToHost));
            for (uint64_t i = 0; i < rows * cols; i++) {
                const float h = element(kind, host, rows, cols, group, i);
                bad += memcmp(&h, &out[i], 4) != 0;
            }
            cudaFree(dev);
            cudaFree(dout);
            free(host);
            free(out);
        }
    if (bad)
        fprintf(stderr, "%d elements differ between host and device\n", bad);
    printf("%s: %d passed, %d failed\n", name, bad ? 0 : 1, bad ? 1 : 0);
    return bad != 0;
}
