/* Prefill matrix products on the tensor cores: y[t][r] (+)= w . x[t] for many tokens, with bf16
 * MMA (wmma 16x16x16, fp32 accumulation) over tiles dequantized into shared memory. bf16 alone
 * would round weights and activations to 8 significant bits, far outside the fp32 engine's
 * logit bound, so each operand is split in two bf16 (v = hi + lo, to 16 bits) and three products
 * are summed (hi.hi + hi.lo + lo.hi; lo.lo is below 2^-16 of the term). Any weight type and
 * width: q4 and q8 tiles are staged 8 weights per load (their rows are multiples of 32), other
 * types element by element through dmat_get, zero-padded past the row's end. */
#include <cuda_bf16.h>
#include <mma.h>

#include "bf16_split.h"
#include "kernels.h"

using namespace nvcuda;

#define TM 64  /* tokens per block */
#define TN 64  /* weight rows per block */
#define TK 32  /* k per shared-memory stage */
#define LDS 40 /* bf16 row stride of the staged tiles (multiple of 8, rows 32-byte aligned) */
#define LDC 68 /* float row stride of the output tile */

/* operand tiles hold bf16 bits (cuda/bf16_split.h); wmma reads them as __nv_bfloat16 */
__device__ __forceinline__ const __nv_bfloat16 *as_bf16(const uint16_t *p)
{
    return reinterpret_cast<const __nv_bfloat16 *>(p);
}

/* Weights (r, k..k+7) of a q4 or q8 row (K a multiple of 32, so the 8 share a group and lie
 * inside the row) from one 4- or 8-byte load and one scale, split into hi and lo; a row past the
 * matrix stages zeros. */
__device__ __forceinline__ void stage_packed(const dmat &w, int r, int k, uint16_t *hi,
                                             uint16_t *lo)
{
    float v[8];
    if (r >= w.rows) {
#pragma unroll
        for (int i = 0; i < 8; i++)
            v[i] = 0.0f;
    } else if (w.type == DSQ_TYPE_Q4) {
        const size_t K = (size_t)w.cols, groups = K / w.group;
        const uint32_t q = *(const uint32_t *)(w.data + (size_t)r * K / 2 + k / 2);
        const uint16_t *dm = (const uint16_t *)(w.data + (size_t)w.rows * K / 2) +
                             2 * ((size_t)r * groups + (uint32_t)k / w.group);
        const float d = dev_f16(dm[0]), m = dev_f16(dm[1]);
#pragma unroll
        for (int i = 0; i < 8; i++)
            v[i] = d * (float)((q >> (4 * i)) & 15) + m;
    } else { /* q8 */
        const size_t K = (size_t)w.cols, groups = K / w.group;
        const uint2 q = *(const uint2 *)(w.data + (size_t)r * K + k);
        const float d =
            dev_f16(((const uint16_t *)(w.data + (size_t)w.rows * K))[(size_t)r * groups +
                                                                      (uint32_t)k / w.group]);
#pragma unroll
        for (int i = 0; i < 8; i++)
            v[i] = d * (float)(int8_t)((i < 4 ? q.x : q.y) >> (8 * (i & 3)));
    }
#pragma unroll
    for (int i = 0; i < 8; i++)
        bf16_split(v[i], &hi[i], &lo[i]);
}

/* 8 warps: 4 along tokens (16 each) x 2 along rows (32 each, two 16-wide fragments). */
__global__ void __launch_bounds__(256) gemm_kernel(dmat w, const float *x, int n, float *y,
                                                   bool accumulate)
{
    __shared__ __align__(32) uint16_t a_hi[TM * LDS], a_lo[TM * LDS];
    __shared__ __align__(32) uint16_t b_hi[TN * LDS], b_lo[TN * LDS];
    __shared__ __align__(32) float c[TM * LDC];
    const int r0 = blockIdx.x * TN, t0 = blockIdx.y * TM, K = w.cols;
    const int warp = threadIdx.x >> 5, wm = warp & 3, wn = warp >> 2;
    const bool packed = w.type == DSQ_TYPE_Q4 || w.type == DSQ_TYPE_Q8;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2];
    wmma::fill_fragment(acc[0], 0.0f);
    wmma::fill_fragment(acc[1], 0.0f);
    for (int k0 = 0; k0 < K; k0 += TK) {
        /* stage: 64 x 32 activations and 64 x 32 weights, 8 of each per thread */
        for (int i = threadIdx.x; i < TM * TK; i += blockDim.x) {
            const int m = i / TK, kk = i % TK, t = t0 + m, k = k0 + kk;
            const float v = t < n && k < K ? x[(size_t)t * K + k] : 0.0f;
            bf16_split(v, &a_hi[m * LDS + kk], &a_lo[m * LDS + kk]);
        }
        if (packed) /* 8 consecutive weights of one row per thread (TN * TK / 8 = 256) */
            stage_packed(w, r0 + threadIdx.x / (TK / 8), k0 + threadIdx.x % (TK / 8) * 8,
                         b_hi + threadIdx.x / (TK / 8) * LDS + threadIdx.x % (TK / 8) * 8,
                         b_lo + threadIdx.x / (TK / 8) * LDS + threadIdx.x % (TK / 8) * 8);
        else
            for (int i = threadIdx.x; i < TN * TK; i += blockDim.x) {
                const int j = i / TK, kk = i % TK, r = r0 + j, k = k0 + kk;
                const float v = r < w.rows && k < K ? dmat_get(w, r, k) : 0.0f;
                bf16_split(v, &b_hi[j * LDS + kk], &b_lo[j * LDS + kk]);
            }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < TK; kk += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> ah, al;
            wmma::load_matrix_sync(ah, as_bf16(a_hi + wm * 16 * LDS + kk), LDS);
            wmma::load_matrix_sync(al, as_bf16(a_lo + wm * 16 * LDS + kk), LDS);
#pragma unroll
            for (int f = 0; f < 2; f++) {
                wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> bh, bl;
                const int col = (wn * 32 + f * 16) * LDS + kk;
                wmma::load_matrix_sync(bh, as_bf16(b_hi + col), LDS);
                wmma::load_matrix_sync(bl, as_bf16(b_lo + col), LDS);
                wmma::mma_sync(acc[f], al, bh, acc[f]); /* small terms first */
                wmma::mma_sync(acc[f], ah, bl, acc[f]);
                wmma::mma_sync(acc[f], ah, bh, acc[f]);
            }
        }
        __syncthreads(); /* the next stage overwrites the tiles */
    }
    for (int f = 0; f < 2; f++)
        wmma::store_matrix_sync(c + wm * 16 * LDC + wn * 32 + f * 16, acc[f], LDC,
                                wmma::mem_row_major);
    __syncthreads();
    for (int i = threadIdx.x; i < TM * TN; i += blockDim.x) {
        const int m = i / TN, j = i % TN, t = t0 + m, r = r0 + j;
        if (t < n && r < w.rows) {
            float *o = y + (size_t)t * w.rows + r;
            const float v = c[m * LDC + j];
            *o = accumulate ? *o + v : v;
        }
    }
}

cudaError_t launch_gemm(const dmat &w, const float *x, int n, float *y, bool accumulate,
                        cudaStream_t s)
{
    const dim3 grid((unsigned)((w.rows + TN - 1) / TN), (unsigned)((n + TM - 1) / TM));
    gemm_kernel<<<grid, 256, 0, s>>>(w, x, n, y, accumulate);
    return cudaGetLastError();
}

cudaError_t launch_matmul(const dmat &w, const float *x, int n, float *y, bool accumulate,
                          cudaStream_t s)
{
    return n >= GEMM_MIN_TOKENS ? launch_gemm(w, x, n, y, accumulate, s)
                                : launch_gemv(w, x, n, y, accumulate, s);
}
