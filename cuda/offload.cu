/* Routed experts a CUDA engine leaves in host memory (docs/OFFLOAD.md): the upload's holes and
 * the device addresses around them, the host path of a MoE layer (its input and choices to
 * pinned memory, a host function running runtime/host_experts.h on the CPU while a second
 * stream computes the device's experts and shared experts, the host's sum back to the
 * combine), and the expert cache's loads between passes. */
#include <stdlib.h>
#include <string.h>

#include "engine_state.h"

const uint8_t *dev_addr(const cuda_state *st, const model_desc *d, const void *p)
{
    if (!p)
        return NULL;
    const uint64_t off = (uint64_t)((const uint8_t *)p - d->map);
    int lo = 0, hi = st->n_holes; /* lo: holes that start at or before off */
    while (lo < hi) {
        const int mid = (lo + hi) / 2;
        if (st->holes[mid].off <= off)
            lo = mid + 1;
        else
            hi = mid;
    }
    uint64_t before = 0;
    if (lo > 0) {
        const hole &h = st->holes[lo - 1];
        if (off < h.off + h.len)
            return NULL;
        before = st->hole_before[lo - 1] + h.len;
    }
    return st->file + (off - before);
}

/* Stored bytes of a matrix. */
static uint64_t md_bytes(const md_matrix &m)
{
    uint64_t bytes = 0;
    dsq_type_nbytes(m.type, (uint64_t)m.rows, (uint64_t)m.cols, m.group, &bytes);
    return bytes;
}

static int by_offset(const void *a, const void *b)
{
    const hole *x = (const hole *)a, *y = (const hole *)b;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* The holes of an offload: every matrix of every routed expert on_gpu leaves out, with its
 * padding up to the next tensor, so every tensor after a hole keeps its alignment on the device
 * (the kernels' 16-byte loads need it), sorted and merged. false when out of memory. */
static bool make_holes(cuda_state *st, const model_desc *d, const unsigned char *on_gpu)
{
    const int ne = d->route.n_experts;
    size_t n = 0;
    for (int l = 0; l < d->n_layers; l++)
        for (int e = 0; d->layers[l].moe && e < ne; e++)
            n += on_gpu[(size_t)l * ne + e] ? 0 : 3;
    st->holes = (hole *)malloc((n ? n : 1) * sizeof(hole));
    st->hole_before = (uint64_t *)malloc((n ? n : 1) * sizeof(uint64_t));
    if (!st->holes || !st->hole_before)
        return false;
    size_t at = 0;
    for (int l = 0; l < d->n_layers; l++)
        for (int e = 0; d->layers[l].moe && e < ne; e++) {
            if (on_gpu[(size_t)l * ne + e])
                continue;
            const md_ffn &x = d->layers[l].experts[e];
            const md_matrix *ms[3] = {&x.gate, &x.up, &x.down};
            for (int i = 0; i < 3; i++) {
                const uint64_t len = md_bytes(*ms[i]);
                const uint64_t off = (uint64_t)((const uint8_t *)ms[i]->data - d->map);
                const uint64_t a = d->tensor_align ? d->tensor_align : 1;
                uint64_t end = (off + len + a - 1) / a * a;
                end = end < d->map_size ? end : d->map_size;
                st->holes[at++] = hole{off, end - off};
            }
        }
    qsort(st->holes, n, sizeof(hole), by_offset);
    int m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m > 0 && st->holes[i].off <= st->holes[m - 1].off + st->holes[m - 1].len) {
            const uint64_t end = st->holes[i].off + st->holes[i].len;
            if (end > st->holes[m - 1].off + st->holes[m - 1].len)
                st->holes[m - 1].len = end - st->holes[m - 1].off;
        } else {
            st->holes[m++] = st->holes[i];
        }
    }
    st->n_holes = m;
    st->hole_bytes = 0;
    for (int i = 0; i < m; i++) {
        st->hole_before[i] = st->hole_bytes;
        st->hole_bytes += st->holes[i].len;
    }
    return true;
}

bool offload_init(cuda_state *st, const model_desc *d, const cuda_offload *off)
{
    st->he = off->he;
    st->swap = off->swap;
    st->host_layer = (bool *)calloc((size_t)d->n_layers, sizeof(bool));
    st->calls = (host_call *)calloc((size_t)d->n_layers, sizeof(host_call));
    if (!st->host_layer || !st->calls || !make_holes(st, d, off->on_gpu))
        return false;
    for (int l = 0; l < d->n_layers; l++) {
        /* with an expert cache any MoE layer may lose an expert to the host later */
        st->host_layer[l] = host_experts_in_layer(off->he, l) || (off->swap && d->layers[l].moe);
        st->calls[l] = host_call{st, l};
    }
    return true;
}

cudaError_t offload_build(cuda_state *st, const model_desc *d, size_t B, size_t H)
{
    const int ne = d->route.n_experts;
    const size_t per_pass = B * (size_t)d->route.k; /* expert choices of a pass */
    TRY(cudaMallocHost((void **)&st->hx, B * H * sizeof(float)));
    TRY(cudaMallocHost((void **)&st->hout, B * H * sizeof(float)));
    TRY(cudaMallocHost((void **)&st->hw, per_pass * sizeof(float)));
    TRY(cudaMallocHost((void **)&st->hids, per_pass * sizeof(int)));
    TRY(dalloc_n(st, B * H, &st->dout));
    TRY(cudaStreamCreateWithFlags(&st->side, cudaStreamNonBlocking));
    TRY(cudaEventCreateWithFlags(&st->fork, cudaEventDisableTiming));
    TRY(cudaEventCreateWithFlags(&st->join, cudaEventDisableTiming));
    TRY(cudaEventCreateWithFlags(&st->done, cudaEventDisableTiming | cudaEventBlockingSync));
    if (!st->swap)
        return cudaSuccess;
    const expert_swap *sw = st->swap;
    const int slots = expert_swap_slots(sw), n_moe = expert_swap_moe_layers(sw);
    st->hids_log = (int *)malloc((size_t)d->n_layers * per_pass * sizeof(int));
    st->slot_dirty = (bool *)calloc((size_t)(slots ? slots : 1), sizeof(bool));
    st->slot_mem = (dmat *)calloc(3 * (size_t)(slots ? slots : 1), sizeof(dmat));
    st->swap_loads =
        (expert_swap_load *)malloc(per_pass * (size_t)n_moe * sizeof(expert_swap_load) + 1);
    st->swap_ids = (const int **)malloc((size_t)(n_moe ? n_moe : 1) * sizeof(int *));
    if (!st->slot_mem || !st->swap_loads || !st->swap_ids || !st->hids_log || !st->slot_dirty)
        return cudaErrorMemoryAllocation;
    for (int s = 0; s < slots; s++) { /* a slot is the device bytes of its first expert */
        int l, x;
        expert_swap_slot_expert(sw, s, &l, &x);
        const dmat *t = st->tables_host + (size_t)l * 3 * ne;
        st->slot_mem[3 * s] = t[x];
        st->slot_mem[3 * s + 1] = t[ne + x];
        st->slot_mem[3 * s + 2] = t[2 * ne + x];
        if (!t[x].data || !t[ne + x].data || !t[2 * ne + x].data)
            return cudaErrorInvalidValue; /* the placement and the cache disagree */
    }
    return cudaSuccess;
}

/* A MoE layer's experts in host memory, run by the stream between the copies of its inputs and
 * of its sum (CUDA calls are not allowed here). The first error is kept for run_tokens. */
static void CUDART_CB run_host_experts(void *arg)
{
    const host_call *c = (const host_call *)arg;
    cuda_state *st = c->st;
    if (!st->host_rc)
        st->host_rc = host_experts_run(st->he, c->layer, st->hx, st->host_n, st->hids, st->hw,
                                       st->hout, &st->host_err);
    if (st->swap) /* the expert cache counts every layer's choices after the pass */
        memcpy(st->hids_log + (size_t)c->layer * st->batch * st->top_k, st->hids,
               (size_t)st->host_n * st->top_k * sizeof(int));
}

cudaError_t offload_fork(cuda_state *st, int layer, int n, size_t H, size_t k, cudaStream_t s)
{
    TRY(cudaEventRecord(st->fork, s));
    TRY(cudaStreamWaitEvent(st->side, st->fork, 0));
    TRY(cudaMemcpyAsync(st->hx, st->xn, (size_t)n * H * sizeof(float), cudaMemcpyDeviceToHost, s));
    TRY(cudaMemcpyAsync(st->hids, st->ids, (size_t)n * k * sizeof(int), cudaMemcpyDeviceToHost, s));
    TRY(cudaMemcpyAsync(st->hw, st->route_w, (size_t)n * k * sizeof(float), cudaMemcpyDeviceToHost,
                        s));
    TRY(cudaLaunchHostFunc(s, run_host_experts, &st->calls[layer]));
    return cudaMemcpyAsync(st->dout, st->hout, (size_t)n * H * sizeof(float),
                           cudaMemcpyHostToDevice, s);
}

cudaError_t offload_join(cuda_state *st, cudaStream_t s)
{
    TRY(cudaEventRecord(st->join, st->side));
    return cudaStreamWaitEvent(s, st->join, 0);
}

/* The expert cache after a pass of n tokens (whose choices the host functions logged): the
 * policy's loads (if may_load: a decode call's; a prompt, whatever its passes, would churn),
 * applied in order to the host's copy of the expert tables and to the host's flags; then each
 * slot whose expert changed gets the final one's three matrices from the mapping, and the
 * tables go up in one copy. The next pass, graph or not, reads the new tables. A failure here
 * leaves the tables, the flags and the policy apart, so the engine refuses every later pass. */
cudaError_t swap_experts(cuda_state *st, engine *en, int n, bool may_load)
{
    const model_desc *d = en->desc;
    const int ne = d->route.n_experts, k = d->route.k, n_moe = expert_swap_moe_layers(st->swap);
    const size_t per_pass = (size_t)st->batch * k;
    for (int m = 0; m < n_moe; m++)
        st->swap_ids[m] = st->hids_log + (size_t)expert_swap_layer(st->swap, m) * per_pass;
    const int made = expert_swap_pass(st->swap, st->swap_ids, n, k, may_load, st->swap_loads,
                                      (int)per_pass * n_moe);
    if (made <= 0)
        return made < 0 ? cudaErrorInvalidValue : cudaSuccess;
    st->broken = true; /* until the copies below have gone through */
    for (int i = 0; i < made; i++) {
        const expert_swap_load &ld = st->swap_loads[i];
        const size_t at_new = (size_t)ld.layer * 3 * ne + ld.expert;
        const size_t at_old = (size_t)ld.old_layer * 3 * ne + ld.old_expert;
        const md_ffn &x = d->layers[ld.layer].experts[ld.expert];
        const md_matrix *src[3] = {&x.gate, &x.up, &x.down};
        for (int j = 0; j < 3; j++) {
            const dmat &slot = st->slot_mem[3 * ld.slot + j];
            st->tables_host[at_old + (size_t)j * ne].data = NULL;
            st->tables_host[at_new + (size_t)j * ne] =
                dmat{slot.data, src[j]->type, src[j]->rows, src[j]->cols, src[j]->group};
        }
        host_experts_place(st->he, ld.old_layer, ld.old_expert, false);
        host_experts_place(st->he, ld.layer, ld.expert, true);
        st->slot_dirty[ld.slot] = true;
    }
    for (int s = 0; s < expert_swap_slots(st->swap); s++) {
        if (!st->slot_dirty[s])
            continue;
        st->slot_dirty[s] = false;
        int l, x;
        expert_swap_slot_expert(st->swap, s, &l, &x);
        const md_ffn &f = d->layers[l].experts[x];
        const md_matrix *src[3] = {&f.gate, &f.up, &f.down};
        for (int j = 0; j < 3; j++)
            TRY(cudaMemcpyAsync((void *)st->slot_mem[3 * s + j].data, src[j]->data,
                                md_bytes(*src[j]), cudaMemcpyHostToDevice, st->stream));
    }
    TRY(cudaMemcpyAsync(st->tables, st->tables_host, (size_t)d->n_layers * 3 * ne * sizeof(dmat),
                        cudaMemcpyHostToDevice, st->stream));
    TRY(cudaStreamSynchronize(st->stream));
    st->broken = false;
    return cudaSuccess;
}

void offload_free(cuda_state *st)
{
    void *pinned[] = {st->hx, st->hw, st->hout, st->hids};
    for (size_t i = 0; i < sizeof pinned / sizeof pinned[0]; i++)
        if (pinned[i])
            cudaFreeHost(pinned[i]);
    if (st->fork)
        cudaEventDestroy(st->fork);
    if (st->join)
        cudaEventDestroy(st->join);
    if (st->done)
        cudaEventDestroy(st->done);
    if (st->side)
        cudaStreamDestroy(st->side);
    free(st->holes);
    free(st->hole_before);
    free(st->host_layer);
    free(st->calls);
    free(st->tables_host);
    free(st->slot_mem);
    free(st->swap_loads);
    free(st->swap_ids);
    free(st->hids_log);
    free(st->slot_dirty);
}
