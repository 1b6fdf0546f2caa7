/* A weight matrix on the device and the two ways kernels read it: one element (any type, through
 * the shared quant headers), and one row dotted with up to NT activation vectors by a whole warp
 * with 16-byte loads (the fused dequant GEMV inner loop). The dot follows quant/dot.h's
 * definition per 16-byte chunk: q8 d * sum(q x), q4 d * sum(q x) + m * sum(x), fp32 sums; q6
 * per run of 32 (16 bytes of nibbles and 8 of top bits) d * sum((u - 32) x). */
#ifndef DSQ_DMATRIX_CUH
#define DSQ_DMATRIX_CUH

#include <cuda_fp16.h>
#include <stdint.h>

#include "q4.h"
#include "q6.h"
#include "q8.h"
extern "C" {
#include "types.h"
}

struct dmat {
    const uint8_t *data; /* device */
    uint32_t type;
    int rows, cols;
    uint32_t group;
};

/* Elements one lane reads in one 16-byte load; rows of other widths take a per-element path. */
static inline __host__ __device__ int dmat_chunk(uint32_t type)
{
    return type == DSQ_TYPE_Q4 || type == DSQ_TYPE_Q6 ? 32
           : type == DSQ_TYPE_Q8                    ? 16
           : type == DSQ_TYPE_F32                   ? 4
                                                    : 8;
}

__device__ __forceinline__ float dev_f16(uint16_t h)
{
    return __half2float(__ushort_as_half(h));
}

__device__ __forceinline__ float dev_bf16(uint16_t h)
{
    return __uint_as_float((uint32_t)h << 16);
}

__device__ inline float dmat_get(const dmat &w, int r, int k)
{
    const size_t i = (size_t)r * w.cols + k;
    switch (w.type) {
    case DSQ_TYPE_F32:
        return ((const float *)w.data)[i];
    case DSQ_TYPE_F16:
        return dev_f16(((const uint16_t *)w.data)[i]);
    case DSQ_TYPE_BF16:
        return dev_bf16(((const uint16_t *)w.data)[i]);
    case DSQ_TYPE_Q8:
        return dsq_q8_get(w.data, w.rows, w.cols, w.group, r, k);
    case DSQ_TYPE_Q6:
        return dsq_q6_get(w.data, w.rows, w.cols, w.group, r, k);
    default:
        return dsq_q4_get(w.data, w.rows, w.cols, w.group, r, k);
    }
}

__device__ __forceinline__ float dot4(float4 a, float b0, float b1, float b2, float b3)
{
    return a.x * b0 + a.y * b1 + a.z * b2 + a.w * b3;
}

/* acc[t] += scale * (wv[0..N) . x[t * xs + k ..]) for t < nt, summed in order in chunks of
 * four: the end of warp_row_dot's paths whose weights unpack to floats (q8, q6, bf16, f16). */
template <int NT, int N>
__device__ __forceinline__ void add_token_dots(const float (&wv)[N], float scale, const float *x,
                                               size_t xs, size_t k, int nt, float (&acc)[NT])
{
#pragma unroll
    for (int t = 0; t < NT; t++) {
        if (t >= nt)
            break;
        const float4 *xv = (const float4 *)(x + t * xs + k);
        float s = 0;
#pragma unroll
        for (int j = 0; j < N / 4; j++)
            s += dot4(xv[j], wv[4 * j], wv[4 * j + 1], wv[4 * j + 2], wv[4 * j + 3]);
        acc[t] += scale * s;
    }
}

/* acc[t] (this lane's partial) = row r of w . x[t * xs ..] for t < nt. Sum across the warp
 * with warp_sum. On the 16-byte path (cols a multiple of dmat_chunk) x is 16-byte aligned. */
template <int NT>
__device__ __forceinline__ void warp_row_dot(const dmat &w, int r, const float *x, size_t xs,
                                             int nt, float (&acc)[NT])
{
    const int lane = threadIdx.x & 31;
    const size_t K = (size_t)w.cols;
#pragma unroll
    for (int t = 0; t < NT; t++)
        acc[t] = 0;
    if (K % dmat_chunk(w.type) != 0) { /* odd widths: one element per lane per step */
        for (size_t k = lane; k < K; k += 32) {
            const float wk = dmat_get(w, r, (int)k);
#pragma unroll
            for (int t = 0; t < NT; t++)
                if (t < nt)
                    acc[t] += wk * x[t * xs + k];
        }
        return;
    }
    switch (w.type) {
    case DSQ_TYPE_Q8: {
        const uint8_t *row = w.data + (size_t)r * K;
        const uint16_t *sc =
            (const uint16_t *)(w.data + (size_t)w.rows * K) + (size_t)r * (K / w.group);
        for (size_t k = (size_t)lane * 16; k < K; k += 512) {
            const int4 q = __ldg((const int4 *)(row + k));
            const float d = dev_f16(__ldg(sc + k / w.group));
            const int32_t qw[4] = {q.x, q.y, q.z, q.w};
            float wv[16];
#pragma unroll
            for (int j = 0; j < 16; j++)
                wv[j] = (float)(int8_t)(qw[j / 4] >> (8 * (j % 4)));
            add_token_dots(wv, d, x, xs, k, nt, acc);
        }
        break;
    }
    case DSQ_TYPE_Q4: {
        const uint8_t *row = w.data + (size_t)r * K / 2;
        const uint16_t *dm =
            (const uint16_t *)(w.data + (size_t)w.rows * K / 2) + 2 * (size_t)r * (K / w.group);
        for (size_t k = (size_t)lane * 32; k < K; k += 1024) {
            const int4 q = __ldg((const int4 *)(row + k / 2));
            const uint32_t g = (uint32_t)(k / w.group);
            const float d = dev_f16(__ldg(dm + 2 * g)), m = dev_f16(__ldg(dm + 2 * g + 1));
            const uint32_t qw[4] = {(uint32_t)q.x, (uint32_t)q.y, (uint32_t)q.z, (uint32_t)q.w};
#pragma unroll
            for (int t = 0; t < NT; t++) {
                if (t >= nt)
                    break;
                const float4 *xv = (const float4 *)(x + t * xs + k);
                float s = 0, xsum = 0;
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    const uint32_t b = qw[j];
                    const float4 v0 = xv[2 * j], v1 = xv[2 * j + 1];
                    s += dot4(v0, (float)(b & 15), (float)((b >> 4) & 15), (float)((b >> 8) & 15),
                              (float)((b >> 12) & 15));
                    s += dot4(v1, (float)((b >> 16) & 15), (float)((b >> 20) & 15),
                              (float)((b >> 24) & 15), (float)(b >> 28));
                    xsum += (v0.x + v0.y + v0.z + v0.w) + (v1.x + v1.y + v1.z + v1.w);
                }
                acc[t] += d * s + m * xsum;
            }
        }
        break;
    }
    case DSQ_TYPE_Q6: {
        const uint8_t *row = w.data + (size_t)r * K / 2;
        const uint8_t *top = dsq_q6_high(w.data, (uint64_t)w.rows, K) + (size_t)r * K / 4;
        const uint16_t *sc =
            dsq_q6_scales(w.data, (uint64_t)w.rows, K) + (size_t)r * (K / w.group);
        for (size_t k = (size_t)lane * 32; k < K; k += 1024) {
            const int4 q = __ldg((const int4 *)(row + k / 2));
            const uint2 h = __ldg((const uint2 *)(top + k / 4));
            const float d = dev_f16(__ldg(sc + k / w.group));
            const uint32_t lw[4] = {(uint32_t)q.x, (uint32_t)q.y, (uint32_t)q.z, (uint32_t)q.w};
            const uint32_t hw[2] = {h.x, h.y};
            float wv[32]; /* u - 32 of the run's elements (quant/q6.h's bit order) */
#pragma unroll
            for (int j = 0; j < 32; j++) {
                const int b = j / 2 % 8, pair = (j & 1) * 2 + j / 16;
                const uint32_t nib = (lw[j / 8] >> (4 * (j % 8))) & 15;
                const uint32_t hi = (hw[b / 4] >> (8 * (b % 4) + 2 * pair)) & 3;
                wv[j] = (float)((int)(nib | hi << 4) - 32);
            }
            add_token_dots(wv, d, x, xs, k, nt, acc);
        }
        break;
    }
    case DSQ_TYPE_F32: {
        const float *row = (const float *)w.data + (size_t)r * K;
        for (size_t k = (size_t)lane * 4; k < K; k += 128) {
            const float4 v = __ldg((const float4 *)(row + k));
#pragma unroll
            for (int t = 0; t < NT; t++) {
                if (t >= nt)
                    break;
                const float4 xv = *(const float4 *)(x + t * xs + k);
                acc[t] += dot4(v, xv.x, xv.y, xv.z, xv.w);
            }
        }
        break;
    }
    default: { /* bf16, f16: 8 per load */
        const bool bf = w.type == DSQ_TYPE_BF16;
        const uint16_t *row = (const uint16_t *)w.data + (size_t)r * K;
        for (size_t k = (size_t)lane * 8; k < K; k += 256) {
            const int4 q = __ldg((const int4 *)(row + k));
            const uint32_t qw[4] = {(uint32_t)q.x, (uint32_t)q.y, (uint32_t)q.z, (uint32_t)q.w};
            float wv[8];
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const uint16_t lo = (uint16_t)(qw[j] & 0xffff), hi = (uint16_t)(qw[j] >> 16);
                wv[2 * j] = bf ? dev_bf16(lo) : dev_f16(lo);
                wv[2 * j + 1] = bf ? dev_bf16(hi) : dev_f16(hi);
            }
            add_token_dots(wv, 1.0f, x, xs, k, nt, acc);
        }
        break;
    }
    }
}

__device__ __forceinline__ float warp_sum(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Sum (or max) of v over the block; every thread gets it. scratch: 32 floats of shared memory. */
__device__ inline float block_reduce(float v, bool is_max, float *scratch)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = is_max ? warp_max(v) : warp_sum(v);
    __syncthreads();
    if (lane == 0)
        scratch[warp] = v;
    __syncthreads();
    float r = lane < nw ? scratch[lane] : (is_max ? -INFINITY : 0.0f);
    r = is_max ? warp_max(r) : warp_sum(r);
    return r;
}

#endif
