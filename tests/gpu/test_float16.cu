/* The bf16/f16 conversions of quant/float16.h give the same bits on the GPU as on the host, for
 * every 16-bit pattern and for float inputs around every rounding boundary. */
#include <stdint.h>
#include <string.h>

#include "gpu_check.h"
#include "quant/float16.h"

__global__ void widen_kernel(const uint16_t *h, float *bf, float *f, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        bf[i] = dsq_bf16_to_f32(h[i]);
        f[i] = dsq_f16_to_f32(h[i]);
    }
}

__global__ void narrow_kernel(const float *x, uint16_t *bf, uint16_t *f, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        bf[i] = dsq_f32_to_bf16(x[i]);
        f[i] = dsq_f32_to_f16(x[i]);
    }
}

int main(void)
{
    const char *name = "test_float16_gpu";
    if (!gpu_available(name))
        return 0;
    const int n = 1 << 16;
    uint16_t *h16 = (uint16_t *)malloc(n * 2), *d16, *dbf_out, *df_out;
    /* low halves: bf16's round-to-nearest-even tie (0x8000) and its neighbours, f16's (a
     * 0x1000 remainder below its 10 kept bits) and its neighbours, and a spread between */
    enum { K = 10 };
    const uint32_t low[K] = {0,      0x0fff, 0x1000, 0x1001, 0x5555,
                             0x7fff, 0x8000, 0x8001, 0xaaaa, 0xffff};
    float *x = (float *)malloc(K * n * sizeof(float)), *dx, *dbf, *df;
    for (int i = 0; i < n; i++)
        h16[i] = (uint16_t)i;
    for (int i = 0; i < K * n; i++) { /* every high half with each low half below */
        uint32_t u = ((uint32_t)(i / K) << 16) + low[i % K];
        memcpy(&x[i], &u, 4);
    }
    float *bf = (float *)malloc(n * 4), *f = (float *)malloc(n * 4);
    uint16_t *nbf = (uint16_t *)malloc(K * n * 2), *nf = (uint16_t *)malloc(K * n * 2);
    CUDA_CHECK(cudaMalloc(&d16, n * 2));
    CUDA_CHECK(cudaMalloc(&dbf, n * 4));
    CUDA_CHECK(cudaMalloc(&df, n * 4));
    CUDA_CHECK(cudaMalloc(&dx, K * n * 4));
    CUDA_CHECK(cudaMalloc(&dbf_out, K * n * 2));
    CUDA_CHECK(cudaMalloc(&df_out, K * n * 2));
    CUDA_CHECK(cudaMemcpy(d16, h16, n * 2, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(dx, x, K * n * 4, cudaMemcpyHostToDevice));
    widen_kernel<<<n / 256, 256>>>(d16, dbf, df, n);
    narrow_kernel<<<K * n / 256, 256>>>(dx, dbf_out, df_out, K * n);
    CUDA_CHECK(cudaGetLastError());
    CUDA_CHECK(cudaMemcpy(bf, dbf, n * 4, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(f, df, n * 4, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(nbf, dbf_out, K * n * 2, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(nf, df_out, K * n * 2, cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int i = 0; i < n; i++) {
        float hb = dsq_bf16_to_f32(h16[i]), hf = dsq_f16_to_f32(h16[i]);
        bad += memcmp(&hb, &bf[i], 4) != 0;
        bad += memcmp(&hf, &f[i], 4) != 0;
    }
    for (int i = 0; i < K * n; i++)
        bad += nbf[i] != dsq_f32_to_bf16(x[i]) || nf[i] != dsq_f32_to_f16(x[i]);
    if (bad)
        fprintf(stderr, "%d conversions differ between host and device\n", bad);
    printf("%s: %d passed, %d failed\n", name, bad ? 0 : 1, bad ? 1 : 0);
    return bad != 0;
}
