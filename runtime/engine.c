/* Engine selection, the model description backends read, and the CPU engine (model_forward). */
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_pack.h"
#include "dsq_format.h"
#include "expert_cache.h"
#include "expert_stats.h"
#include "expert_swap.h"
#include "host_experts.h"
#include "model.h"
#include "offload.h"
#include "progress.h"
#include "types.h"
#ifdef DSQ_HAVE_CUDA
#include "cuda_engine.h"
#endif

bool engine_cuda_built(void)
{
#ifdef DSQ_HAVE_CUDA
    return true;
#else
    return false;
#endif
}

int engine_cuda_devices(void)
{
#ifdef DSQ_HAVE_CUDA
    return cuda_device_count();
#else
    return 0;
#endif
}

static md_matrix md(const dsq_matrix *w)
{
    return (md_matrix){w->data, w->type, w->rows, w->cols, w->group};
}

static md_ffn md_f(const ffn_weights *f)
{
    return (md_ffn){md(&f->gate), md(&f->up), md(&f->down)};
}

static void desc_free(model_desc *d)
{
    for (int l = 0; d->layers && l < d->n_layers; l++)
        free(d->layers[l].experts);
    free(d->layers);
    free(d);
}

static model_desc *desc_build(const model *m)
{
    const dsq_model_config *c = m->cfg;
    model_desc *d = calloc(1, sizeof *d);
    if (!d || !(d->layers = calloc((size_t)c->n_layers, sizeof *d->layers))) {
        free(d);
        return NULL;
    }
    d->mla = c->family == DSQ_FAMILY_V2;
    d->n_layers = c->n_layers;
    d->hidden = c->hidden_size;
    d->vocab = c->vocab_size;
    d->n_heads = c->n_heads;
    d->n_kv_heads = c->n_kv_heads;
    d->head_dim = c->head_dim;
    d->q_lora_rank = c->q_lora_rank;
    d->kv_lora_rank = c->kv_lora_rank;
    d->qk_nope = c->qk_nope_head_dim;
    d->qk_rope = c->qk_rope_head_dim;
    d->v_head_dim = c->v_head_dim;
    d->route = (moe_route_params){c->n_routed_experts,
                                  c->n_experts_per_tok,
                                  c->topk_method == DSQ_TOPK_GROUP_LIMITED,
                                  c->n_group,
                                  c->topk_group,
                                  c->norm_topk_prob,
                                  (float)c->routed_scaling_factor};
    d->rms_eps = (float)c->rms_norm_eps;
    d->softmax_scale = m->softmax_scale;
    d->rope_dim = m->rope.dim;
    d->rope_n_pos = m->rope.n_pos;
    d->rope_interleaved = m->rope.interleaved;
    d->rope_cos = m->rope.cos;
    d->rope_sin = m->rope.sin;
    d->map = m->file.file.map;
    d->map_size = m->file.file.size;
    d->tensor_align = DSQ_ALIGN;
    d->embed = md(&m->w.embed);
    d->output = md(&m->w.output);
    d->norm = m->w.norm;
    for (int l = 0; l < c->n_layers; l++) {
        const layer_weights *w = &m->w.layers[l];
        md_layer *o = &d->layers[l];
        *o = (md_layer){w->attn_norm,   w->ffn_norm,   w->q_a_norm,     w->kv_a_norm,
                        md(&w->wq),     md(&w->wk),    md(&w->wv),      md(&w->q_a),
                        md(&w->q_b),    md(&w->kv_a),  md(&w->kv_b),    md(&w->wo),
                        w->moe,         w->has_shared, md_f(&w->dense), md_f(&w->shared),
                        md(&w->router), NULL};
        if (w->moe) {
            if (!(o->experts = calloc((size_t)c->n_routed_experts, sizeof *o->experts))) {
                desc_free(d);
                return NULL;
            }
            for (int e = 0; e < c->n_routed_experts; e++)
                o->experts[e] = md_f(&w->experts[e]);
        }
    }
    return d;
}

static int cpu_forward(engine *e, const int *tokens, int n, float *logits, bool all_logits,
                       dsq_error *err)
{
    e->model->n_past = e->n_past; /* the CPU cache is positional: a lower n_past truncates */
    return model_forward(e->model, tokens, n, logits, all_logits, err);
}

static void cpu_close(engine *e)
{
    (void)e;
}

static const engine_ops cpu_ops = {"cpu", cpu_forward, cpu_close, NULL, NULL, NULL};

static void swap_close(engine *e)
{
    expert_swap_close(e->expert_swap);
    e->expert_swap = NULL;
}

#ifdef DSQ_HAVE_CUDA
/* Whether every routed expert has the shape and types of the first: then the device's copy of
 * one can take any other (the expert cache). */
static bool experts_alike(const model *m)
{
    const ffn_weights *first = NULL;
    for (int l = 0; l < m->w.n_layers; l++)
        for (int x = 0; m->w.layers[l].moe && x < m->cfg->n_routed_experts; x++) {
            const ffn_weights *f = &m->w.layers[l].experts[x];
            if (!first)
                first = f;
            const dsq_matrix *a[3] = {&first->gate, &first->up, &first->down};
            const dsq_matrix *b[3] = {&f->gate, &f->up, &f->down};
            for (int i = 0; i < 3; i++)
                if (a[i]->type != b[i]->type || a[i]->rows != b[i]->rows ||
                    a[i]->cols != b[i]->cols || a[i]->group != b[i]->group)
                    return false;
        }
    return true;
}

/* The CUDA engine, with the routed experts that do not fit the budget (--vram, else the free
 * memory) left in host memory and computed there. */
static int open_cuda(engine *e, model *m, const engine_options *o, const expert_stats *stats,
                     dsq_error *err)
{
    uint64_t free_b = 0, total_b = 0;
    bool moe = false;
    for (int l = 0; l < m->cfg->n_layers; l++)
        moe |= m->w.layers[l].moe;
    if (!moe || !cuda_memory(&free_b, &total_b))
        return cuda_engine_open(e, o, NULL, err);
    /* the runtime's own use (cudaMalloc's page rounding, kernel modules loaded at first
     * launch, graphs) needs room beside the plan, whether the whole model fits or an offload
     * fills its budget to within an expert */
    const uint64_t margin = total_b / 32 > (1ull << 30) ? total_b / 32 : (1ull << 30);
    const uint64_t usable = free_b > margin ? free_b - margin : 0;
    const uint64_t budget = o->vram && o->vram < usable ? o->vram : usable;
    if (cuda_engine_plan_bytes(e) <= budget)
        return cuda_engine_open(e, o, NULL, err);
    placement p = {0};
    unsigned char *on_gpu = NULL;
    int rc = offload_plan(m, e->n_seq, budget, stats, &p, &on_gpu, err);
    if (!rc)
        rc = host_experts_open(&e->host_experts, m, on_gpu, VRAM_MAX_BATCH, err);
    const bool alike = !rc && o->expert_cache && experts_alike(m);
    if (!rc && cpu_pack_useful()) {
        /* the host's experts on the packed kernels where memory holds them, else planar (the
         * same model); with an expert cache any expert may come back to the host, so all of
         * them if they fit, else those the placement leaves there */
        dsq_error ignored;
        const size_t n = (size_t)m->cfg->n_layers * m->cfg->n_routed_experts;
        unsigned char *none = alike ? calloc(n + 1, 1) : NULL;
        if (none)
            cpu_pack_host_experts(&m->w, m->cfg->n_routed_experts, none, &ignored);
        free(none);
        if (!m->w.packed_arena)
            cpu_pack_host_experts(&m->w, m->cfg->n_routed_experts, on_gpu, &ignored);
    }
    if (!rc) {
        fprintf(stderr,
                "offload: %d of %d routed experts on the GPU (%.2f GB, %s), %d in host memory "
                "(%.2f GB); also on the GPU: other weights %.2f GB, KV cache %.2f GB for --ctx "
                "%d (budget %.2f GB)\n",
                p.experts_gpu, p.experts_total, p.experts_gpu_bytes / 1e9,
                stats ? "the most used" : "the same number per layer",
                p.experts_total - p.experts_gpu, p.experts_host_bytes / 1e9,
                p.resident_weights / 1e9, p.kv_cache / 1e9, m->ctx, budget / 1e9);
        if (o->expert_cache && !alike)
            fprintf(stderr, "offload: --expert-cache: the routed experts differ in shape or "
                            "type, so the placement stays\n");
        if (alike) {
            bool moe_layer[m->cfg->n_layers];
            for (int l = 0; l < m->cfg->n_layers; l++)
                moe_layer[l] = m->w.layers[l].moe;
            rc = expert_swap_open(
                &e->expert_swap, m->cfg->n_layers, m->cfg->n_routed_experts, moe_layer, on_gpu,
                stats ? stats->counts : NULL,
                o->expert_half_life > 0 ? o->expert_half_life : EXPERT_CACHE_HALF_LIFE,
                o->expert_half_life > 0 ? o->expert_margin : EXPERT_CACHE_MARGIN, err);
        }
        const cuda_offload off = {on_gpu, e->host_experts, e->expert_swap};
        if (!rc)
            rc = cuda_engine_open(e, o, &off, err);
    }
    if (rc) {
        host_experts_close(e->host_experts);
        e->host_experts = NULL;
        swap_close(e);
    }
    free(on_gpu);
    placement_free(&p);
    return rc;
}
#endif

int engine_open(engine *e, model *m, const engine_options *o, dsq_error *err)
{
    memset(e, 0, sizeof *e);
    const char *name = o && o->backend ? o->backend : engine_cuda_devices() > 0 ? "cuda" : "cpu";
    if (strcmp(name, "cpu") != 0 && strcmp(name, "cuda") != 0)
        return dsq_fail(err, DSQ_EUSAGE, "--backend %s: the backends are cpu and cuda", name);
    model_desc *d = desc_build(m);
    if (!d)
        return dsq_fail(err, DSQ_ERESOURCE, "out of memory");
    const int n_seq = o && o->n_seq > 1 ? o->n_seq : 1;
    int *seq_past = calloc((size_t)n_seq, sizeof(int));
    if (!seq_past) {
        desc_free(d);
        return dsq_fail(err, DSQ_ERESOURCE, "out of memory");
    }
    *e = (engine){.ops = &cpu_ops,
                  .model = m,
                  .desc = d,
                  .ctx = m->ctx,
                  .n_past = 0,
                  .n_seq = n_seq,
                  .seq_past = seq_past};
    /* checked on every backend, so a wrong file is caught before a GPU run needs it */
    expert_stats stats;
    bool have_stats = false;
    int rc = DSQ_OK;
    if (o && o->expert_stats) {
        rc = expert_stats_load(&stats, o->expert_stats, err);
        if (!rc && (rc = expert_stats_check(&stats, m->cfg, o->expert_stats, err)))
            expert_stats_free(&stats);
        have_stats = !rc;
    }
    if (!rc && strcmp(name, "cuda") == 0) {
#ifdef DSQ_HAVE_CUDA
        engine_options def = {0};
        rc = open_cuda(e, m, o ? o : &def, have_stats ? &stats : NULL, err);
#else
        rc = dsq_fail(err, DSQ_ERESOURCE,
                      "--backend cuda: this dsq was built without CUDA (nvcc was not found)");
#endif
    }
    if (have_stats)
        expert_stats_free(&stats);
    if (rc) {
        desc_free(d);
        free(seq_past);
        memset(e, 0, sizeof *e);
        return rc;
    }
    if (strcmp(name, "cpu") == 0 && cpu_pack_useful()) {
        /* without the memory for the packed copies the planar kernels run: slower, same model */
        const double t0 = progress_now();
        dsq_error ignored;
        if (cpu_pack_weights(&m->w, m->cfg->n_routed_experts, &ignored) == DSQ_OK &&
            m->w.packed_bytes > 0) {
            e->load_seconds = progress_now() - t0;
            e->load_bytes = m->w.packed_bytes;
        }
    }
    if (n_seq > 1 && !e->ops->forward_seqs) {
        engine_close(e);
        return dsq_fail(err, DSQ_EUSAGE, "the %s backend runs one sequence at a time",
                        name);
    }
    return DSQ_OK;
}

void engine_close(engine *e)
{
    if (!e->ops)
        return;
    e->ops->close(e);
    host_experts_close(e->host_experts); /* after the device engine: no host calls remain */
    swap_close(e);
    desc_free((model_desc *)e->desc);
    free(e->seq_past);
    memset(e, 0, sizeof *e);
}

int engine_forward(engine *e, const int *tokens, int n, float *logits, bool all_logits,
                   dsq_error *err)
{
    if (n < 1 || e->n_past + n > e->ctx)
        return dsq_fail(err, DSQ_EUSAGE, "context full: %d + %d tokens exceed --ctx %d", e->n_past,
                        n, e->ctx);
    for (int t = 0; t < n; t++)
        if (tokens[t] < 0 || tokens[t] >= e->desc->vocab)
            return dsq_fail(err, DSQ_EINPUT, "%s: token id %d outside the vocabulary (%d)",
                            e->model->file.file.path, tokens[t], e->desc->vocab);
    if (!logits && (all_logits || !engine_samples(e)))
        return dsq_fail(err, DSQ_EUSAGE, "the %s engine needs a buffer for its logits",
                        e->ops->name);
    int rc = e->ops->forward(e, tokens, n, logits, all_logits, err);
    if (!rc && logits) { /* else engine_sample checks them */
        const int rows = all_logits ? n : 1;
        rc = model_check_logits(e->model, logits, rows, e->n_past + n - rows, err);
    }
    if (!rc)
        e->n_past += n;
    return rc;
}

int engine_sample(engine *e, sampler *s, const int *history, int n_history, int *token,
                  dsq_error *err)
{
    if (!engine_samples(e))
        return dsq_fail(err, DSQ_EUSAGE, "the %s engine does not sample", e->ops->name);
    int bad = -1;
    int rc = e->ops->sample(e, s, history, n_history, token, &bad, err);
    if (!rc && bad >= 0)
        rc = model_logit_error(e->model, bad, e->n_past - 1, err);
    return rc;
}

int engine_forward_seqs(engine *e, const int *seq, const int *tokens, int n, float *logits,
                        dsq_error *err)
{
    if (!e->ops->forward_seqs)
        return dsq_fail(err, DSQ_EUSAGE, "the %s backend runs one sequence at a time",
                        e->ops->name);
    if (n < 1)
        return dsq_fail(err, DSQ_EUSAGE, "no tokens");
    int *pos = malloc((size_t)n * sizeof(int)), *count = calloc((size_t)e->n_seq, sizeof(int));
    int rc = pos && count ? DSQ_OK : dsq_fail(err, DSQ_ERESOURCE, "out of memory");
    for (int i = 0; !rc && i < n; i++) {
        if (seq[i] < 0 || seq[i] >= e->n_seq)
            rc = dsq_fail(err, DSQ_EUSAGE, "sequence %d outside 0..%d", seq[i], e->n_seq - 1);
        else if (tokens[i] < 0 || tokens[i] >= e->desc->vocab)
            rc = dsq_fail(err, DSQ_EINPUT, "%s: token id %d outside the vocabulary (%d)",
                          e->model->file.file.path, tokens[i], e->desc->vocab);
        else if ((pos[i] = e->seq_past[seq[i]] + count[seq[i]]++) >= e->ctx)
            rc = dsq_fail(err, DSQ_EUSAGE, "context full: sequence %d exceeds --ctx %d", seq[i],
                          e->ctx);
    }
    if (!rc)
        rc = e->ops->forward_seqs(e, seq, pos, tokens, n, logits, err);
    if (!rc)
        rc = model_check_logits(e->model, logits, n, pos[0], err);
    for (int s = 0; !rc && s < e->n_seq; s++)
        e->seq_past[s] += count[s];
    free(pos);
    free(count);
    return rc;
}
