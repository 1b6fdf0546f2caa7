/* Launchers of the CUDA kernels the engine strings together; each enqueues on `s` and returns
 * the launch error. Activations are fp32, row-major, one row per token; positions come from
 * device memory (*pos = tokens already in the cache) so a captured graph replays at any step. */
#ifndef DSQ_CUDA_KERNELS_H
#define DSQ_CUDA_KERNELS_H

#include <cuda_runtime.h>

#include "dmatrix.cuh"
#include "moe_route.h"
extern "C" {
#include "sampler.h"
}

/* matvec.cu: y[t][r] (+)= w . x[t] for t < n (x: n rows of w.cols) */
cudaError_t launch_gemv(const dmat &w, const float *x, int n, float *y, bool accumulate,
                        cudaStream_t s);
/* gemm.cu: the same product on the tensor cores (bf16 hi + lo split, fp32 accumulation) */
cudaError_t launch_gemm(const dmat &w, const float *x, int n, float *y, bool accumulate,
                        cudaStream_t s);
/* Tokens per pass from which launch_matmul takes the GEMM instead of the GEMV. A first guess,
 * to be replaced by the crossover test_gemm measures and prints on a device. */
#define GEMM_MIN_TOKENS 32
/* the GEMV below GEMM_MIN_TOKENS tokens, the GEMM from there on */
cudaError_t launch_matmul(const dmat &w, const float *x, int n, float *y, bool accumulate,
                          cudaStream_t s);
/* routed experts of one layer in one launch per stage; slot = t * k + j uses expert ids[slot].
 * h[slot][inter] = silu(gate . x[t]) * (up . x[t]). An expert whose table entry has no data is
 * not on the device (computed in host memory): its slots get zeros here and below. */
cudaError_t launch_expert_gate_up(const dmat *gates, const dmat *ups, const int *ids, int k,
                                  const float *x, int n, int hidden, int inter, float *h,
                                  cudaStream_t s);
/* y[slot][hidden] = down . h[slot] */
cudaError_t launch_expert_down(const dmat *downs, const int *ids, int n_slots, const float *h,
                               int inter, int hidden, float *y, cudaStream_t s);
/* The same two stages with tokens grouped by expert, so each expert's weights are read once per
 * 8 of its tokens (prefill): order[pos] = slot sorted by expert, starts[e]..starts[e+1] its
 * range, xg the gathered inputs (n*k rows of hidden), h in sorted order; y by slot as above. */
cudaError_t launch_experts_grouped(const dmat *gates, const dmat *ups, const dmat *downs,
                                   const int *ids, int n, int k, int n_experts, const float *x,
                                   int hidden, int inter, int *order, int *starts, float *xg,
                                   float *h, float *y, cudaStream_t s);
/* MLA output: attn[t][h][i] = kv_b row (h * (nope + vd) + nope + i) . o_lat[t][h] */
cudaError_t launch_mla_value(const dmat &kv_b, const float *o_lat, int n, int n_heads, int nope,
                             int vd, float *attn, cudaStream_t s);

/* elementwise.cu */
cudaError_t launch_embed(const dmat &embed, const int *tokens, int n, float *x, cudaStream_t s);
/* out[t] = w * x[t] / sqrt(mean(x[t]^2) + eps); out may alias x */
cudaError_t launch_rmsnorm(const float *x, const float *w, int n, int dim, float eps, float *out,
                           cudaStream_t s);
/* g = silu(g) * u over count elements */
cudaError_t launch_swiglu(float *g, const float *u, size_t count, cudaStream_t s);
/* softmax of scores[t][n_experts] in place, then ids and weights (runtime/moe_route.h) */
cudaError_t launch_moe_route(float *scores, int n, const moe_route_params &p, int *ids,
                             float *weights, cudaStream_t s);
/* x[t] += sum_j weights[t][j] * y[t * k + j] (+ shared[t], + host[t]: the experts computed in
 * host memory, each when not NULL) */
cudaError_t launch_moe_combine(const float *y, const float *weights, const float *shared,
                               const float *host, int n, int k, int hidden, float *x,
                               cudaStream_t s);

/* sample.cu: the CPU sampler's pipeline on the device (sampler_params, one RNG state per row) */
struct dsampler {
    sampler_params p;
    int vocab, rows;
    unsigned long long *state; /* device [rows]: the splitmix64 state of each row */
    unsigned long long *keys;  /* device [2][rows][vocab]: sort keys, then sorted */
    void *temp;                /* the radix sort's scratch */
    size_t temp_bytes;
};
cudaError_t dsampler_init(dsampler *s, const sampler_params &p, int vocab, int rows);
/* The sort scratch dsampler_init would allocate for a row of vocab (SIZE_MAX: the query
 * failed). */
size_t dsampler_scratch_bytes(int vocab);
void dsampler_free(dsampler *s);
/* tokens[r] = the next token of row r from logits[r] (penalized in place), with row r's history
 * of n_history[r] tokens at history + r * hist_cap (device memory, so a graph can replay it);
 * bad[r] (bad may be NULL) = the index of row r's first non-finite logit, or -1 */
cudaError_t launch_sample(dsampler *s, float *logits, int rows, const int *history,
                          const int *n_history, int hist_cap, int *tokens, int *bad,
                          cudaStream_t st);

/* attention.cu */
/* Where each token of a pass goes: position pos[t] of sequence seq[t], whose cache starts
 * seq[t] * stride_a (K or latent) and seq[t] * stride_b (V or k_pe) floats after the layer's. */
struct token_slots {
    const int *pos, *seq;
    size_t stride_a, stride_b;
};
struct rope_dev {
    const float *cos, *sin; /* [n_pos][dim / 2] */
    int dim;
    bool interleaved;
};
/* MHA: rotates q (n, nh, hd) and the new k in place, stores k and v at their slots */
cudaError_t launch_mha_store(float *q, const float *k, const float *v, int n, int nh, int nkv,
                             int hd, const rope_dev &rope, const token_slots &slots, float *kcache,
                             float *vcache, cudaStream_t s);
/* MHA causal attention for n queries over the cache; scores: n * nh * ctx floats of scratch */
cudaError_t launch_mha_attend(const float *q, const float *kcache, const float *vcache, int n,
                              int nh, int nkv, int hd, const token_slots &slots, float scale, int ctx,
                              float *scores, float *out, cudaStream_t s);
/* MLA: ckv (n, kvr + rope) -> latent cache (RMSNorm, eps 1e-6) and roped k_pe at their slots;
 * rotates the rope part of q (n, nh, nope + rope) in place */
cudaError_t launch_mla_store(float *q, const float *ckv, const float *kv_norm, int n, int nh,
                             int nope, int kvr, const rope_dev &rope, const token_slots &slots, float *latent,
                             float *pe, cudaStream_t s);
/* q_lat[t][h] = W_UK(h)^T q_nope[t][h] over kvr */
cudaError_t launch_mla_absorb(const dmat &kv_b, const float *q, int n, int nh, int nope, int rope,
                              int vd, float *q_lat, cudaStream_t s);
/* absorbed attention: scores over the latent and k_pe, softmax, o_lat = sum p c */
cudaError_t launch_mla_attend(const float *q_lat, const float *q, const float *latent,
                              const float *pe, int n, int nh, int nope, int rope, int kvr,
                              const token_slots &slots, float scale, int ctx, float *scores, float *o_lat,
                              cudaStream_t s);

#endif
