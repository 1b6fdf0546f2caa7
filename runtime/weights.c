/* Binds each planned tensor of a model file to its field in the weight structs. */
#include "weights.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "types.h"

/* Field of layer L that the plan entry (by its name suffix) fills; NULL for norms. */
static dsq_matrix *matrix_slot(layer_weights *l, const planned_tensor *p)
{
    const char *dot = strchr(p->name + strlen("layers."), '.');
    const char *suffix = dot ? dot + 1 : "";
    static const struct {
        const char *suffix;
        size_t offset;
    } slots[] = {
        {"attn.q", offsetof(layer_weights, wq)},
        {"attn.k", offsetof(layer_weights, wk)},
        {"attn.v", offsetof(layer_weights, wv)},
        {"attn.o", offsetof(layer_weights, wo)},
        {"attn.q_a", offsetof(layer_weights, q_a)},
        {"attn.q_b", offsetof(layer_weights, q_b)},
        {"attn.kv_a", offsetof(layer_weights, kv_a)},
        {"attn.kv_b", offsetof(layer_weights, kv_b)},
        {"mlp.gate", offsetof(layer_weights, dense.gate)},
        {"mlp.up", offsetof(layer_weights, dense.up)},
        {"mlp.down", offsetof(layer_weights, dense.down)},
        {"mlp.router", offsetof(layer_weights, router)},
        {"mlp.shared.gate", offsetof(layer_weights, shared.gate)},
        {"mlp.shared.up", offsetof(layer_weights, shared.up)},
        {"mlp.shared.down", offsetof(layer_weights, shared.down)},
    };
    for (size_t i = 0; i < sizeof slots / sizeof slots[0]; i++)
        if (strcmp(suffix, slots[i].suffix) == 0)
            return (dsq_matrix *)((char *)l + slots[i].offset);
    return NULL;
}

static const float **norm_slot(model_weights *w, const planned_tensor *p)
{
    if (p->layer < 0)
        return &w->norm;
    layer_weights *l = &w->layers[p->layer];
    const char *suffix = strrchr(p->name, '.') + 1;
    if (strcmp(suffix, "attn_norm") == 0)
        return &l->attn_norm;
    if (strcmp(suffix, "ffn_norm") == 0)
        return &l->ffn_norm;
    if (strcmp(suffix, "q_a_norm") == 0)
        return &l->q_a_norm;
    return &l->kv_a_norm;
}

static dsq_matrix view(const model_file *m, int i)
{
    const dsq_tensor_info *t = m->tensors[i];
    return (dsq_matrix){dsq_file_data(&m->file, t), t->type, (int)t->shape[0], (int)t->shape[1],
                        t->group_size, NULL};
}

uint64_t weights_matrix_bytes(const dsq_matrix *w)
{
    uint64_t b = 0;
    if (w->data)
        dsq_type_nbytes(w->type, (uint64_t)w->rows, (uint64_t)w->cols, w->group, &b);
    return b;
}

int weights_build(model_weights *w, const model_file *m, dsq_error *err)
{
    const dsq_model_config *c = &m->config;
    memset(w, 0, sizeof *w);
    w->n_layers = c->n_layers;
    w->layers = calloc((size_t)c->n_layers, sizeof *w->layers);
    if (!w->layers)
        return dsq_fail(err, DSQ_ERESOURCE, "%s: out of memory", m->file.path);
    for (int l = 0; l < c->n_layers; l++) {
        layer_weights *lw = &w->layers[l];
        lw->moe = model_layer_is_moe(c, l);
        lw->has_shared = lw->moe && c->n_shared_experts > 0;
        if (lw->moe && !(lw->experts = calloc((size_t)c->n_routed_experts, sizeof *lw->experts))) {
            weights_free(w);
            return dsq_fail(err, DSQ_ERESOURCE, "%s: out of memory", m->file.path);
        }
    }
    for (int i = 0; i < m->n_plan; i++) {
        const planned_tensor *p = &m->plan[i];
        if (p->cls == TC_NORM) {
            if (m->tensors[i]->type != DSQ_TYPE_F32) {
                weights_free(w);
                return dsq_fail(err, DSQ_EINPUT, "%s: norm %s must be stored as f32",
                                m->file.path, p->name);
            }
            *norm_slot(w, p) = dsq_file_data(&m->file, m->tensors[i]);
        } else if (p->cls == TC_EMBEDDING) {
            w->embed = view(m, i);
        } else if (p->cls == TC_OUTPUT) {
            w->output = view(m, i);
        } else if (p->cls == TC_ROUTED_EXPERT) {
            ffn_weights *e = &w->layers[p->layer].experts[p->expert];
            const char *part = strrchr(p->name, '.') + 1;
            dsq_matrix *slot = part[0] == 'g' ? &e->gate : part[0] == 'u' ? &e->up : &e->down;
            *slot = view(m, i);
        } else {
            dsq_matrix *slot = matrix_slot(&w->layers[p->layer], p);
            if (slot)
                *slot = view(m, i);
        }
    }
    return DSQ_OK;
}

void weights_free(model_weights *w)
{
    if (w->packed_arena)
        munmap(w->packed_arena, w->packed_bytes);
    for (int l = 0; l < w->n_layers && w->layers; l++)
        free(w->layers[l].experts);
    free(w->layers);
    memset(w, 0, sizeof *w);
}
