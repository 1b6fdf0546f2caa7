/* Routed experts left in host memory by a device engine (see offload.h). */
#include "offload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "vram_plan.h"

/* The stored size of each planned tensor, and their sum. */
static uint64_t *tensor_bytes(const model *m, uint64_t *sum)
{
    uint64_t *bytes = malloc((size_t)(m->file.n_plan ? m->file.n_plan : 1) * sizeof *bytes);
    *sum = 0;
    for (int i = 0; bytes && i < m->file.n_plan; i++)
        *sum += bytes[i] = m->file.tensors[i]->size;
    return bytes;
}

uint64_t offload_reserve(const model *m, int n_seq)
{
    uint64_t tensors = 0;
    free(tensor_bytes(m, &tensors));
    vram_model vm = placement_vram_model(m->cfg, 0);
    vram_plan one, all;
    vram_plan_make(&one, &vm, m->ctx);
    vm.n_seq = n_seq > 1 ? n_seq : 1;
    vram_plan_make(&all, &vm, m->ctx);
    return (m->file.file.size - tensors) + (all.total - one.total) +
           vram_host_result_bytes(m->cfg->hidden_size);
}

int offload_plan(const model *m, int n_seq, uint64_t budget, placement *p, unsigned char **on_gpu,
                 dsq_error *err)
{
    *on_gpu = NULL;
    const uint64_t reserve = offload_reserve(m, n_seq);
    uint64_t sum;
    uint64_t *bytes = tensor_bytes(m, &sum);
    const int ne = m->cfg->n_routed_experts, nl = m->cfg->n_layers;
    unsigned char *flags = calloc((size_t)nl * ne + 1, 1);
    if (!bytes || !flags) {
        free(bytes);
        free(flags);
        return dsq_fail(err, DSQ_ERESOURCE, "out of memory for the expert placement");
    }
    int rc = placement_make(p, m->cfg, m->file.plan, bytes, m->file.n_plan,
                            budget > reserve ? budget - reserve : 0, m->ctx, NULL, err);
    free(bytes);
    if (rc) {
        free(flags);
        char why[sizeof err->msg / 2];
        memcpy(why, err->msg, sizeof why - 1);
        why[sizeof why - 1] = '\0';
        return dsq_fail(err, rc,
                        "%s: not enough device memory: %s (of the %.2f GB budget, %.2f GB go to "
                        "the file's header, further sequences' caches and the host experts' "
                        "results)",
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
    int rc = offload_plan(m, n_seq, UINT64_MAX / 2, &p, &flags, err);
    if (rc)
        return rc;
    free(flags);
    const uint64_t experts = p.class_bytes[TC_ROUTED_EXPERT];
    *budget = offload_reserve(m, n_seq) + p.resident + (uint64_t)(share * (double)experts);
    placement_free(&p);
    return DSQ_OK;
}
