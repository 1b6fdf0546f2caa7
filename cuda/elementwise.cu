/* Kernels that touch no weight matrix (or one row of it): embedding lookup, RMSNorm, SwiGLU,
 * the MoE router's softmax and selection, and the weighted combine of expert outputs. */
#include "kernels.h"

#define THREADS 256

__global__ void embed_kernel(dmat embed, const int *tokens, float *x)
{
    const int t = blockIdx.x, tok = tokens[t];
    for (int i = threadIdx.x; i < embed.cols; i += blockDim.x)
        x[(size_t)t * embed.cols + i] = dmat_get(embed, tok, i);
}

cudaError_t launch_embed(const dmat &embed, const int *tokens, int n, float *x, cudaStream_t s)
{
    embed_kernel<<<n, THREADS, 0, s>>>(embed, tokens, x);
    return cudaGetLastError();
}

__global__ void rmsnorm_kernel(const float *x, const float *w, int dim, float eps, float *out)
{
    __shared__ float scratch[32];
    const float *xr = x + (size_t)blockIdx.x * dim;
    float *o = out + (size_t)blockIdx.x * dim;
    float ss = 0;
    for (int i = threadIdx.x; i < dim; i += blockDim.x)
        ss += xr[i] * xr[i];
    ss = block_reduce(ss, false, scratch);
    const float scale = 1.0f / sqrtf(ss / (float)dim + eps);
    for (int i = threadIdx.x; i < dim; i += blockDim.x)
        o[i] = w[i] * (xr[i] * scale);
}

cudaError_t launch_rmsnorm(const float *x, const float *w, int n, int dim, float eps, float *out,
                           cudaStream_t s)
{
    rmsnorm_kernel<<<n, THREADS, 0, s>>>(x, w, dim, eps, out);
    return cudaGetLastError();
}

__global__ void swiglu_kernel(float *g, const float *u, size_t count)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < count;
         i += (size_t)gridDim.x * blockDim.x)
        g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

cudaError_t launch_swiglu(float *g, const float *u, size_t count, cudaStream_t s)
{
    const unsigned blocks = (unsigned)((count + THREADS - 1) / THREADS);
    const unsigned grid = blocks < 4096 ? blocks : 4096;
    swiglu_kernel<<<grid, THREADS, 0, s>>>(g, u, count);
    return cudaGetLastError();
}

/* One thread per token: the router's few hundred scores do not pay for more. */
__global__ void moe_route_kernel(float *scores, int n, moe_route_params p, int *ids, float *weights)
{
    const int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n)
        return;
    float *sc = scores + (size_t)t * p.n_experts;
    float mx = sc[0], sum = 0;
    for (int e = 1; e < p.n_experts; e++)
        mx = sc[e] > mx ? sc[e] : mx;
    for (int e = 0; e < p.n_experts; e++) {
        sc[e] = expf(sc[e] - mx);
        sum += sc[e];
    }
    for (int e = 0; e < p.n_experts; e++)
        sc[e] /= sum;
    moe_route_select(&p, sc, ids + (size_t)t * p.k, weights + (size_t)t * p.k);
}

cudaError_t launch_moe_route(float *scores, int n, const moe_route_params &p, int *ids,
                             float *weights, cudaStream_t s)
{
    moe_route_kernel<<<(n + 63) / 64, 64, 0, s>>>(scores, n, p, ids, weights);
    return cudaGetLastError();
}

__global__ void moe_combine_kernel(const float *y, const float *weights, const float *shared,
                                   const float *host, int k, int hidden, float *x)
{
    const int t = blockIdx.x;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) {
        float acc = 0;
        for (int j = 0; j < k; j++)
            acc += weights[t * k + j] * y[((size_t)t * k + j) * hidden + i];
        if (shared)
            acc += shared[(size_t)t * hidden + i];
        if (host)
            acc += host[(size_t)t * hidden + i];
        x[(size_t)t * hidden + i] += acc;
    }
}

cudaError_t launch_moe_combine(const float *y, const float *weights, const float *shared,
                               const float *host, int n, int k, int hidden, float *x,
                               cudaStream_t s)
{
    moe_combine_kernel<<<n, THREADS, 0, s>>>(y, weights, shared, host, k, hidden, x);
    return cudaGetLastError();
}
