/* Next-token sampling on the device, the CPU sampler's pipeline (runtime/sampler.c) step for
 * step so a seed draws the same tokens: the repetition penalty once per distinct recent token,
 * greedy as the first largest logit, else probabilities expf((l - max) / T) / sum (sum in
 * double), ordered by probability then index (one radix sort of (~prob bits, index) keys: the
 * CPU's order exactly), top-k, min-p and top-p cut in that order, and a draw from the shared
 * splitmix64 stream (runtime/sampler_rng.h) whose state lives in device memory. The device sorts
 * the whole row where the CPU sorts only the head it needs: the same order. Where the two can
 * differ: the device's expf (within 2 ulp, glibc's within 1) and the order of the double sums
 * (the device's mass with no filter on is summed in sorted order, the CPU's in index order) move
 * a probability by an ulp or so, which changes a token only when the draw or a top-p/min-p cut
 * lands within about 1e-7 of a boundary. */
#include <cub/device/device_radix_sort.cuh>

#include "kernels.h"
#include "sample_key.h"
#include "sampler_rng.h"

#define SAMPLE_THREADS 1024

/* Penalty, then greedy (writes the token) or the keys to sort; bad[row] (when not NULL): the
 * first non-finite logit's index, or -1. One block per row. */
__global__ void __launch_bounds__(SAMPLE_THREADS)
    sample_prepare_kernel(float *logits, int vocab, const int *history, const int *n_history,
                          int hist_cap, sampler_params p, bool greedy, unsigned long long *keys,
                          int *tokens, int *bad)
{
    __shared__ float smax[32];
    __shared__ int sidx[32];
    __shared__ double ssum[32];
    __shared__ int sbad;
    const int row = blockIdx.x, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int nw = blockDim.x >> 5;
    float *l = logits + (size_t)row * vocab;
    if (threadIdx.x == 0)
        sbad = vocab;
    __syncthreads();
    if (p.repeat_penalty != 1.0f) {
        const int *h = history + (size_t)row * hist_cap, nh = n_history[row];
        const int from = nh > p.repeat_last_n ? nh - p.repeat_last_n : 0;
        for (int i = from + threadIdx.x; i < nh; i += blockDim.x) { /* first of its token only */
            const int t = h[i];
            bool first = t >= 0 && t < vocab;
            for (int j = from; first && j < i; j++)
                first = h[j] != t;
            if (first)
                l[t] = l[t] > 0 ? l[t] / p.repeat_penalty : l[t] * p.repeat_penalty;
        }
        __syncthreads();
    }
    /* the largest logit, the lowest index among equals */
    float best = -INFINITY;
    int bi = vocab;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
        if (l[i] > best || (l[i] == best && i < bi))
            best = l[i], bi = i;
        if (!isfinite(l[i]))
            atomicMin(&sbad, i);
    }
    for (int o = 16; o > 0; o >>= 1) {
        const float ob = __shfl_xor_sync(0xffffffffu, best, o);
        const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (ob > best || (ob == best && oi < bi))
            best = ob, bi = oi;
    }
    if (lane == 0)
        smax[warp] = best, sidx[warp] = bi;
    __syncthreads();
    if (warp == 0) {
        best = lane < nw ? smax[lane] : -INFINITY;
        bi = lane < nw ? sidx[lane] : vocab;
        for (int o = 16; o > 0; o >>= 1) {
            const float ob = __shfl_xor_sync(0xffffffffu, best, o);
            const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
            if (ob > best || (ob == best && oi < bi))
                best = ob, bi = oi;
        }
        /* the CPU's argmax starts from logit 0 and only a larger value replaces it: a NaN
         * there is never replaced, so it is the pick (and the softmax's maximum) */
        if (lane == 0)
            smax[0] = l[0] != l[0] ? l[0] : best, sidx[0] = l[0] != l[0] ? 0 : bi;
    }
    __syncthreads();
    if (bad && threadIdx.x == 0)
        bad[row] = sbad < vocab ? sbad : -1;
    if (greedy) {
        if (threadIdx.x == 0) /* a row of NaNs picks 0, as the CPU's argmax does */
            tokens[row] = sidx[0] < vocab ? sidx[0] : 0;
        return;
    }
    const float mx = smax[0];
    double sum = 0;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x)
        sum += expf((l[i] - mx) / p.temperature);
    for (int o = 16; o > 0; o >>= 1)
        sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if (lane == 0)
        ssum[warp] = sum;
    __syncthreads();
    if (warp == 0) {
        sum = lane < nw ? ssum[lane] : 0.0;
        for (int o = 16; o > 0; o >>= 1)
            sum += __shfl_xor_sync(0xffffffffu, sum, o);
        if (lane == 0)
            ssum[0] = sum;
    }
    __syncthreads();
    sum = ssum[0];
    unsigned long long *k = keys + (size_t)row * vocab;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
        const float pr = (float)(expf((l[i] - mx) / p.temperature) / sum);
        k[i] = sample_key(pr, i);
    }
}

/* The cuts and the draw over one row's sorted keys, in the CPU's order of operations. One
 * thread: the walk is sequential by definition (cumulative sums). */
__global__ void sample_pick_kernel(const unsigned long long *sorted, int vocab, sampler_params p,
                                   unsigned long long *state, int *tokens)
{
    const int row = blockIdx.x;
    const unsigned long long *k = sorted + (size_t)row * vocab;
    int keep = p.top_k > 0 && p.top_k < vocab ? p.top_k : vocab;
    double cum = 0, floor_p = p.min_p * sample_key_prob(k[0]);
    for (int i = 0; i < keep; i++) {
        const float pi = sample_key_prob(k[i]);
        if (i > 0 && pi < floor_p) {
            keep = i;
            break;
        }
        cum += pi;
        if (p.top_p < 1 && cum >= p.top_p) { /* 1 is off, never a cut by rounding */
            keep = i + 1;
            break;
        }
    }
    double mass = 0;
    for (int i = 0; i < keep; i++)
        mass += sample_key_prob(k[i]);
    uint64_t st = state[row];
    const double r = sampler_rng_uniform(&st) * mass;
    state[row] = st;
    double acc = 0;
    int pick = sample_key_index(k[keep - 1]);
    for (int i = 0; i < keep; i++) {
        acc += sample_key_prob(k[i]);
        if (r < acc) {
            pick = sample_key_index(k[i]);
            break;
        }
    }
    tokens[row] = pick;
}

cudaError_t dsampler_init(dsampler *s, const sampler_params &p, int vocab, int rows)
{
    *s = dsampler{};
    s->p = p;
    s->vocab = vocab;
    s->rows = rows;
    const size_t n = (size_t)vocab * rows;
    cudaError_t e = cudaMalloc(&s->state, rows * sizeof(unsigned long long));
    if (e == cudaSuccess)
        e = cudaMalloc(&s->keys, 2 * n * sizeof(unsigned long long));
    if (e == cudaSuccess)
        e = cub::DeviceRadixSort::SortKeys(NULL, s->temp_bytes, s->keys, s->keys + n, vocab);
    if (e == cudaSuccess)
        e = cudaMalloc(&s->temp, s->temp_bytes);
    unsigned long long *init = (unsigned long long *)malloc(rows * sizeof(unsigned long long));
    if (!init && e == cudaSuccess)
        e = cudaErrorMemoryAllocation;
    for (int r = 0; init && r < rows; r++)
        init[r] = sampler_rng_seed(p.seed);
    if (e == cudaSuccess)
        e = cudaMemcpy(s->state, init, rows * sizeof(unsigned long long), cudaMemcpyHostToDevice);
    free(init);
    if (e != cudaSuccess)
        dsampler_free(s);
    return e;
}

size_t dsampler_scratch_bytes(int vocab)
{
    size_t bytes = 0;
    unsigned long long *none = NULL;
    if (cub::DeviceRadixSort::SortKeys(NULL, bytes, none, none, vocab) != cudaSuccess) {
        (void)cudaGetLastError(); /* not left for the next launch to report */
        return SIZE_MAX;
    }
    return bytes;
}

void dsampler_free(dsampler *s)
{
    cudaFree(s->state);
    cudaFree(s->keys);
    cudaFree(s->temp);
    *s = dsampler{};
}

cudaError_t launch_sample(dsampler *s, float *logits, int rows, const int *history,
                          const int *n_history, int hist_cap, int *tokens, int *bad,
                          cudaStream_t st)
{
    const sampler_params &p = s->p;
    if (rows < 1 || rows > s->rows) /* the keys and states hold s->rows rows */
        return cudaErrorInvalidValue;
    const bool greedy = p.temperature == 0 || p.top_k == 1;
    const size_t n = (size_t)s->vocab * s->rows;
    sample_prepare_kernel<<<rows, SAMPLE_THREADS, 0, st>>>(
        logits, s->vocab, history, n_history, hist_cap, p, greedy, s->keys, tokens, bad);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess || greedy)
        return e;
    for (int r = 0; r < rows && e == cudaSuccess; r++) {
        size_t temp = s->temp_bytes;
        e = cub::DeviceRadixSort::SortKeys(s->temp, temp, s->keys + (size_t)r * s->vocab,
                                           s->keys + n + (size_t)r * s->vocab, s->vocab, 0,
                                           64, st);
    }
    if (e != cudaSuccess)
        return e;
    sample_pick_kernel<<<rows, 1, 0, st>>>(s->keys + n, s->vocab, p, s->state, tokens);
    return cudaGetLastError();
}
