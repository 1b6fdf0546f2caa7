/* The CUDA engine: the mapped file copied to the device in large pinned-staged chunks, a memory
 * plan checked before anything is allocated, the fp32 KV cache (one per sequence decoded
 * together) and activations on the device, and the forward pass as one stream of kernel
 * launches (cuda/kernels.h). Each token's position, sequence and id go up in one small copy per
 * pass and only logits come back, or for generation only the token the device sampler drew
 * from them (cuda/engine_sample.cu); steps of up to 16 tokens are captured once per size as CUDA
 * graphs and replayed, since every kernel reads positions from device memory. A model larger
 * than the device leaves routed experts in host memory (cuda/offload.cu). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine_state.h"

static_assert(sizeof(dmat) == VRAM_MATRIX_BYTES, "the memory plan counts expert tables");

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int cuda_fail(dsq_error *err, cudaError_t e, const char *what)
{
    return dsq_fail(err, DSQ_ERESOURCE, "CUDA %s: %s", what, cudaGetErrorString(e));
}

/* The devices there are (0 on an error, which it returns: no driver, a driver too old). */
static cudaError_t count_devices(int *n)
{
    const cudaError_t e = cudaGetDeviceCount(n);
    if (e != cudaSuccess) {
        cudaGetLastError(); /* clear the sticky no-driver error */
        *n = 0;
    }
    return e;
}

extern "C" int cuda_device_count(void)
{
    int n;
    count_devices(&n);
    return n;
}

cudaError_t dalloc(cuda_state *st, size_t bytes, void **p)
{
    *p = NULL;
    if (bytes == 0)
        return cudaSuccess;
    if (st->n_allocs == (int)(sizeof st->allocs / sizeof st->allocs[0]))
        return cudaErrorMemoryAllocation;
    TRY(cudaMalloc(p, bytes));
    st->allocs[st->n_allocs++] = *p;
    return cudaSuccess;
}

/* The device view of a matrix; no data when it stays in host memory. */
static dmat to_dev(const cuda_state *st, const model_desc *d, const md_matrix &m)
{
    return dmat{dev_addr(st, d, m.data), m.type, m.rows, m.cols, m.group};
}

static const float *to_dev_f(const cuda_state *st, const model_desc *d, const float *p)
{
    return (const float *)dev_addr(st, d, p);
}

/* A matrix the kernels can read: inside the mapping (the upload copies only that), known type. */
static int check_matrix(const model_desc *d, const md_matrix &m, const char *what, int layer,
                        dsq_error *err)
{
    if (!m.data)
        return DSQ_OK;
    const uint8_t *p = (const uint8_t *)m.data;
    if (p < d->map || p >= d->map + d->map_size)
        return dsq_fail(err, DSQ_EINPUT,
                        "layer %d %s: stored outside the file's mapping "
                        "(compressed?), which the CUDA backend cannot upload",
                        layer, what);
    const bool known = m.type == DSQ_TYPE_F32 || m.type == DSQ_TYPE_F16 ||
                       m.type == DSQ_TYPE_BF16 || m.type == DSQ_TYPE_Q8 || m.type == DSQ_TYPE_Q4 ||
                       m.type == DSQ_TYPE_Q6;
    if (!known)
        return dsq_fail(err, DSQ_EINPUT,
                        "layer %d %s: storage type %u is not supported by the CUDA backend", layer,
                        what, m.type);
    return DSQ_OK;
}

static int check_model(const model_desc *d, dsq_error *err)
{
    int rc = check_matrix(d, d->embed, "embedding", -1, err);
    if (!rc)
        rc = check_matrix(d, d->output, "output", -1, err);
    int first_moe = 0;
    while (first_moe < d->n_layers - 1 && !d->layers[first_moe].moe)
        first_moe++;
    for (int l = 0; !rc && l < d->n_layers; l++) {
        const md_layer &L = d->layers[l];
        const md_matrix *ms[] = {&L.wq,          &L.wk,        &L.wv,         &L.q_a,
                                 &L.q_b,         &L.kv_a,      &L.kv_b,       &L.wo,
                                 &L.dense.gate,  &L.dense.up,  &L.dense.down, &L.router,
                                 &L.shared.gate, &L.shared.up, &L.shared.down};
        for (size_t i = 0; !rc && i < sizeof ms / sizeof ms[0]; i++)
            rc = check_matrix(d, *ms[i], "matrix", l, err);
        for (int e = 0; !rc && L.moe && e < d->route.n_experts; e++) {
            rc = check_matrix(d, L.experts[e].gate, "expert", l, err);
            if (!rc)
                rc = check_matrix(d, L.experts[e].up, "expert", l, err);
            if (!rc)
                rc = check_matrix(d, L.experts[e].down, "expert", l, err);
            /* the kernels take one expert width for every layer (st->expert_inter) */
            if (!rc && L.experts[e].gate.rows != d->layers[first_moe].experts[0].gate.rows)
                rc = dsq_fail(err, DSQ_EINPUT,
                              "layer %d: experts of a different width than layer %d's", l,
                              first_moe);
        }
    }
    if (!rc &&
        (d->route.n_experts > MOE_ROUTE_MAX_EXPERTS || d->route.n_group > MOE_ROUTE_MAX_GROUPS))
        rc = dsq_fail(err, DSQ_EINPUT,
                      "%d experts in %d groups: the CUDA router takes at most %d "
                      "in %d",
                      d->route.n_experts, d->route.n_group, MOE_ROUTE_MAX_EXPERTS,
                      MOE_ROUTE_MAX_GROUPS);
    return rc;
}

/* The plan's view of the model: its dimensions and widest FFNs, with file_bytes of its file on
 * the device (all of it, or less the routed experts left in host memory). */
static vram_plan make_plan(const model_desc *d, int ctx, int n_seq, uint64_t file_bytes)
{
    vram_model m = {d->mla,
                    d->n_layers,
                    d->hidden,
                    d->vocab,
                    d->n_heads,
                    d->n_kv_heads,
                    d->head_dim,
                    d->q_lora_rank,
                    d->kv_lora_rank,
                    d->qk_nope,
                    d->qk_rope,
                    d->v_head_dim,
                    d->route.n_experts,
                    d->route.k,
                    0,
                    0,
                    d->rope_dim,
                    file_bytes,
                    n_seq};
    for (int l = 0; l < d->n_layers; l++) {
        const md_layer &L = d->layers[l];
        m.ffn_inter = L.dense.gate.rows > m.ffn_inter ? L.dense.gate.rows : m.ffn_inter;
        if (L.has_shared && L.shared.gate.rows > m.ffn_inter)
            m.ffn_inter = L.shared.gate.rows;
        if (L.moe && L.experts[0].gate.rows > m.expert_inter)
            m.expert_inter = L.experts[0].gate.rows;
    }
    vram_plan p;
    vram_plan_make(&p, &m, ctx);
    return p;
}

static void state_free(cuda_state *st)
{
    /* a failed pass may have left work queued, a host function among it */
    if (st->stream)
        cudaStreamSynchronize(st->stream);
    if (st->side)
        cudaStreamSynchronize(st->side);
    for (int i = 0; i <= MAX_GRAPH; i++)
        if (st->graph_ready[i])
            cudaGraphExecDestroy(st->graphs[i]);
    for (int i = 0; i < st->n_allocs; i++)
        cudaFree(st->allocs[i]);
    if (st->host_io)
        cudaFreeHost(st->host_io);
    if (st->host_logits)
        cudaFreeHost(st->host_logits);
    sample_free(st);
    free(st->seen);
    offload_free(st);
    if (st->stream)
        cudaStreamDestroy(st->stream);
    free(st->layers);
    free(st);
}

/* The file to the device, less its holes: two pinned buffers, one filled from the mapping
 * while the other's copy runs. */
static cudaError_t upload(cuda_state *st, const model_desc *d, uint8_t *dst)
{
    uint8_t *stage[2] = {NULL, NULL};
    cudaEvent_t done[2] = {NULL, NULL};
    cudaError_t e = cudaSuccess;
    for (int i = 0; i < 2 && e == cudaSuccess; i++) {
        e = cudaMallocHost((void **)&stage[i], STAGE_BYTES);
        if (e == cudaSuccess)
            e = cudaEventCreateWithFlags(&done[i], cudaEventDisableTiming);
    }
    uint64_t at = 0, chunk = 0; /* bytes on the device so far; chunks staged */
    for (int h = 0; h <= st->n_holes && e == cudaSuccess; h++) {
        /* the kept range before hole h (after the last hole for h == n_holes) */
        const uint64_t from = h ? st->holes[h - 1].off + st->holes[h - 1].len : 0;
        const uint64_t to = h < st->n_holes ? st->holes[h].off : d->map_size;
        for (uint64_t off = from; e == cudaSuccess && off < to; off += STAGE_BYTES, chunk++) {
            const size_t len = (size_t)(to - off < STAGE_BYTES ? to - off : STAGE_BYTES);
            e = cudaEventSynchronize(done[chunk & 1]);
            if (e == cudaSuccess) {
                memcpy(stage[chunk & 1], d->map + off, len);
                e = cudaMemcpyAsync(dst + at, stage[chunk & 1], len, cudaMemcpyHostToDevice,
                                    st->stream);
                at += len;
            }
            if (e == cudaSuccess)
                e = cudaEventRecord(done[chunk & 1], st->stream);
        }
    }
    if (e == cudaSuccess)
        e = cudaStreamSynchronize(st->stream);
    for (int i = 0; i < 2; i++) {
        if (done[i])
            cudaEventDestroy(done[i]);
        if (stage[i])
            cudaFreeHost(stage[i]);
    }
    return e;
}

static cudaError_t build(cuda_state *st, const model_desc *d, const vram_plan &p, int ctx)
{
    uint8_t *file;
    TRY(dalloc(st, d->map_size - st->hole_bytes, (void **)&file));
    st->file = file;
    TRY(upload(st, d, file));
    st->embed = to_dev(st, d, d->embed);
    st->output = to_dev(st, d, d->output);
    st->norm = to_dev_f(st, d, d->norm);
    const int ne = d->route.n_experts;
    dmat *tables = NULL, *ffn_tables = NULL;
    if (p.h)
        TRY(dalloc_n(st, (size_t)d->n_layers * 3 * ne, &tables));
    TRY(dalloc_n(st, 2 * (size_t)d->n_layers, &ffn_tables));
    dmat *host_tables = p.h ? (dmat *)calloc((size_t)d->n_layers * 3 * ne, sizeof(dmat)) : NULL;
    dmat *ffn_host = (dmat *)calloc(2 * (size_t)d->n_layers, sizeof(dmat));
    if ((p.h && !host_tables) || !ffn_host) {
        free(host_tables);
        free(ffn_host);
        return cudaErrorMemoryAllocation;
    }
    for (int l = 0; l < d->n_layers; l++) {
        const md_layer &L = d->layers[l];
        dlayer &o = st->layers[l];
        o = dlayer{to_dev(st, d, L.wq),
                   to_dev(st, d, L.wk),
                   to_dev(st, d, L.wv),
                   to_dev(st, d, L.q_a),
                   to_dev(st, d, L.q_b),
                   to_dev(st, d, L.kv_a),
                   to_dev(st, d, L.kv_b),
                   to_dev(st, d, L.wo),
                   to_dev(st, d, L.dense.gate),
                   to_dev(st, d, L.dense.up),
                   to_dev(st, d, L.dense.down),
                   to_dev(st, d, L.router),
                   to_dev(st, d, L.shared.gate),
                   to_dev(st, d, L.shared.up),
                   to_dev(st, d, L.shared.down),
                   to_dev_f(st, d, L.attn_norm),
                   to_dev_f(st, d, L.ffn_norm),
                   to_dev_f(st, d, L.q_a_norm),
                   to_dev_f(st, d, L.kv_a_norm),
                   NULL,
                   NULL,
                   NULL,
                   NULL,
                   L.moe,
                   L.has_shared};
        o.ffn_pair = ffn_tables + 2 * (size_t)l;
        ffn_host[2 * l] = L.moe ? o.shared_gate : o.dense_gate;
        ffn_host[2 * l + 1] = L.moe ? o.shared_up : o.dense_up;
        if (L.moe) {
            dmat *hl = host_tables + (size_t)l * 3 * ne;
            for (int e = 0; e < ne; e++) {
                hl[e] = to_dev(st, d, L.experts[e].gate);
                hl[ne + e] = to_dev(st, d, L.experts[e].up);
                hl[2 * ne + e] = to_dev(st, d, L.experts[e].down);
            }
            o.gates = tables + (size_t)l * 3 * ne;
            o.ups = o.gates + ne;
            o.downs = o.gates + 2 * ne;
        }
    }
    cudaError_t e =
        host_tables ? cudaMemcpy(tables, host_tables, (size_t)d->n_layers * 3 * ne * sizeof(dmat),
                                 cudaMemcpyHostToDevice)
                    : cudaSuccess;
    if (e == cudaSuccess)
        e = cudaMemcpy(ffn_tables, ffn_host, 2 * (size_t)d->n_layers * sizeof(dmat),
                       cudaMemcpyHostToDevice);
    st->tables = tables;
    st->tables_host = st->swap ? host_tables : NULL; /* the expert cache edits it */
    if (!st->swap)
        free(host_tables);
    free(ffn_host);
    TRY(e);
    const size_t rope_n = (size_t)d->rope_n_pos * (d->rope_dim / 2);
    float *cs, *sn;
    TRY(dalloc_n(st, rope_n, &cs));
    TRY(dalloc_n(st, rope_n, &sn));
    TRY(cudaMemcpy(cs, d->rope_cos, rope_n * sizeof(float), cudaMemcpyHostToDevice));
    TRY(cudaMemcpy(sn, d->rope_sin, rope_n * sizeof(float), cudaMemcpyHostToDevice));
    st->rope = rope_dev{cs, sn, d->rope_dim, d->rope_interleaved};
    const size_t B = (size_t)p.batch, H = (size_t)d->hidden;
    st->batch = p.batch;
    st->top_k = d->route.k;
    st->expert_inter = 0;
    for (int l = 0; l < d->n_layers; l++)
        if (d->layers[l].moe)
            st->expert_inter = d->layers[l].experts[0].gate.rows;
    TRY(dalloc_n(st, p.cache_a, &st->cache_a));
    TRY(dalloc_n(st, p.cache_b, &st->cache_b));
    TRY(dalloc_n(st, B * H, &st->x));
    TRY(dalloc_n(st, B * H, &st->xn));
    TRY(dalloc_n(st, p.q, &st->q));
    TRY(dalloc_n(st, p.qa, &st->qa));
    TRY(dalloc_n(st, p.kv, &st->k));
    TRY(dalloc_n(st, p.kv, &st->v));
    TRY(dalloc_n(st, p.ckv, &st->ckv));
    TRY(dalloc_n(st, p.attn, &st->attn));
    TRY(dalloc_n(st, p.lat, &st->q_lat));
    TRY(dalloc_n(st, p.lat, &st->o_lat));
    TRY(dalloc_n(st, p.scores, &st->scores));
    TRY(dalloc_n(st, p.ffn, &st->g));
    TRY(dalloc_n(st, p.ffn, &st->u));
    TRY(dalloc_n(st, p.h, &st->h));
    TRY(dalloc_n(st, p.ye, &st->ye));
    TRY(dalloc_n(st, p.ye, &st->xg));
    TRY(dalloc_n(st, p.ids, &st->order));
    TRY(dalloc_n(st, p.h ? (size_t)d->route.n_experts + 1 : 0, &st->starts));
    TRY(dalloc_n(st, B * H, &st->shared_out));
    TRY(dalloc_n(st, p.router, &st->router));
    TRY(dalloc_n(st, p.ids, &st->route_w));
    TRY(dalloc_n(st, p.ids, &st->ids));
    TRY(dalloc_n(st, p.logits, &st->logits));
    TRY(dalloc_n(st, 3 * B, &st->io));
    TRY(dalloc_n(st, B, &st->zero_ids));
    TRY(cudaMemset(st->zero_ids, 0, B * sizeof(int)));
    TRY(cudaMallocHost((void **)&st->host_io, 3 * B * sizeof(int)));
    TRY(cudaMallocHost((void **)&st->host_logits, p.logits * sizeof(float)));
    TRY(sample_build(st, d->vocab, ctx));
    if (!(st->seen = (unsigned char *)calloc((size_t)st->n_seq, 1)))
        return cudaErrorMemoryAllocation;
    return st->he ? offload_build(st, d, B, H) : cudaSuccess;
}

/* g = silu(gate . xn) * (up . xn) for a dense or shared FFN. One token takes the routed-expert
 * kernel with a one-entry table (one launch instead of three); more read the weights once per
 * 8 tokens through the GEMV. */
static cudaError_t ffn_gate_up(cuda_state *st, const dlayer &L, const dmat &gate, const dmat &up,
                               int n, int H, cudaStream_t s)
{
    if (n == 1)
        return launch_expert_gate_up(L.ffn_pair, L.ffn_pair + 1, st->zero_ids, 1, st->xn, 1, H,
                                     gate.rows, st->g, s);
    TRY(launch_matmul(gate, st->xn, n, st->g, false, s));
    TRY(launch_matmul(up, st->xn, n, st->u, false, s));
    return launch_swiglu(st->g, st->u, (size_t)n * gate.rows, s);
}

/* One pass of n <= batch tokens whose positions, sequences and ids are in st->io; with head,
 * the logits of the last token (or of all n) land in st->logits. */
static cudaError_t enqueue(cuda_state *st, const engine *en, int n, bool head, bool all_logits)
{
    const model_desc *d = en->desc;
    const cudaStream_t s = st->stream;
    const int H = d->hidden, nh = d->n_heads, ctx = en->ctx;
    const float eps = d->rms_eps;
    const size_t B = (size_t)st->batch;
    const token_slots pos = {st->io, st->io + B, (size_t)ctx * st->stride_a,
                             (size_t)ctx * st->stride_b};
    TRY(launch_embed(st->embed, st->io + 2 * B, n, st->x, s));
    for (int l = 0; l < d->n_layers; l++) {
        const dlayer &L = st->layers[l];
        /* a layer's cache holds n_seq sequences of ctx tokens */
        float *ca = st->cache_a + (size_t)l * st->n_seq * pos.stride_a;
        float *cb = st->cache_b + (size_t)l * st->n_seq * pos.stride_b;
        TRY(launch_rmsnorm(st->x, L.attn_norm, n, H, eps, st->xn, s));
        if (!d->mla) {
            TRY(launch_matmul(L.wq, st->xn, n, st->q, false, s));
            TRY(launch_matmul(L.wk, st->xn, n, st->k, false, s));
            TRY(launch_matmul(L.wv, st->xn, n, st->v, false, s));
            TRY(launch_mha_store(st->q, st->k, st->v, n, nh, d->n_kv_heads, d->head_dim, st->rope,
                                 pos, ca, cb, s));
            TRY(launch_mha_attend(st->q, ca, cb, n, nh, d->n_kv_heads, d->head_dim, pos,
                                  d->softmax_scale, ctx, st->scores, st->attn, s));
        } else {
            if (d->q_lora_rank) { /* q_a_layernorm keeps the reference's default eps 1e-6 */
                TRY(launch_matmul(L.q_a, st->xn, n, st->qa, false, s));
                TRY(launch_rmsnorm(st->qa, L.q_a_norm, n, d->q_lora_rank, 1e-6f, st->qa, s));
                TRY(launch_matmul(L.q_b, st->qa, n, st->q, false, s));
            } else {
                TRY(launch_matmul(L.wq, st->xn, n, st->q, false, s));
            }
            TRY(launch_matmul(L.kv_a, st->xn, n, st->ckv, false, s));
            TRY(launch_mla_store(st->q, st->ckv, L.kv_a_norm, n, nh, d->qk_nope, d->kv_lora_rank,
                                 st->rope, pos, ca, cb, s));
            TRY(launch_mla_absorb(L.kv_b, st->q, n, nh, d->qk_nope, d->qk_rope, d->v_head_dim,
                                  st->q_lat, s));
            TRY(launch_mla_attend(st->q_lat, st->q, ca, cb, n, nh, d->qk_nope, d->qk_rope,
                                  d->kv_lora_rank, pos, d->softmax_scale, ctx, st->scores,
                                  st->o_lat, s));
            TRY(launch_mla_value(L.kv_b, st->o_lat, n, nh, d->qk_nope, d->v_head_dim, st->attn, s));
        }
        TRY(launch_matmul(L.wo, st->attn, n, st->x, true, s));
        TRY(launch_rmsnorm(st->x, L.ffn_norm, n, H, eps, st->xn, s));
        if (!L.moe) {
            TRY(ffn_gate_up(st, L, L.dense_gate, L.dense_up, n, H, s));
            TRY(launch_matmul(L.dense_down, st->g, n, st->x, true, s));
            continue;
        }
        const int k = d->route.k;
        /* the router on the fp32 GEMV at any token count: its logits choose the experts, and
         * the GEMM's bf16 split would move near-ties the CPU reference takes in fp32; it is a
         * few hundred rows, so the GEMV costs little even for a prompt */
        TRY(launch_gemv(L.router, st->xn, n, st->router, false, s));
        TRY(launch_moe_route(st->router, n, d->route, st->ids, st->route_w, s));
        /* with experts in host memory the device's share runs on the side stream meanwhile */
        const bool host = st->he && st->host_layer[l];
        const cudaStream_t dev = host ? st->side : s;
        if (host)
            TRY(offload_fork(st, l, n, (size_t)H, (size_t)k, s));
        if (n == 1) { /* decode: one block row per chosen expert */
            TRY(launch_expert_gate_up(L.gates, L.ups, st->ids, k, st->xn, n, H, st->expert_inter,
                                      st->h, dev));
            TRY(launch_expert_down(L.downs, st->ids, n * k, st->h, st->expert_inter, H, st->ye,
                                   dev));
        } else { /* prefill: each expert's weights once per 8 of its tokens */
            TRY(launch_experts_grouped(L.gates, L.ups, L.downs, st->ids, n, k, d->route.n_experts,
                                       st->xn, H, st->expert_inter, st->order, st->starts, st->xg,
                                       st->h, st->ye, dev));
        }
        if (L.has_shared) {
            TRY(ffn_gate_up(st, L, L.shared_gate, L.shared_up, n, H, dev));
            TRY(launch_matmul(L.shared_down, st->g, n, st->shared_out, false, dev));
        }
        if (host)
            TRY(offload_join(st, s));
        TRY(launch_moe_combine(st->ye, st->route_w, L.has_shared ? st->shared_out : NULL,
                               host ? st->dout : NULL, n, k, H, st->x, s));
    }
    if (!head)
        return cudaSuccess;
    const int first = all_logits ? 0 : n - 1;
    TRY(launch_rmsnorm(st->x + (size_t)first * H, st->norm, n - first, H, eps, st->xn, s));
    return launch_matmul(st->output, st->xn, n - first, st->logits, false, s);
}

/* The launches of an n-token step with every row's logits, captured once per n. */
static cudaError_t capture_step(cuda_state *st, const engine *en, int n)
{
    cudaGraph_t g;
    TRY(cudaStreamBeginCapture(st->stream, cudaStreamCaptureModeThreadLocal));
    cudaError_t e = enqueue(st, en, n, true, true);
    const cudaError_t e2 = cudaStreamEndCapture(st->stream, &g);
    if (e == cudaSuccess && e2 == cudaSuccess)
        e = cudaGraphInstantiate(&st->graphs[n], g, 0);
    if (e2 == cudaSuccess) /* ended, whether or not a launch in it failed */
        cudaGraphDestroy(g);
    TRY(e);
    TRY(e2);
    st->graph_ready[n] = true;
    return cudaSuccess;
}

/* Tokens at the given sequences (NULL: all 0) and positions, in passes of at most st->batch;
 * logits of every token (all_logits) or of the last. Steps of up to MAX_GRAPH tokens that
 * need every row replay a graph captured on their second run. */
static int run_tokens(engine *en, const int *seq, const int *pos, const int *tokens, int n,
                      float *logits, bool all_logits, dsq_error *err)
{
    cuda_state *st = (cuda_state *)en->state;
    const size_t vocab = (size_t)en->desc->vocab, B = (size_t)st->batch;
    /* a decode call holds one token of each sequence in it, however many sequences */
    bool decode = seq ? n <= st->n_seq : n == 1;
    if (seq && decode) {
        memset(st->seen, 0, (size_t)st->n_seq);
        for (int i = 0; i < n && decode; i++)
            decode = !st->seen[seq[i]]++;
    }
    st->host_rc = DSQ_OK; /* an earlier failed pass may have left one */
    st->logits_ready = false;
    if (st->broken)
        return dsq_fail(err, DSQ_ERESOURCE,
                        "CUDA expert cache: an earlier update failed, so the device's expert "
                        "tables are not to be trusted; open the model again");
    for (int done = 0; done < n;) {
        const int m = n - done < st->batch ? n - done : st->batch;
        const bool last = done + m == n, head = last || all_logits;
        st->host_n = m; /* read by the host functions of this pass, graph or not */
        for (int i = 0; i < m; i++) {
            st->host_io[i] = pos[done + i];
            st->host_io[B + i] = seq ? seq[done + i] : 0;
            st->host_io[2 * B + i] = tokens[done + i];
        }
        cudaError_t e = cudaMemcpyAsync(st->io, st->host_io, 3 * B * sizeof(int),
                                        cudaMemcpyHostToDevice, st->stream);
        bool graph = m <= MAX_GRAPH && head && (all_logits || m == 1) && st->use_graph;
        if (e == cudaSuccess && graph && !st->graph_ready[m]) {
            /* a step's first run is plain launches, so every kernel it takes is loaded (with
             * lazy module loading, a first load inside a capture can fail); the second is
             * captured. A capture that fails leaves the step to plain launches from then on:
             * the same work, queued one launch at a time (an error that sticks fails those
             * too, and the pass with them). */
            if (!st->ran_plain[m]) {
                st->ran_plain[m] = true;
                graph = false;
            } else if (capture_step(st, en, m) != cudaSuccess) {
                (void)cudaGetLastError();
                st->use_graph = graph = false;
            }
        }
        if (e == cudaSuccess && graph) {
            e = cudaGraphLaunch(st->graphs[m], st->stream);
            en->graph_launches += e == cudaSuccess;
        } else if (e == cudaSuccess) {
            e = enqueue(st, en, m, head, all_logits);
        }
        const size_t rows = all_logits ? (size_t)m : 1;
        if (e == cudaSuccess && head && logits) /* else they stay for cuda_sample */
            e = cudaMemcpyAsync(st->host_logits, st->logits, rows * vocab * sizeof(float),
                                cudaMemcpyDeviceToHost, st->stream);
        if (e == cudaSuccess && st->done) { /* host experts: sleep, leave the cores to them */
            e = cudaEventRecord(st->done, st->stream);
            if (e == cudaSuccess)
                e = cudaEventSynchronize(st->done);
        } else if (e == cudaSuccess) {
            e = cudaStreamSynchronize(st->stream);
        }
        if (e != cudaSuccess) {
            /* what the pass queued (a host function among it) ends before host_io, host_rc
             * and the pinned buffers are touched again */
            cudaStreamSynchronize(st->stream);
            if (st->side)
                cudaStreamSynchronize(st->side);
            return cuda_fail(err, e, "forward pass");
        }
        if (head && logits)
            memcpy(all_logits ? logits + (size_t)done * vocab : logits, st->host_logits,
                   rows * vocab * sizeof(float));
        if (st->host_rc) {
            const int rc = st->host_rc;
            st->host_rc = DSQ_OK;
            *err = st->host_err;
            return rc;
        }
        if (st->swap && (e = swap_experts(st, en, m, decode)) != cudaSuccess)
            return cuda_fail(err, e, "expert cache");
        done += m;
    }
    st->logits_ready = !all_logits;
    return DSQ_OK;
}

static int cuda_forward(engine *en, const int *tokens, int n, float *logits, bool all_logits,
                        dsq_error *err)
{
    int *pos = (int *)malloc((size_t)n * sizeof(int));
    if (!pos)
        return dsq_fail(err, DSQ_ERESOURCE, "out of memory");
    for (int i = 0; i < n; i++)
        pos[i] = en->n_past + i;
    int rc = run_tokens(en, NULL, pos, tokens, n, logits, all_logits, err);
    free(pos);
    ((cuda_state *)en->state)->logits_at = en->n_past + n; /* what engine_forward makes it */
    return rc;
}

static int cuda_forward_seqs(engine *en, const int *seq, const int *pos, const int *tokens, int n,
                             float *logits, dsq_error *err)
{
    return run_tokens(en, seq, pos, tokens, n, logits, true, err);
}

static void cuda_close(engine *en)
{
    if (en->state)
        state_free((cuda_state *)en->state);
    en->state = NULL;
}

/* GB/s of a device-to-device copy (read + write), median-free: ten copies after a warm one. */
static double cuda_copy_bandwidth(engine *en)
{
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess)
        return 0;
    size_t bytes = free_b / 4 < (1ull << 30) ? free_b / 4 : (1ull << 30);
    void *a = NULL, *b = NULL;
    cudaEvent_t t0 = NULL, t1 = NULL;
    double gbs = 0;
    float ms = 0;
    if (cudaMalloc(&a, bytes) == cudaSuccess && cudaMalloc(&b, bytes) == cudaSuccess &&
        cudaEventCreate(&t0) == cudaSuccess && cudaEventCreate(&t1) == cudaSuccess &&
        cudaMemsetAsync(a, 1, bytes, 0) == cudaSuccess &&
        cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, 0) == cudaSuccess &&
        cudaEventRecord(t0, 0) == cudaSuccess) {
        const int reps = 10;
        bool ok = true;
        for (int i = 0; ok && i < reps; i++)
            ok = cudaMemcpyAsync(i & 1 ? a : b, i & 1 ? b : a, bytes, cudaMemcpyDeviceToDevice,
                                 0) == cudaSuccess;
        if (ok && cudaEventRecord(t1, 0) == cudaSuccess &&
            cudaEventSynchronize(t1) == cudaSuccess &&
            cudaEventElapsedTime(&ms, t0, t1) == cudaSuccess && ms > 0)
            gbs = 2.0 * bytes * reps / (ms * 1e-3) / 1e9;
    }
    if (t0)
        cudaEventDestroy(t0);
    if (t1)
        cudaEventDestroy(t1);
    cudaFree(a);
    cudaFree(b);
    (void)en;
    return gbs;
}

static const engine_ops cuda_ops = {
    "cuda", cuda_forward, cuda_close, cuda_forward_seqs, cuda_copy_bandwidth, cuda_sample};

extern "C" bool cuda_memory(uint64_t *free_bytes, uint64_t *total_bytes)
{
    size_t f = 0, t = 0;
    if (cuda_device_count() < 1 || cudaSetDevice(0) != cudaSuccess ||
        cudaMemGetInfo(&f, &t) != cudaSuccess) {
        cudaGetLastError();
        return false;
    }
    *free_bytes = f;
    *total_bytes = t;
    return true;
}

extern "C" uint64_t cuda_engine_plan_bytes(const engine *en)
{
    return make_plan(en->desc, en->ctx, en->n_seq, en->desc->map_size).total;
}

extern "C" int cuda_engine_open(engine *en, const engine_options *o, const cuda_offload *off,
                                dsq_error *err)
{
    const model_desc *d = en->desc;
    int count;
    const cudaError_t probe = count_devices(&count);
    if (count < 1) /* say why: no GPU, no driver, a driver too old */
        return dsq_fail(err, DSQ_ERESOURCE, "--backend cuda: no CUDA device is available (%s)",
                        probe != cudaSuccess ? cudaGetErrorString(probe) : "none listed");
    int rc = check_model(d, err);
    if (rc)
        return rc;
    size_t free_b = 0, total_b = 0;
    cudaError_t e = cudaSetDevice(0);
    if (e == cudaSuccess)
        e = cudaMemGetInfo(&free_b, &total_b);
    if (e != cudaSuccess)
        return cuda_fail(err, e, "device query");
    cuda_state *st = (cuda_state *)calloc(1, sizeof *st);
    if (!st || !(st->layers = (dlayer *)calloc((size_t)d->n_layers, sizeof(dlayer))) ||
        (off && !offload_init(st, d, off))) {
        if (st)
            state_free(st);
        return dsq_fail(err, DSQ_ERESOURCE, "out of memory");
    }
    vram_plan p = make_plan(d, en->ctx, en->n_seq, d->map_size - st->hole_bytes);
    if (off) { /* the host's sums come back to a buffer of their own */
        const uint64_t more = vram_host_result_bytes(d->hidden);
        p.work_bytes += more;
        p.total += more;
    }
    const uint64_t budget = o->vram ? o->vram : free_b;
    if (p.total > budget || p.total > free_b) {
        const uint64_t have = budget < free_b ? budget : free_b;
        const double per_token = (double)p.cache_bytes / en->ctx;
        const double room = (double)have - (double)p.weights - (double)p.work_bytes;
        char fit[96] = "the weights alone do not fit";
        if (room >= per_token)
            snprintf(fit, sizeof fit, "a cache of --ctx %d would fit",
                     (int)(room / per_token) < en->ctx ? (int)(room / per_token) : en->ctx);
        state_free(st);
        return dsq_fail(err, DSQ_ERESOURCE,
                        "the model needs %.2f GB of device memory (weights %.2f%s, KV cache "
                        "%.2f for --ctx %d, work buffers %.2f) but %.2f GB are available (%s); %s",
                        p.total / 1e9, p.weights / 1e9,
                        off ? " with some routed experts in host memory" : "", p.cache_bytes / 1e9,
                        en->ctx, p.work_bytes / 1e9, have / 1e9,
                        o->vram && budget < free_b ? "--vram" : "free device memory", fit);
    }
    st->use_graph = !o->no_graph;
    st->n_seq = en->n_seq;
    st->stride_a = d->mla ? (size_t)d->kv_lora_rank : (size_t)d->n_kv_heads * d->head_dim;
    st->stride_b = d->mla ? (size_t)d->qk_rope : st->stride_a;
    const double t0 = now_seconds();
    e = cudaStreamCreateWithFlags(&st->stream, cudaStreamNonBlocking);
    if (e == cudaSuccess)
        e = build(st, d, p, en->ctx);
    /* build's table copies from pageable memory and its memset run on the legacy stream, which
     * the engine's non-blocking stream does not wait for: they land before the first pass */
    if (e == cudaSuccess)
        e = cudaDeviceSynchronize();
    if (e != cudaSuccess) {
        state_free(st);
        return cuda_fail(err, e, "load");
    }
    en->load_seconds = now_seconds() - t0;
    en->load_bytes = d->map_size - st->hole_bytes;
    en->device_bytes = p.total;
    en->state = st;
    en->ops = &cuda_ops;
    if (o->verbose) {
        cudaDeviceProp prop;
        if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess)
            snprintf(prop.name, sizeof prop.name, "device 0");
        fprintf(stderr,
                "cuda: %s; loaded %.2f GB in %.2f s (%.2f GB/s); %.2f GB of device "
                "memory planned (cache %.2f GB for %d tokens)\n",
                prop.name, en->load_bytes / 1e9, en->load_seconds,
                en->load_bytes / en->load_seconds / 1e9, p.total / 1e9, p.cache_bytes / 1e9,
                en->ctx);
    }
    return DSQ_OK;
}
