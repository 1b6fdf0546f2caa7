/* The GPU / host placement plan (see placement.h). */
#include "placement.h"

#include <stdlib.h>
#include <string.h>

#include "dsq_format.h"
#include "types.h"

vram_model placement_vram_model(const dsq_model_config *c, uint64_t weight_bytes)
{
    const bool mla = c->family == DSQ_FAMILY_V2;
    vram_model v = {mla,
                    c->n_layers,
                    c->hidden_size,
                    c->vocab_size,
                    c->n_heads,
                    c->n_kv_heads,
                    c->head_dim,
                    c->q_lora_rank,
                    c->kv_lora_rank,
                    c->qk_nope_head_dim,
                    c->qk_rope_head_dim,
                    c->v_head_dim,
                    c->n_routed_experts,
                    c->n_experts_per_tok,
                    0,
                    0,
                    mla ? c->qk_rope_head_dim : c->head_dim,
                    weight_bytes,
                    1};
    for (int l = 0; l < c->n_layers; l++) {
        const bool moe = model_layer_is_moe(c, l);
        const int ffn = moe ? c->n_shared_experts * c->moe_intermediate_size : c->intermediate_size;
        v.ffn_inter = ffn > v.ffn_inter ? ffn : v.ffn_inter;
        if (moe)
            v.expert_inter = c->moe_intermediate_size;
    }
    return v;
}

int placement_bytes_from_config(const dsq_model_config *c, const recipe_options *r,
                                planned_tensor **plan, uint64_t **bytes, int *n, dsq_error *err)
{
    *plan = NULL;
    *bytes = NULL;
    int rc = tensor_plan_build(c, plan, n, err);
    if (rc)
        return rc;
    tensor_choice *choices = malloc((size_t)*n * sizeof *choices);
    *bytes = malloc((size_t)*n * sizeof **bytes);
    char *unused = NULL;
    if (!choices || !*bytes)
        rc = dsq_fail(err, DSQ_ERESOURCE, "out of memory for the tensor plan");
    if (!rc)
        rc = recipe_resolve(r, *plan, *n, choices, &unused, err);
    for (int i = 0; !rc && i < *n; i++) {
        dsq_tensor_info t = {.ndim = (*plan)[i].ndim};
        for (uint32_t d = 0; d < t.ndim; d++)
            t.shape[d] = (*plan)[i].shape[d];
        uint64_t rows, cols;
        dsq_tensor_rows_cols(&t, &rows, &cols);
        if (!dsq_type_nbytes(choices[i].type, rows, cols, choices[i].group, &(*bytes)[i]))
            rc = dsq_fail(err, DSQ_EINPUT, "tensor %s: its shape does not fit type %s",
                          (*plan)[i].name, dsq_type_info(choices[i].type)->name);
    }
    free(unused);
    free(choices);
    if (rc) {
        free(*plan);
        free(*bytes);
        *plan = NULL;
        *bytes = NULL;
    }
    return rc;
}

void placement_free(placement *p)
{
    free(p->moe_layer);
    free(p->gpu_per_layer);
    free(p->on_gpu);
    memset(p, 0, sizeof *p);
}

/* Experts in the order they get GPU slots. */
typedef struct {
    int key; /* moe * n_experts + expert */
    uint64_t count;
    int rank; /* without stats: expert-major, so every layer gets the same share */
} candidate;

static int by_heat(const void *a, const void *b)
{
    const candidate *x = a, *y = b;
    if (x->count != y->count)
        return x->count < y->count ? 1 : -1;
    return x->rank - y->rank;
}

int placement_make(placement *p, const dsq_model_config *c, const planned_tensor *plan,
                   const uint64_t *bytes, int n, uint64_t vram, int ctx, const expert_stats *stats,
                   dsq_error *err)
{
    memset(p, 0, sizeof *p);
    p->vram = vram;
    p->ctx = ctx;
    p->n_experts = c->n_routed_experts;
    for (int l = 0; l < c->n_layers; l++)
        p->n_moe += model_layer_is_moe(c, l);
    const size_t n_keys = (size_t)p->n_moe * p->n_experts;
    int *moe_of_layer = malloc((size_t)c->n_layers * sizeof(int));
    uint64_t *expert_bytes = calloc(n_keys ? n_keys : 1, sizeof(uint64_t));
    candidate *order = malloc((n_keys ? n_keys : 1) * sizeof *order);
    p->moe_layer = malloc((size_t)(p->n_moe ? p->n_moe : 1) * sizeof(int));
    p->gpu_per_layer = calloc((size_t)(p->n_moe ? p->n_moe : 1), sizeof(int));
    p->on_gpu = calloc(n_keys ? n_keys : 1, 1);
    int rc = DSQ_OK;
    if (!moe_of_layer || !expert_bytes || !order || !p->moe_layer || !p->gpu_per_layer ||
        !p->on_gpu) {
        rc = dsq_fail(err, DSQ_ERESOURCE, "out of memory for the placement plan");
        goto done;
    }
    for (int l = 0, m = 0; l < c->n_layers; l++) {
        moe_of_layer[l] = model_layer_is_moe(c, l) ? m : -1;
        if (moe_of_layer[l] >= 0)
            p->moe_layer[m++] = l;
    }
    uint64_t all = 0;
    for (int i = 0; i < n; i++) {
        p->class_bytes[plan[i].cls] += bytes[i];
        all += bytes[i];
        if (plan[i].cls == TC_ROUTED_EXPERT)
            expert_bytes[(size_t)moe_of_layer[plan[i].layer] * p->n_experts + plan[i].expert] +=
                bytes[i];
    }
    p->resident_weights = all - p->class_bytes[TC_ROUTED_EXPERT];
    vram_plan vp;
    const vram_model vm = placement_vram_model(c, p->resident_weights);
    vram_plan_make(&vp, &vm, ctx);
    p->kv_cache = vp.cache_bytes;
    p->work = vp.work_bytes;
    p->resident = vp.total;
    p->experts_total = (int)n_keys;
    p->experts_host_bytes = p->class_bytes[TC_ROUTED_EXPERT];
    if (p->resident > vram) {
        rc = dsq_fail(err, DSQ_ERESOURCE,
                      "--vram %.2f GB is too small: the GPU-resident part needs %.2f GB "
                      "(%llu bytes: weights other than routed experts %.2f GB, KV cache at "
                      "--ctx %d %.2f GB, work buffers %.2f GB) before any routed expert",
                      vram / 1e9, p->resident / 1e9, (unsigned long long)p->resident,
                      p->resident_weights / 1e9, ctx, p->kv_cache / 1e9, p->work / 1e9);
        goto done;
    }
    p->by_stats = stats != NULL;
    uint64_t total_uses = 0;
    for (size_t key = 0; key < n_keys; key++) {
        const int m = (int)(key / (size_t)p->n_experts), e = (int)(key % (size_t)p->n_experts);
        order[key].key = (int)key;
        order[key].count = stats ? stats->counts[key] : 0;
        order[key].rank = stats ? (int)key : e * p->n_moe + m;
        total_uses += order[key].count;
    }
    qsort(order, n_keys, sizeof *order, by_heat);
    uint64_t room = vram - p->resident, gpu_uses = 0;
    for (size_t i = 0; i < n_keys; i++) {
        const int key = order[i].key;
        if (expert_bytes[key] > room)
            continue; /* a smaller expert (another type) may still fit */
        room -= expert_bytes[key];
        p->on_gpu[key] = 1;
        p->gpu_per_layer[key / p->n_experts]++;
        p->experts_gpu++;
        p->experts_gpu_bytes += expert_bytes[key];
        gpu_uses += order[i].count;
    }
    p->experts_host_bytes -= p->experts_gpu_bytes;
    p->routed_share_gpu = total_uses ? (double)gpu_uses / (double)total_uses : 0;
done:
    free(moe_of_layer);
    free(expert_bytes);
    free(order);
    if (rc) {
        const placement keep = *p; /* the sizes stay readable after a refusal */
        placement_free(p);
        memcpy(p->class_bytes, keep.class_bytes, sizeof keep.class_bytes);
        p->vram = keep.vram;
        p->ctx = keep.ctx;
        p->resident_weights = keep.resident_weights;
        p->kv_cache = keep.kv_cache;
        p->work = keep.work;
        p->resident = keep.resident;
    }
    return rc;
}
