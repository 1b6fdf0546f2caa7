/* Fused dequant matrix-vector products: the decode path. A warp owns a row and streams its
 * weights once with 16-byte loads, dotting them with up to 8 tokens at a time, so a batch of
 * 1..8 reads the weights once and 9..16 twice; no shared-memory staging of weights. */
#include "kernels.h"

#define WARPS 8 /* rows per block */

template <int NT>
__global__ void gemv_kernel(dmat w, const float *x, int n, float *y, bool accumulate)
{
    const int r = blockIdx.x * WARPS + (threadIdx.x >> 5), t0 = blockIdx.y * NT;
    if (r >= w.rows)
        return;
    const int nt = min(NT, n - t0);
    float acc[NT];
    warp_row_dot<NT>(w, r, x + (size_t)t0 * w.cols, (size_t)w.cols, nt, acc);
#pragma unroll
    for (int t = 0; t < NT; t++) {
        const float v = warp_sum(acc[t]);
        if ((threadIdx.x & 31) == 0 && t < nt) {
            float *o = y + (size_t)(t0 + t) * w.rows + r;
            *o = accumulate ? *o + v : v;
        }
    }
}

cudaError_t launch_gemv(const dmat &w, const float *x, int n, float *y, bool accumulate,
                        cudaStream_t s)
{
    const unsigned blocks = (unsigned)((w.rows + WARPS - 1) / WARPS);
    if (n == 1)
        gemv_kernel<1><<<dim3(blocks, 1), WARPS * 32, 0, s>>>(w, x, n, y, accumulate);
    else if (n == 2)
        gemv_kernel<2><<<dim3(blocks, 1), WARPS * 32, 0, s>>>(w, x, n, y, accumulate);
    else if (n <= 4)
        gemv_kernel<4><<<dim3(blocks, 1), WARPS * 32, 0, s>>>(w, x, n, y, accumulate);
    else
        gemv_kernel<8>
            <<<dim3(blocks, (unsigned)((n + 7) / 8)), WARPS * 32, 0, s>>>(w, x, n, y, accumulate);
    return cudaGetLastError();
}

__global__ void expert_gate_up_kernel(const dmat *gates, const dmat *ups, const int *ids, int k,
                                      const float *x, int hidden, int inter, float *h)
{
    const int r = blockIdx.x * WARPS + (threadIdx.x >> 5), slot = blockIdx.y;
    if (r >= inter)
        return;
    const int e = ids[slot];
    if (!gates[e].data) { /* in host memory: the host adds its output */
        if ((threadIdx.x & 31) == 0)
            h[(size_t)slot * inter + r] = 0.0f;
        return;
    }
    const float *xt = x + (size_t)(slot / k) * hidden;
    float g[1], u[1];
    warp_row_dot<1>(gates[e], r, xt, hidden, 1, g);
    warp_row_dot<1>(ups[e], r, xt, hidden, 1, u);
    const float gv = warp_sum(g[0]), uv = warp_sum(u[0]);
    if ((threadIdx.x & 31) == 0)
        h[(size_t)slot * inter + r] = gv / (1.0f + expf(-gv)) * uv;
}

cudaError_t launch_expert_gate_up(const dmat *gates, const dmat *ups, const int *ids, int k,
                                  const float *x, int n, int hidden, int inter, float *h,
                                  cudaStream_t s)
{
    dim3 grid((unsigned)((inter + WARPS - 1) / WARPS), (unsigned)(n * k));
    expert_gate_up_kernel<<<grid, WARPS * 32, 0, s>>>(gates, ups, ids, k, x, hidden, inter, h);
    return cudaGetLastError();
}

__global__ void expert_down_kernel(const dmat *downs, const int *ids, const float *h, int inter,
                                   int hidden, float *y)
{
    const int r = blockIdx.x * WARPS + (threadIdx.x >> 5), slot = blockIdx.y;
    if (r >= hidden)
        return;
    const dmat &w = downs[ids[slot]];
    if (!w.data) {
        if ((threadIdx.x & 31) == 0)
            y[(size_t)slot * hidden + r] = 0.0f;
        return;
    }
    float acc[1];
    warp_row_dot<1>(w, r, h + (size_t)slot * inter, inter, 1, acc);
    const float v = warp_sum(acc[0]);
    if ((threadIdx.x & 31) == 0)
        y[(size_t)slot * hidden + r] = v;
}

cudaError_t launch_expert_down(const dmat *downs, const int *ids, int n_slots, const float *h,
                               int inter, int hidden, float *y, cudaStream_t s)
{
    dim3 grid((unsigned)((hidden + WARPS - 1) / WARPS), (unsigned)n_slots);
    expert_down_kernel<<<grid, WARPS * 32, 0, s>>>(downs, ids, h, inter, hidden, y);
    return cudaGetLastError();
}

__global__ void mla_value_kernel(dmat kv_b, const float *o_lat, int n_heads, int nope, int vd,
                                 float *attn)
{
    const int i = blockIdx.x * WARPS + (threadIdx.x >> 5), th = blockIdx.y; /* th = t * nh + h */
    if (i >= vd)
        return;
    const int h = th % n_heads, row = h * (nope + vd) + nope + i;
    float acc[1];
    warp_row_dot<1>(kv_b, row, o_lat + (size_t)th * kv_b.cols, kv_b.cols, 1, acc);
    const float v = warp_sum(acc[0]);
    if ((threadIdx.x & 31) == 0)
        attn[(size_t)th * vd + i] = v;
}

cudaError_t launch_mla_value(const dmat &kv_b, const float *o_lat, int n, int n_heads, int nope,
                             int vd, float *attn, cudaStream_t s)
{
    dim3 grid((unsigned)((vd + WARPS - 1) / WARPS), (unsigned)(n * n_heads));
    mla_value_kernel<<<grid, WARPS * 32, 0, s>>>(kv_b, o_lat, n_heads, nope, vd, attn);
    return cudaGetLastError();
}

/* Counting sort of the n*k slots by expert, stable; one thread: a few hundred slots. */
__global__ void group_slots_kernel(const int *ids, int n_slots, int n_experts, int *order,
                                   int *starts)
{
    for (int e = 0; e <= n_experts; e++)
        starts[e] = 0;
    for (int s = 0; s < n_slots; s++)
        starts[ids[s] + 1]++;
    for (int e = 0; e < n_experts; e++)
        starts[e + 1] += starts[e];
    for (int s = 0; s < n_slots; s++) { /* starts[e] walks forward, then is restored below */
        order[starts[ids[s]]++] = s;
    }
    for (int e = n_experts; e > 0; e--)
        starts[e] = starts[e - 1];
    starts[0] = 0;
}

__global__ void gather_rows_kernel(const float *x, const int *order, int k, int hidden, float *xg)
{
    const int pos = blockIdx.x;
    const float *src = x + (size_t)(order[pos] / k) * hidden;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x)
        xg[(size_t)pos * hidden + i] = src[i];
}

__global__ void grouped_gate_up_kernel(const dmat *gates, const dmat *ups, const int *starts,
                                       const float *xg, int hidden, int inter, float *h)
{
    const int r = blockIdx.x * WARPS + (threadIdx.x >> 5), e = blockIdx.y;
    if (r >= inter || !gates[e].data) /* not on the device: no h rows, zero y rows below */
        return;
    for (int c = starts[e]; c < starts[e + 1]; c += 8) {
        const int nt = min(8, starts[e + 1] - c);
        float g[8], u[8];
        warp_row_dot<8>(gates[e], r, xg + (size_t)c * hidden, hidden, nt, g);
        warp_row_dot<8>(ups[e], r, xg + (size_t)c * hidden, hidden, nt, u);
#pragma unroll
        for (int t = 0; t < 8; t++) {
            const float gv = warp_sum(g[t]), uv = warp_sum(u[t]);
            if ((threadIdx.x & 31) == 0 && t < nt)
                h[(size_t)(c + t) * inter + r] = gv / (1.0f + expf(-gv)) * uv;
        }
    }
}

__global__ void grouped_down_kernel(const dmat *downs, const int *order, const int *starts,
                                    const float *h, int inter, int hidden, float *y)
{
    const int r = blockIdx.x * WARPS + (threadIdx.x >> 5), e = blockIdx.y;
    if (r >= hidden)
        return;
    if (!downs[e].data) {
        for (int c = starts[e] + (threadIdx.x & 31); c < starts[e + 1]; c += 32)
            y[(size_t)order[c] * hidden + r] = 0.0f;
        return;
    }
    for (int c = starts[e]; c < starts[e + 1]; c += 8) {
        const int nt = min(8, starts[e + 1] - c);
        float acc[8];
        warp_row_dot<8>(downs[e], r, h + (size_t)c * inter, inter, nt, acc);
#pragma unroll
        for (int t = 0; t < 8; t++) {
            const float v = warp_sum(acc[t]);
            if ((threadIdx.x & 31) == 0 && t < nt)
                y[(size_t)order[c + t] * hidden + r] = v;
        }
    }
}

cudaError_t launch_experts_grouped(const dmat *gates, const dmat *ups, const dmat *downs,
                                   const int *ids, int n, int k, int n_experts, const float *x,
                                   int hidden, int inter, int *order, int *starts, float *xg,
                                   float *h, float *y, cudaStream_t s)
{
    group_slots_kernel<<<1, 1, 0, s>>>(ids, n * k, n_experts, order, starts);
    gather_rows_kernel<<<n * k, 256, 0, s>>>(x, order, k, hidden, xg);
    grouped_gate_up_kernel<<<dim3((unsigned)((inter + WARPS - 1) / WARPS), (unsigned)n_experts),
                             WARPS * 32, 0, s>>>(gates, ups, starts, xg, hidden, inter, h);
    grouped_down_kernel<<<dim3((unsigned)((hidden + WARPS - 1) / WARPS), (unsigned)n_experts),
                          WARPS * 32, 0, s>>>(downs, order, starts, h, inter, hidden, y);
    return cudaGetLastError();
}
