/* Routed experts left in host memory by a device engine (see offload.h). */
#include "offload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "vram_plan.h"

/* What the placement places, from the weights (a file or a model built in memory): one entry
 * per routed expert (gate, up and down), and one for the rest of the mapping (every other
 * tensor, the header and the padding: all of it goes to the device). */
static int expert_plan(const model *m, planned_tensor **plan, uint64_t **bytes, int *n)
{
    const int ne = m->cfg->n_routed_experts;
    int count = 1;
    for (int l = 0; l < m->w.n_layers; l++)
        count += m->w.layers[l].moe ? ne : 0;
    *plan = calloc((size_t)count, sizeof **plan);
    *bytes = calloc((size_t)count, sizeof **bytes);
    if (!*plan || !*bytes) {
        free(*plan);
        free(*bytes);
        return DSQ_ERESOURCE;
    }
    uint64_t experts = 0;
    int at = 1;
    for (int l = 0; l < m->w.n_layers; l++)
        for (int e = 0; m->w.layers[l].moe && e < ne; e++, at++) {
            const ffn_weights *x = &m->w.layers[l].experts[e];
            (*plan)[at] = (planned_tensor){.cls = TC_ROUTED_EXPERT, .layer = l, .expert = e};
            (*bytes)[at] = weights_matrix_bytes(&x->gate) + weights_matrix_bytes(&x->up) +
                           weights_matrix_bytes(&x->down);
            experts += (*bytes)[at];
        }
    (*plan)[0] = (planned_tensor){.cls = TC_ATTENTION, .layer = -1, .expert = -1};
    (*bytes)[0] = m->file.file.size > experts ? m->file.file.size - experts : 0;
    *n = count;
    return DSQ_OK;
}

uint64_t offload_reserve(const model *m, int n_seq)
{
    vram_model vm = placement_vram_model(m->cfg, 0);
    vram_plan one, all;
    vram_plan_make(&one, &vm, m->ctx);
    vm.n_seq = n_seq > 1 ? n_seq : 1;
    vram_plan_make(&all, &vm, m->ctx);
    return (all.total - one.total) + vram_host_result_bytes(m->cfg->hidden_size);
}

int offload_plan(const model *m, int n_seq, uint64_t budget, const expert_stats *stats,
                 placement *p, unsigned char **on_gpu, dsq_error *err)
{
    *on_gpu = NULL;
    const uint64_t reserve = offload_reserve(m, n_seq);
    const int ne = m->cfg->n_routed_experts, nl = m->cfg->n_layers;
    planned_tensor *plan = NULL;
    uint64_t *bytes = NULL;
    int n = 0;
    unsigned char *flags = calloc((size_t)nl * ne + 1, 1);
    if (!flags || expert_plan(m, &plan, &bytes, &n)) {
        free(flags);
        return dsq_fail(err, DSQ_ERESOURCE, "out of memory for the expert placement");
    }
    int rc = placement_make(p, m->cfg, plan, bytes, n, budget > reserve ? budget - reserve : 0,
                            m->ctx, stats, err);
    free(plan);
    free(bytes);
    if (rc) {
        free(flags);
        char why[sizeof err->msg / 2];
        memcpy(why, err->msg, sizeof why - 1);
        why[sizeof why - 1] = '\0';
        return dsq_fail(err, rc,
                        "%s: not enough device memory: %s (of the %.2f GB budget, %.2f GB go to "
                        "further sequences' caches and the host experts' results)",
                        m->file.file.path, why, budget / 1e9, reserve / 1e9);
    }
    for (int i = 0; i < p->n_moe; i++)
        for (int e = 0; e < ne; e++)
            flags[(size_t)p->moe_layer[i] * ne + e] = p->on_gpu[(size_t)i * ne + e];
    *on_gpu = flags;
    return DSQ_OK;
}

int offload_budget(const model *m, int n_seq, double share, uint64_t *budget, dsq_error *err)
{
    placement p;
    unsigned char *flags;
    /* the smallest plan: every expert in host memory */
    int rc = offload_plan(m, n_seq, UINT64_MAX / 2, NULL, &p, &flags, err);
    if (rc)
        return rc;
    free(flags);
    const uint64_t experts = p.class_bytes[TC_ROUTED_EXPERT];
    *budget = offload_reserve(m, n_seq) + p.resident + (uint64_t)(share * (double)experts);
    placement_free(&p);
    return DSQ_OK;
}
