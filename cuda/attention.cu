/* Attention on the device: MHA with NeoX RoPE (DeepSeek-MoE) and absorbed MLA over the latent
 * cache (DeepSeek-V2; scores q_lat . c + q_pe . k_pe, output W_UV sum p c), RoPE from the host's
 * tables through runtime/rope_rotate.h. One block per (head, token); scores live in a scratch
 * row of ctx floats; the softmax normalizes as runtime/ops.c does (max, exp, divide by sum). */
#include "kernels.h"
#include "rope_rotate.h"

#define THREADS 256

/* sc[0..last] = softmax(sc[0..last]), by the whole block. */
__device__ void block_softmax(float *sc, int last, float *scratch)
{
    __syncthreads();
    float mx = -INFINITY;
    for (int s = threadIdx.x; s <= last; s += blockDim.x)
        mx = fmaxf(mx, sc[s]);
    mx = block_reduce(mx, true, scratch);
    float sum = 0;
    for (int s = threadIdx.x; s <= last; s += blockDim.x) {
        sc[s] = expf(sc[s] - mx);
        sum += sc[s];
    }
    sum = block_reduce(sum, false, scratch);
    for (int s = threadIdx.x; s <= last; s += blockDim.x)
        sc[s] /= sum;
    __syncthreads();
}

__global__ void mha_store_kernel(float *q, const float *k, const float *v, int nh, int nkv, int hd,
                                 rope_dev rope, token_slots slots, float *kcache, float *vcache)
{
    const int t = blockIdx.x, p = slots.pos[t], half = rope.dim / 2, stride = nkv * hd;
    const float *cs = rope.cos + (size_t)p * half, *sn = rope.sin + (size_t)p * half;
    float *kc = kcache + slots.seq[t] * slots.stride_a + (size_t)p * stride;
    float *vc = vcache + slots.seq[t] * slots.stride_b + (size_t)p * stride;
    for (int i = threadIdx.x; i < stride; i += blockDim.x) {
        kc[i] = k[(size_t)t * stride + i];
        vc[i] = v[(size_t)t * stride + i];
    }
    __syncthreads();
    for (int j = threadIdx.x; j < nh * half; j += blockDim.x)
        rope_rotate_pair(q + ((size_t)t * nh + j / half) * hd, j % half, rope.dim, rope.interleaved,
                         cs[j % half], sn[j % half]);
    for (int j = threadIdx.x; j < nkv * half; j += blockDim.x)
        rope_rotate_pair(kc + (size_t)(j / half) * hd, j % half, rope.dim, rope.interleaved,
                         cs[j % half], sn[j % half]);
}

cudaError_t launch_mha_store(float *q, const float *k, const float *v, int n, int nh, int nkv,
                             int hd, const rope_dev &rope, const token_slots &slots, float *kcache,
                             float *vcache, cudaStream_t s)
{
    mha_store_kernel<<<n, THREADS, 0, s>>>(q, k, v, nh, nkv, hd, rope, slots, kcache, vcache);
    return cudaGetLastError();
}

__global__ void mha_attend_kernel(const float *q, const float *kcache, const float *vcache, int nh,
                                  int nkv, int hd, token_slots slots, float scale, int ctx,
                                  float *scores, float *out)
{
    __shared__ float scratch[32];
    const int h = blockIdx.x, t = blockIdx.y, last = slots.pos[t], stride = nkv * hd;
    kcache += slots.seq[t] * slots.stride_a;
    vcache += slots.seq[t] * slots.stride_b;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    const size_t kv_off = (size_t)(h / (nh / nkv)) * hd;
    const float *qh = q + ((size_t)t * nh + h) * hd;
    float *sc = scores + ((size_t)t * nh + h) * ctx;
    for (int s = warp; s <= last; s += nw) {
        const float *kr = kcache + (size_t)s * stride + kv_off;
        float d = 0;
        for (int i = lane; i < hd; i += 32)
            d += qh[i] * kr[i];
        d = warp_sum(d);
        if (lane == 0)
            sc[s] = d * scale;
    }
    block_softmax(sc, last, scratch);
    for (int i = threadIdx.x; i < hd; i += blockDim.x) {
        float acc = 0;
        for (int s = 0; s <= last; s++)
            acc += sc[s] * vcache[(size_t)s * stride + kv_off + i];
        out[((size_t)t * nh + h) * hd + i] = acc;
    }
}

cudaError_t launch_mha_attend(const float *q, const float *kcache, const float *vcache, int n,
                              int nh, int nkv, int hd, const token_slots &slots, float scale, int ctx,
                              float *scores, float *out, cudaStream_t s)
{
    mha_attend_kernel<<<dim3(nh, n), 128, 0, s>>>(q, kcache, vcache, nh, nkv, hd, slots, scale, ctx,
                                                  scores, out);
    return cudaGetLastError();
}

__global__ void mla_store_kernel(float *q, const float *ckv, const float *kv_norm, int nh, int nope,
                                 int kvr, rope_dev rope, token_slots slots, float *latent, float *pe)
{
    __shared__ float scratch[32];
    const int t = blockIdx.x, p = slots.pos[t], r = rope.dim, half = r / 2, qk = nope + r;
    latent += slots.seq[t] * slots.stride_a;
    pe += slots.seq[t] * slots.stride_b;
    const float *row = ckv + (size_t)t * (kvr + r);
    const float *cs = rope.cos + (size_t)p * half, *sn = rope.sin + (size_t)p * half;
    float ss = 0;
    for (int i = threadIdx.x; i < kvr; i += blockDim.x)
        ss += row[i] * row[i];
    ss = block_reduce(ss, false, scratch);
    /* the reference builds kv_a_layernorm with its default eps 1e-6 */
    const float scale = 1.0f / sqrtf(ss / (float)kvr + 1e-6f);
    for (int i = threadIdx.x; i < kvr; i += blockDim.x)
        latent[(size_t)p * kvr + i] = kv_norm[i] * (row[i] * scale);
    float *pr = pe + (size_t)p * r;
    for (int i = threadIdx.x; i < r; i += blockDim.x)
        pr[i] = row[kvr + i];
    __syncthreads();
    for (int i = threadIdx.x; i < half; i += blockDim.x)
        rope_rotate_pair(pr, i, r, rope.interleaved, cs[i], sn[i]);
    for (int j = threadIdx.x; j < nh * half; j += blockDim.x)
        rope_rotate_pair(q + ((size_t)t * nh + j / half) * qk + nope, j % half, r, rope.interleaved,
                         cs[j % half], sn[j % half]);
}

cudaError_t launch_mla_store(float *q, const float *ckv, const float *kv_norm, int n, int nh,
                             int nope, int kvr, const rope_dev &rope, const token_slots &slots, float *latent,
                             float *pe, cudaStream_t s)
{
    mla_store_kernel<<<n, THREADS, 0, s>>>(q, ckv, kv_norm, nh, nope, kvr, rope, slots, latent, pe);
    return cudaGetLastError();
}

__global__ void mla_absorb_kernel(dmat kv_b, const float *q, int nh, int nope, int rope, int vd,
                                  float *q_lat)
{
    const int h = blockIdx.x, t = blockIdx.y, kvr = kv_b.cols, kvw = nope + vd;
    const float *qn = q + ((size_t)t * nh + h) * (nope + rope);
    for (int j = threadIdx.x; j < kvr; j += blockDim.x) {
        float acc = 0;
        for (int i = 0; i < nope; i++)
            acc += qn[i] * dmat_get(kv_b, h * kvw + i, j);
        q_lat[((size_t)t * nh + h) * kvr + j] = acc;
    }
}

cudaError_t launch_mla_absorb(const dmat &kv_b, const float *q, int n, int nh, int nope, int rope,
                              int vd, float *q_lat, cudaStream_t s)
{
    mla_absorb_kernel<<<dim3(nh, n), THREADS, 0, s>>>(kv_b, q, nh, nope, rope, vd, q_lat);
    return cudaGetLastError();
}

__global__ void mla_attend_kernel(const float *q_lat, const float *q, const float *latent,
                                  const float *pe, int nh, int nope, int rope, int kvr,
                                  token_slots slots, float scale, int ctx, float *scores, float *o_lat)
{
    __shared__ float scratch[32];
    const int h = blockIdx.x, t = blockIdx.y, last = slots.pos[t];
    latent += slots.seq[t] * slots.stride_a;
    pe += slots.seq[t] * slots.stride_b;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    const float *ql = q_lat + ((size_t)t * nh + h) * kvr;
    const float *qpe = q + ((size_t)t * nh + h) * (nope + rope) + nope;
    float *sc = scores + ((size_t)t * nh + h) * ctx;
    for (int s = warp; s <= last; s += nw) {
        const float *c = latent + (size_t)s * kvr, *kp = pe + (size_t)s * rope;
        float d = 0;
        for (int j = lane; j < kvr; j += 32)
            d += ql[j] * c[j];
        for (int i = lane; i < rope; i += 32)
            d += qpe[i] * kp[i];
        d = warp_sum(d);
        if (lane == 0)
            sc[s] = d * scale;
    }
    block_softmax(sc, last, scratch);
    for (int j = threadIdx.x; j < kvr; j += blockDim.x) {
        float acc = 0;
        for (int s = 0; s <= last; s++)
            acc += sc[s] * latent[(size_t)s * kvr + j];
        o_lat[((size_t)t * nh + h) * kvr + j] = acc;
    }
}

cudaError_t launch_mla_attend(const float *q_lat, const float *q, const float *latent,
                              const float *pe, int n, int nh, int nope, int rope, int kvr,
                              const token_slots &slots, float scale, int ctx, float *scores, float *o_lat,
                              cudaStream_t s)
{
    mla_attend_kernel<<<dim3(nh, n), THREADS, 0, s>>>(q_lat, q, latent, pe, nh, nope, rope, kvr,
                                                      slots, scale, ctx, scores, o_lat);
    return cudaGetLastError();
}
