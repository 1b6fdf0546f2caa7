/* The CUDA engine's draws on the device (engine_ops.sample): the device sampler's buffers, and
 * the next token from the last forward's logits with only the penalty's window, the random
 * state and the token crossing between host and device. */
#include <math.h>
#include <string.h>

#include "engine_state.h"

cudaError_t sample_build(cuda_state *st, int vocab, int ctx)
{
    /* as the plan counts them (sample_bytes) */
    st->samp_cap = ctx + 1;
    TRY(dalloc_n(st, (size_t)st->samp_cap + 3, &st->samp_io));
    TRY(cudaMallocHost((void **)&st->host_samp, ((size_t)st->samp_cap + 3) * sizeof(int)));
    TRY(cudaMallocHost((void **)&st->host_state, sizeof(unsigned long long)));
    if (dsampler_scratch_bytes(vocab) <= VRAM_SAMPLE_SCRATCH(vocab))
        TRY(dsampler_init(&st->samp, sampler_defaults(), vocab, 1));
    return cudaSuccess;
}

void sample_free(cuda_state *st)
{
    if (st->host_samp)
        cudaFreeHost(st->host_samp);
    if (st->host_state)
        cudaFreeHost(st->host_state);
    dsampler_free(&st->samp);
}

/* The next token from the last forward's logits, drawn on the device: the history the penalty
 * reads and the random state go over, the token and the state come back. Where the device
 * sampler is missing or the history longer than its buffer, the logits come to the host's
 * sampler instead. */
int cuda_sample(engine *en, sampler *s, const int *history, int n_history, int *token, int *bad,
                dsq_error *err)
{
    cuda_state *st = (cuda_state *)en->state;
    const int vocab = en->desc->vocab;
    /* one draw per forward (the penalty rewrites the logits in place), of the cache as it is */
    if (!st->logits_ready || st->logits_at != en->n_past)
        return dsq_fail(err, DSQ_EUSAGE, "no logits to sample from: run a forward pass first");
    st->logits_ready = false;
    const sampler_params &p = s->p;
    /* the penalty reads the last repeat_last_n tokens, and none when it is off */
    const int from = n_history > p.repeat_last_n ? n_history - p.repeat_last_n : 0;
    const int nh = p.repeat_penalty != 1 ? n_history - from : 0;
    cudaError_t e;
    if (!st->samp.keys || nh > st->samp_cap) {
        e = cudaMemcpyAsync(st->host_logits, st->logits, (size_t)vocab * sizeof(float),
                            cudaMemcpyDeviceToHost, st->stream);
        if (e == cudaSuccess)
            e = cudaStreamSynchronize(st->stream);
        if (e != cudaSuccess)
            return cuda_fail(err, e, "sampling");
        *bad = -1;
        for (int i = 0; i < vocab && *bad < 0; i++)
            if (!isfinite(st->host_logits[i]))
                *bad = i;
        if (*bad < 0)
            *token = sampler_sample(s, st->host_logits, history, n_history);
        return DSQ_OK;
    }
    st->samp.p = p;
    st->host_samp[0] = nh;
    if (nh > 0)
        memcpy(st->host_samp + 3, history + from, (size_t)nh * sizeof(int));
    *st->host_state = s->state;
    e = cudaMemcpyAsync(st->samp_io, st->host_samp, (3 + (size_t)nh) * sizeof(int),
                        cudaMemcpyHostToDevice, st->stream);
    if (e == cudaSuccess)
        e = cudaMemcpyAsync(st->samp.state, st->host_state, sizeof *st->host_state,
                            cudaMemcpyHostToDevice, st->stream);
    if (e == cudaSuccess)
        e = launch_sample(&st->samp, st->logits, 1, st->samp_io + 3, st->samp_io, st->samp_cap,
                          st->samp_io + 1, st->samp_io + 2, st->stream);
    if (e == cudaSuccess)
        e = cudaMemcpyAsync(st->host_samp + 1, st->samp_io + 1, 2 * sizeof(int),
                            cudaMemcpyDeviceToHost, st->stream);
    if (e == cudaSuccess)
        e = cudaMemcpyAsync(st->host_state, st->samp.state, sizeof *st->host_state,
                            cudaMemcpyDeviceToHost, st->stream);
    if (e == cudaSuccess)
        e = cudaStreamSynchronize(st->stream);
    if (e != cudaSuccess) {
        cudaStreamSynchronize(st->stream); /* what was queued reads the pinned buffers */
        return cuda_fail(err, e, "sampling");
    }
    en->device_draws++;
    *token = st->host_samp[1];
    *bad = st->host_samp[2];
    s->state = *st->host_state;
    return DSQ_OK;
}
