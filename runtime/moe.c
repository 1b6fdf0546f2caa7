/* Feed-forward layers: dense SwiGLU, and mixture of experts (softmax router, greedy or
 * group-limited top-k, routed experts batched per expert, shared experts, fp32 combine). On the
 * CPU backend all experts of a layer share one batch of matmuls per projection. */
#include <stdlib.h>
#include <string.h>

#include "backend_cpu.h"
#include "expert_stats.h"
#include "model.h"
#include "moe_experts.h"
#include "ops.h"

/* out = down(silu(gate(x)) * up(x)) for n rows. */
static int swiglu_ffn(const dsq_backend *be, const ffn_weights *f, const float *x, int n,
                      float *out)
{
    const int inter = f->gate.rows;
    float *g = malloc((size_t)n * inter * sizeof(float));
    float *u = malloc((size_t)n * inter * sizeof(float));
    if (!g || !u) {
        free(g);
        free(u);
        return DSQ_ERESOURCE;
    }
    const dsq_matmul_job both[2] = {{&f->gate, x, g, n, NULL}, {&f->up, x, u, n, NULL}};
    if (be != &dsq_backend_cpu || dsq_cpu_matmul_many(both, 2)) { /* one region on the CPU */
        be->matmul(&f->gate, x, g, n);
        be->matmul(&f->up, x, u, n);
    }
    ops_swiglu(g, u, n * inter);
    be->matmul(&f->down, g, out, n);
    free(g);
    free(u);
    return DSQ_OK;
}

/* Index of the largest of n scores not yet taken (ties: lowest index). */
static int take_max(const float *scores, const char *taken, int n)
{
    int best = -1;
    for (int e = 0; e < n; e++)
        if (!taken[e] && (best < 0 || scores[e] > scores[best]))
            best = e;
    return best;
}

/* Chooses k experts from softmax scores. Group-limited: only experts in the topk_group groups
 * with the highest maximum score compete. Weights are the chosen scores, renormalized if the
 * config says so, else multiplied by routed_scaling_factor (as the references do). */
static void route(const dsq_model_config *c, const float *scores, int *ids, float *weights,
                  char *taken)
{
    const int ne = c->n_routed_experts, k = c->n_experts_per_tok;
    memset(taken, 0, (size_t)ne);
    if (c->topk_method == DSQ_TOPK_GROUP_LIMITED) {
        const int per_group = ne / c->n_group;
        float group_max[c->n_group];
        char group_taken[c->n_group];
        for (int g = 0; g < c->n_group; g++) {
            group_max[g] = scores[g * per_group];
            for (int e = 1; e < per_group; e++)
                if (scores[g * per_group + e] > group_max[g])
                    group_max[g] = scores[g * per_group + e];
        }
        memset(group_taken, 0, sizeof group_taken);
        for (int i = 0; i < c->topk_group; i++)
            group_taken[take_max(group_max, group_taken, c->n_group)] = 1;
        for (int e = 0; e < ne; e++) /* experts of losing groups cannot be chosen */
            taken[e] = !group_taken[e / per_group];
    }
    float sum = 0;
    for (int i = 0; i < k; i++) {
        ids[i] = take_max(scores, taken, ne);
        taken[ids[i]] = 1;
        weights[i] = scores[ids[i]];
        sum += weights[i];
    }
    for (int i = 0; i < k; i++)
        weights[i] = k > 1 && c->norm_topk_prob ? weights[i] / (sum + 1e-20f)
                                                : weights[i] * (float)c->routed_scaling_factor;
}

int moe_workspace_init(moe_workspace *ws, const dsq_model_config *c, int shared_inter,
                       int max_tokens)
{
    const int ne = c->n_routed_experts, k = c->n_experts_per_tok;
    const size_t slots = (size_t)max_tokens * k;
    const size_t gu = slots * c->moe_intermediate_size + (size_t)max_tokens * shared_inter;
    *ws = (moe_workspace){.max_tokens = max_tokens,
                          .n_experts = ne,
                          .k = k,
                          .inter = c->moe_intermediate_size,
                          .hidden = c->hidden_size,
                          .shared_inter = shared_inter};
    ws->g = malloc(gu * sizeof(float));
    ws->u = malloc(gu * sizeof(float));
    ws->ye = malloc(slots * c->hidden_size * sizeof(float));
    ws->start = malloc((size_t)ne * sizeof(int));
    ws->count = malloc((size_t)ne * sizeof(int));
    ws->rows = malloc(slots * sizeof(int));
    ws->row_weight = malloc(slots * sizeof(float));
    ws->jobs = malloc(2 * ((size_t)ne + 1) * sizeof *ws->jobs);
    if (ws->g && ws->u && ws->ye && ws->start && ws->count && ws->rows && ws->row_weight &&
        ws->jobs)
        return DSQ_OK;
    moe_workspace_free(ws);
    return DSQ_ERESOURCE;
}

void moe_workspace_free(moe_workspace *ws)
{
    free(ws->g);
    free(ws->u);
    free(ws->ye);
    free(ws->start);
    free(ws->count);
    free(ws->rows);
    free(ws->row_weight);
    free(ws->jobs);
    memset(ws, 0, sizeof *ws);
}

void moe_group_by_expert(moe_workspace *ws, const int *ids, const float *weights, int n,
                         const unsigned char *skip)
{
    const int ne = ws->n_experts, k = ws->k;
    memset(ws->count, 0, (size_t)ne * sizeof(int));
    for (int i = 0; i < n * k; i++)
        if (!skip || !skip[ids[i]])
            ws->count[ids[i]]++;
    for (int e = 0, at = 0; e < ne; e++) {
        ws->start[e] = at;
        at += ws->count[e];
        ws->count[e] = 0;
    }
    for (int t = 0; t < n; t++)
        for (int i = 0; i < k; i++) {
            const int e = ids[t * k + i];
            if (skip && skip[e])
                continue;
            const int j = ws->start[e] + ws->count[e]++;
            ws->rows[j] = t;
            ws->row_weight[j] = weights[t * k + i];
        }
}

/* out[t] = sum of each expert's rows of ye for token t, in expert order. */
static void combine_rows(const moe_workspace *ws, int n, float *out)
{
    const int h = ws->hidden;
    memset(out, 0, (size_t)n * h * sizeof(float));
    for (int e = 0; e < ws->n_experts; e++)
        for (int j = ws->start[e]; j < ws->start[e] + ws->count[e]; j++)
            for (int i = 0; i < h; i++)
                out[(size_t)ws->rows[j] * h + i] += ws->row_weight[j] * ws->ye[(size_t)j * h + i];
}

int moe_experts_cpu(moe_workspace *ws, const layer_weights *lw, const float *xn, int n,
                    const int *ids, const float *weights, const unsigned char *skip, float *out,
                    float *shared_out)
{
    const int ne = ws->n_experts, inter = ws->inter, h = ws->hidden;
    const bool shared = shared_out && lw->has_shared;
    if (n > ws->max_tokens || (shared && lw->shared.gate.rows > ws->shared_inter))
        return DSQ_EUSAGE;
    moe_group_by_expert(ws, ids, weights, n, skip);
    const int rows = ws->start[ne - 1] + ws->count[ne - 1];
    const int sh_inter = shared ? lw->shared.gate.rows : 0;
    const size_t gu = (size_t)rows * inter + (size_t)n * sh_inter, sh_at = (size_t)rows * inter;
    dsq_matmul_job *jobs = ws->jobs;
    int nj = 0;
    for (int e = 0; e < ne; e++) {
        if (!ws->count[e])
            continue;
        const size_t at = (size_t)ws->start[e] * inter;
        const int *rows_of = ws->rows + ws->start[e];
        jobs[nj++] = (dsq_matmul_job){&lw->experts[e].gate, xn, ws->g + at, ws->count[e], rows_of};
        jobs[nj++] = (dsq_matmul_job){&lw->experts[e].up, xn, ws->u + at, ws->count[e], rows_of};
    }
    if (shared) {
        jobs[nj++] = (dsq_matmul_job){&lw->shared.gate, xn, ws->g + sh_at, n, NULL};
        jobs[nj++] = (dsq_matmul_job){&lw->shared.up, xn, ws->u + sh_at, n, NULL};
    }
    int rc = nj ? dsq_cpu_matmul_many(jobs, nj) : DSQ_OK;
    if (!rc && nj) {
        ops_swiglu(ws->g, ws->u, (int)gu);
        nj = 0;
        for (int e = 0; e < ne; e++)
            if (ws->count[e])
                jobs[nj++] =
                    (dsq_matmul_job){&lw->experts[e].down, ws->g + (size_t)ws->start[e] * inter,
                                     ws->ye + (size_t)ws->start[e] * h, ws->count[e], NULL};
        if (shared)
            jobs[nj++] = (dsq_matmul_job){&lw->shared.down, ws->g + sh_at, shared_out, n, NULL};
        rc = dsq_cpu_matmul_many(jobs, nj);
    }
    if (!rc)
        combine_rows(ws, n, out);
    return rc;
}

static int moe_forward(const model *m, int layer, const layer_weights *lw, const float *xn, int n,
                       float *out)
{
    const dsq_model_config *c = m->cfg;
    const int h = c->hidden_size, ne = c->n_routed_experts, k = c->n_experts_per_tok;
    const bool batched = m->be == &dsq_backend_cpu;
    moe_workspace ws;
    int rc = moe_workspace_init(&ws, c, lw->has_shared ? lw->shared.gate.rows : 0, n);
    float *scores = malloc((size_t)n * ne * sizeof(float));
    int *ids = malloc((size_t)n * k * sizeof(int));
    float *weights = malloc((size_t)n * k * sizeof(float));
    char *taken = malloc((size_t)ne);
    /* the other backends take each expert's tokens gathered into xe */
    float *xe = batched ? NULL : malloc((size_t)n * k * h * sizeof(float));
    float *ys = lw->has_shared ? malloc((size_t)n * h * sizeof(float)) : NULL;
    if (!rc && !(scores && ids && weights && taken && (xe || batched) && (ys || !lw->has_shared)))
        rc = DSQ_ERESOURCE;
    if (!rc) {
        m->be->matmul(&lw->router, xn, scores, n);
        for (int t = 0; t < n; t++) {
            ops_softmax(scores + (size_t)t * ne, ne);
            route(c, scores + (size_t)t * ne, ids + (size_t)t * k, weights + (size_t)t * k,
                  taken);
        }
        if (m->expert_stats)
            rc = expert_stats_record(m->expert_stats, layer, ids, n);
    }
    if (!rc && batched) {
        rc = moe_experts_cpu(&ws, lw, xn, n, ids, weights, NULL, out, ys);
    } else if (!rc) { /* each expert runs once on the tokens that chose it, in token order */
        moe_group_by_expert(&ws, ids, weights, n, NULL);
        for (int j = 0; j < n * k; j++)
            memcpy(xe + (size_t)j * h, xn + (size_t)ws.rows[j] * h, (size_t)h * sizeof(float));
        for (int e = 0; !rc && e < ne; e++)
            if (ws.count[e])
                rc = swiglu_ffn(m->be, &lw->experts[e], xe + (size_t)ws.start[e] * h, ws.count[e],
                                ws.ye + (size_t)ws.start[e] * h);
        if (!rc && lw->has_shared)
            rc = swiglu_ffn(m->be, &lw->shared, xn, n, ys);
        if (!rc)
            combine_rows(&ws, n, out);
    }
    for (size_t i = 0; !rc && lw->has_shared && i < (size_t)n * h; i++)
        out[i] += ys[i]; /* the shared experts after the routed ones, as before */
    moe_workspace_free(&ws);
    free(scores);
    free(ids);
    free(weights);
    free(taken);
    free(xe);
    free(ys);
    return rc;
}

int ffn_forward(const model *m, int layer, const float *xn, int n, float *out)
{
    const layer_weights *lw = &m->w.layers[layer];
    return lw->moe ? moe_forward(m, layer, lw, xn, n, out)
                   : swiglu_ffn(m->be, &lw->dense, xn, n, out);
}
