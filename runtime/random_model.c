/* Random full-size models in memory for GPU benchmarks (see random_model.h). */
#include "random_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "float16.h"
#include "types.h"

static dsq_model_config published(const char *name)
{
    dsq_model_config c = {0};
    c.vocab_size = 102400;
    c.hidden_size = 2048;
    c.intermediate_size = 10944;
    c.moe_intermediate_size = 1408;
    c.n_routed_experts = 64;
    c.n_shared_experts = 2;
    c.n_experts_per_tok = 6;
    c.first_k_dense_replace = 1;
    c.moe_layer_freq = 1;
    c.topk_method = DSQ_TOPK_GREEDY;
    c.n_group = c.topk_group = 1;
    c.routed_scaling_factor = 1.0;
    c.rms_norm_eps = 1e-6;
    c.rope_theta = 10000;
    c.bos_token_id = 100000;
    c.eos_token_id = 100001;
    if (!strcmp(name, "moe-16b")) {
        c.family = DSQ_FAMILY_V1;
        c.n_layers = 28;
        c.n_heads = c.n_kv_heads = 16;
        c.head_dim = 128;
        c.max_position_embeddings = 4096;
        return c;
    }
    c.family = DSQ_FAMILY_V2;
    c.n_layers = 27;
    c.n_heads = 16;
    c.kv_lora_rank = 512;
    c.qk_nope_head_dim = 128;
    c.qk_rope_head_dim = 64;
    c.v_head_dim = 128;
    c.max_position_embeddings = 163840;
    c.rope_yarn = true;
    c.yarn_factor = 40;
    c.yarn_original_max_position = 4096;
    c.yarn_beta_fast = 32;
    c.yarn_beta_slow = 1;
    c.yarn_mscale = c.yarn_mscale_all_dim = 0.707;
    if (!strcmp(name, "v2")) {
        c.n_layers = 60;
        c.hidden_size = 5120;
        c.n_heads = 128;
        c.q_lora_rank = 1536;
        c.intermediate_size = 12288;
        c.moe_intermediate_size = 1536;
        c.n_routed_experts = 160;
        c.topk_method = DSQ_TOPK_GROUP_LIMITED;
        c.n_group = 8;
        c.topk_group = 3;
        c.routed_scaling_factor = 16.0;
    }
    return c;
}

#define ALIGN 4096
#define GROUP 64

typedef struct {
    random_model *r;
    bool sizing; /* first pass counts bytes, second fills views */
    uint32_t embed_type, dense_type, expert_type;
} layout;

static dsq_matrix place(layout *l, int rows, int cols, uint32_t type)
{
    uint64_t bytes = 0;
    dsq_type_nbytes(type, (uint64_t)rows, (uint64_t)cols,
                    dsq_type_info(type)->quantized ? GROUP : 0, &bytes);
    size_t at = (l->r->size + ALIGN - 1) / ALIGN * ALIGN;
    l->r->size = at + bytes;
    return (dsq_matrix){l->sizing ? NULL : l->r->buf + at, type, rows, cols,
                        dsq_type_info(type)->quantized ? GROUP : 0, NULL};
}

static const float *place_norm(layout *l, int n)
{
    dsq_matrix v = place(l, 1, n, DSQ_TYPE_F32);
    return v.data;
}

static void place_ffn(layout *l, ffn_weights *f, int hidden, int inter, uint32_t type)
{
    f->gate = place(l, inter, hidden, type);
    f->up = place(l, inter, hidden, type);
    f->down = place(l, hidden, inter, type);
}

/* Lays out every weight (sizing only, or filling the views). */
static void lay_out(layout *l, const dsq_model_config *c, model_weights *w)
{
    const uint32_t t = l->dense_type;
    const int h = c->hidden_size, nh = c->n_heads;
    l->r->size = 0;
    w->embed = place(l, c->vocab_size, h, l->embed_type);
    for (int i = 0; i < c->n_layers; i++) {
        layer_weights *lw = &w->layers[i];
        lw->attn_norm = place_norm(l, h);
        lw->ffn_norm = place_norm(l, h);
        if (c->family == DSQ_FAMILY_V1) {
            lw->wq = place(l, nh * c->head_dim, h, t);
            lw->wk = place(l, c->n_kv_heads * c->head_dim, h, t);
            lw->wv = place(l, c->n_kv_heads * c->head_dim, h, t);
            lw->wo = place(l, h, nh * c->head_dim, t);
        } else {
            const int qk = c->qk_nope_head_dim + c->qk_rope_head_dim;
            if (c->q_lora_rank) {
                lw->q_a = place(l, c->q_lora_rank, h, t);
                lw->q_a_norm = place_norm(l, c->q_lora_rank);
                lw->q_b = place(l, nh * qk, c->q_lora_rank, t);
            } else {
                lw->wq = place(l, nh * qk, h, t);
            }
            lw->kv_a = place(l, c->kv_lora_rank + c->qk_rope_head_dim, h, t);
            lw->kv_a_norm = place_norm(l, c->kv_lora_rank);
            lw->kv_b = place(l, nh * (c->qk_nope_head_dim + c->v_head_dim), c->kv_lora_rank, t);
            lw->wo = place(l, h, nh * c->v_head_dim, t);
        }
        lw->moe = model_layer_is_moe(c, i);
        if (!lw->moe) {
            place_ffn(l, &lw->dense, h, c->intermediate_size, t);
            continue;
        }
        lw->router = place(l, c->n_routed_experts, h, DSQ_TYPE_F32);
        lw->has_shared = c->n_shared_experts > 0;
        if (lw->has_shared)
            place_ffn(l, &lw->shared, h, c->n_shared_experts * c->moe_intermediate_size, t);
        for (int e = 0; e < c->n_routed_experts; e++)
            place_ffn(l, &lw->experts[e], h, c->moe_intermediate_size, l->expert_type);
    }
    w->norm = place_norm(l, h);
    w->output = place(l, c->vocab_size, h, t);
}

/* Random codes with small scales: q8 d = 1/(64 sqrt(cols)), q6 d = 1/(32 sqrt(cols)), q4
 * d = 1/(8 sqrt(cols)) with m = -7.5 d (centred), bf16 and f32 uniform in +-1/sqrt(cols),
 * norms 1. */
static void fill(const dsq_matrix *m, uint64_t seed)
{
    const uint64_t n = (uint64_t)m->rows * m->cols;
    const float s = 1.0f / sqrtf((float)m->cols);
    uint8_t *p = (uint8_t *)m->data;
    if (m->rows == 1 && m->type == DSQ_TYPE_F32) { /* a norm */
        for (uint64_t i = 0; i < n; i++)
            ((float *)p)[i] = 1.0f;
        return;
    }
    const uint64_t codes = m->type == DSQ_TYPE_Q8   ? n
                           : m->type == DSQ_TYPE_Q6 ? 3 * n / 4 /* both code planes */
                           : m->type == DSQ_TYPE_Q4 ? n / 2
                                                    : 0;
    uint64_t words = codes / 8;
#pragma omp parallel for schedule(static)
    for (uint64_t i = 0; i < words; i++) {
        uint64_t x = (seed + i) * 0x9e3779b97f4a7c15ull;
        x ^= x >> 31, x *= 0xbf58476d1ce4e5b9ull, x ^= x >> 29;
        memcpy(p + 8 * i, &x, 8);
    }
    if (codes) {
        uint16_t *sc = (uint16_t *)(p + codes);
        const uint64_t groups = n / m->group;
        const uint16_t d = dsq_f32_to_f16(m->type == DSQ_TYPE_Q8   ? s / 64
                                          : m->type == DSQ_TYPE_Q6 ? s / 32
                                                                   : s / 8);
        const uint16_t mn = dsq_f32_to_f16(-7.5f * s / 8);
        for (uint64_t g = 0; g < groups; g++) {
            if (m->type != DSQ_TYPE_Q4) {
                sc[g] = d;
            } else {
                sc[2 * g] = d;
                sc[2 * g + 1] = mn;
            }
        }
        return;
    }
#pragma omp parallel for schedule(static)
    for (uint64_t i = 0; i < n; i++) {
        uint64_t x = (seed + i) * 0x9e3779b97f4a7c15ull;
        x ^= x >> 31, x *= 0xbf58476d1ce4e5b9ull, x ^= x >> 29;
        const float v = ((float)(x >> 40) / (float)(1ull << 24) * 2 - 1) * s;
        if (m->type == DSQ_TYPE_F32)
            ((float *)p)[i] = v;
        else
            ((uint16_t *)p)[i] = dsq_f32_to_bf16(v);
    }
}

static void fill_all(const dsq_model_config *c, const model_weights *w)
{
    uint64_t seed = 1;
    fill(&w->embed, seed++ << 40);
    fill(&w->output, seed++ << 40);
    const dsq_matrix norm = {w->norm, DSQ_TYPE_F32, 1, c->hidden_size, 0, NULL};
    fill(&norm, 0);
    for (int i = 0; i < c->n_layers; i++) {
        const layer_weights *lw = &w->layers[i];
        const dsq_matrix *ms[] = {&lw->wq,          &lw->wk,        &lw->wv,         &lw->q_a,
                                  &lw->q_b,         &lw->kv_a,      &lw->kv_b,       &lw->wo,
                                  &lw->dense.gate,  &lw->dense.up,  &lw->dense.down, &lw->router,
                                  &lw->shared.gate, &lw->shared.up, &lw->shared.down};
        for (size_t j = 0; j < sizeof ms / sizeof ms[0]; j++)
            if (ms[j]->data)
                fill(ms[j], seed++ << 40);
        const float *norms[] = {lw->attn_norm, lw->ffn_norm, lw->q_a_norm, lw->kv_a_norm};
        const int dims[] = {c->hidden_size, c->hidden_size, c->q_lora_rank, c->kv_lora_rank};
        for (int j = 0; j < 4; j++)
            if (norms[j]) {
                const dsq_matrix v = {norms[j], DSQ_TYPE_F32, 1, dims[j], 0, NULL};
                fill(&v, 0);
            }
        for (int e = 0; lw->moe && e < c->n_routed_experts; e++) {
            fill(&lw->experts[e].gate, seed++ << 40);
            fill(&lw->experts[e].up, seed++ << 40);
            fill(&lw->experts[e].down, seed++ << 40);
        }
    }
}

int random_model_build(random_model *r, const char *name, const char *quant, int layers, int ctx,
                       dsq_error *err)
{
    memset(r, 0, sizeof *r);
    if (strcmp(name, "v2-lite") && strcmp(name, "moe-16b") && strcmp(name, "v2"))
        return dsq_fail(err, DSQ_EUSAGE, "--random %s: the models are v2-lite, moe-16b and v2",
                        name);
    if (strcmp(quant, "bf16") && strcmp(quant, "q8") && strcmp(quant, "q4") &&
        strcmp(quant, "q4-q6"))
        return dsq_fail(err, DSQ_EUSAGE, "--quant %s: random models take bf16, q8, q4 or q4-q6",
                        quant);
    r->name = name;
    model *m = &r->m;
    dsq_model_config *c = &m->file.config;
    *c = published(name);
    if (layers > 0 && layers < c->n_layers)
        c->n_layers = layers;
    if (ctx < 1 || ctx > c->max_position_embeddings)
        return dsq_fail(err, DSQ_EUSAGE, "--ctx %d out of range: the model takes 1..%d tokens", ctx,
                        c->max_position_embeddings);
    m->cfg = c;
    m->ctx = ctx;
    m->w.n_layers = c->n_layers;
    m->w.layers = calloc((size_t)c->n_layers, sizeof *m->w.layers);
    for (int i = 0; m->w.layers && i < c->n_layers; i++)
        if (model_layer_is_moe(c, i) &&
            !(m->w.layers[i].experts = calloc((size_t)c->n_routed_experts, sizeof(ffn_weights)))) {
            random_model_free(r);
            return dsq_fail(err, DSQ_ERESOURCE, "out of memory");
        }
    if (!m->w.layers)
        return dsq_fail(err, DSQ_ERESOURCE, "out of memory");
    /* the types of the presets of the same names (convert/recipe.c) */
    const uint32_t embed = !strcmp(quant, "bf16") ? DSQ_TYPE_BF16 : DSQ_TYPE_Q8;
    const uint32_t dense = !strcmp(quant, "q4-q6") ? DSQ_TYPE_Q6 : embed;
    layout l = {r, true, embed, dense, !strncmp(quant, "q4", 2) ? DSQ_TYPE_Q4 : dense};
    lay_out(&l, c, &m->w);
    if (!(r->buf = aligned_alloc(ALIGN, (r->size + ALIGN - 1) / ALIGN * ALIGN))) {
        random_model_free(r);
        return dsq_fail(err, DSQ_ERESOURCE, "out of memory for %.1f GB of random weights",
                        r->size / 1e9);
    }
    l.sizing = false;
    lay_out(&l, c, &m->w);
    fill_all(c, &m->w);
    m->file.file.map = r->buf;
    m->file.file.size = r->size;
    snprintf(r->label, sizeof r->label, "random %s %s", name, quant);
    m->file.file.path = r->label;
    m->be = &dsq_backend_cpu;
    int rc = model_state_init(m, err);
    if (rc)
        random_model_free(r);
    return rc;
}

void random_model_free(random_model *r)
{
    weights_free(&r->m.w);
    if (r->m.cfg)
        model_state_free(&r->m);
    free(r->buf);
    memset(r, 0, sizeof *r);
}

static double matrix_bytes(const dsq_matrix *w)
{
    return (double)weights_matrix_bytes(w);
}

double random_model_bytes_per_token(const random_model *r)
{
    const dsq_model_config *c = r->m.cfg;
    const model_weights *w = &r->m.w;
    double total = matrix_bytes(&w->output) + matrix_bytes(&w->embed) / c->vocab_size;
    for (int i = 0; i < c->n_layers; i++) {
        const layer_weights *lw = &w->layers[i];
        const dsq_matrix *ms[] = {&lw->wq,          &lw->wk,        &lw->wv,         &lw->q_a,
                                  &lw->q_b,         &lw->kv_a,      &lw->kv_b,       &lw->wo,
                                  &lw->dense.gate,  &lw->dense.up,  &lw->dense.down, &lw->router,
                                  &lw->shared.gate, &lw->shared.up, &lw->shared.down};
        for (size_t j = 0; j < sizeof ms / sizeof ms[0]; j++)
            total += matrix_bytes(ms[j]);
        if (lw->moe)
            total += c->n_experts_per_tok *
                     (matrix_bytes(&lw->experts[0].gate) + matrix_bytes(&lw->experts[0].up) +
                      matrix_bytes(&lw->experts[0].down));
    }
    return total;
}
