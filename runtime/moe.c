/* Feed-forward layers: dense SwiGLU, and mixture of experts (softmax router, greedy or
 * group-limited top-k, routed experts batched per expert, shared experts, fp32 combine). On the
 * CPU backend all experts of a layer share one batch of matmuls per projection. */
#include <stdlib.h>
#include <string.h>

#include "backend_cpu.h"
#include "expert_stats.h"
#include "model.h"
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

/* Routed experts on the CPU backend: every chosen expert's gate and up (and the shared
 * experts') in one batch of matmuls, then every down in another, so a decode step has two
 * parallel regions per layer instead of three per expert. Each expert reads its tokens' rows
 * of xn (rows[j] for its rows start[e]..start[e] + count[e] - 1), so the batch rounds each
 * token once for all of them; ye gets each expert's outputs back to back (n * k rows). */
static int experts_batched(const model *m, const layer_weights *lw, const float *xn, int n,
                           const int *rows_of, const int *start, const int *count, float *ye,
                           float *shared_out)
{
    const dsq_model_config *c = m->cfg;
    const int ne = c->n_routed_experts, rows = n * c->n_experts_per_tok;
    const int inter = c->moe_intermediate_size, h = c->hidden_size;
    const int sh_inter = lw->has_shared ? lw->shared.gate.rows : 0;
    const size_t gu = (size_t)rows * inter + (size_t)n * sh_inter;
    float *g = malloc(gu * sizeof(float)), *u = malloc(gu * sizeof(float));
    dsq_matmul_job *jobs = malloc(2 * ((size_t)ne + 1) * sizeof *jobs);
    int rc = g && u && jobs ? DSQ_OK : DSQ_ERESOURCE;
    int nj = 0;
    for (int e = 0; !rc && e < ne; e++) {
        if (!count[e])
            continue;
        const size_t at = (size_t)start[e] * inter;
        jobs[nj++] = (dsq_matmul_job){&lw->experts[e].gate, xn, g + at, count[e],
                                      rows_of + start[e]};
        jobs[nj++] = (dsq_matmul_job){&lw->experts[e].up, xn, u + at, count[e],
                                      rows_of + start[e]};
    }
    const size_t sh_at = (size_t)rows * inter;
    if (!rc && lw->has_shared) {
        jobs[nj++] = (dsq_matmul_job){&lw->shared.gate, xn, g + sh_at, n, NULL};
        jobs[nj++] = (dsq_matmul_job){&lw->shared.up, xn, u + sh_at, n, NULL};
    }
    if (!rc)
        rc = dsq_cpu_matmul_many(jobs, nj);
    if (!rc) {
        ops_swiglu(g, u, (int)gu);
        nj = 0;
        for (int e = 0; e < ne; e++)
            if (count[e])
                jobs[nj++] = (dsq_matmul_job){&lw->experts[e].down, g + (size_t)start[e] * inter,
                                              ye + (size_t)start[e] * h, count[e], NULL};
        if (lw->has_shared)
            jobs[nj++] = (dsq_matmul_job){&lw->shared.down, g + sh_at, shared_out, n, NULL};
        rc = dsq_cpu_matmul_many(jobs, nj);
    }
    free(g);
    free(u);
    free(jobs);
    return rc;
}

static int moe_forward(const model *m, int layer, const layer_weights *lw, const float *xn, int n,
                       float *out)
{
    const dsq_model_config *c = m->cfg;
    const int h = c->hidden_size, ne = c->n_routed_experts, k = c->n_experts_per_tok;
    const bool batched = m->be == &dsq_backend_cpu;
    float *scores = malloc((size_t)n * ne * sizeof(float));
    int *ids = malloc((size_t)n * k * sizeof(int));
    float *weights = malloc((size_t)n * k * sizeof(float));
    char *taken = malloc((size_t)ne);
    int *start = malloc((size_t)ne * sizeof(int)), *count = calloc((size_t)ne, sizeof(int));
    int *rows = malloc((size_t)n * k * sizeof(int));
    float *row_weight = malloc((size_t)n * k * sizeof(float));
    /* the other backends take each expert's tokens gathered into xe */
    float *xe = batched ? NULL : malloc((size_t)n * k * h * sizeof(float));
    float *ye = malloc((size_t)n * k * h * sizeof(float));
    float *ys = lw->has_shared ? malloc((size_t)n * h * sizeof(float)) : NULL;
    int rc = scores && ids && weights && taken && start && count && rows && row_weight &&
                     (xe || batched) && ye && (ys || !lw->has_shared)
                 ? DSQ_OK
                 : DSQ_ERESOURCE;
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
    if (!rc) {
        /* each expert runs once on the tokens that chose it: gather them, in token order */
        for (int i = 0; i < n * k; i++)
            count[ids[i]]++;
        for (int e = 0, at = 0; e < ne; e++) {
            start[e] = at;
            at += count[e];
            count[e] = 0;
        }
        for (int t = 0; t < n; t++)
            for (int i = 0; i < k; i++) {
                const int e = ids[t * k + i], j = start[e] + count[e]++;
                rows[j] = t;
                row_weight[j] = weights[t * k + i];
                if (!batched)
                    memcpy(xe + (size_t)j * h, xn + (size_t)t * h, (size_t)h * sizeof(float));
            }
        if (batched) {
            rc = experts_batched(m, lw, xn, n, rows, start, count, ye, ys);
        } else {
            for (int e = 0; !rc && e < ne; e++)
                if (count[e])
                    rc = swiglu_ffn(m->be, &lw->experts[e], xe + (size_t)start[e] * h, count[e],
                                    ye + (size_t)start[e] * h);
            if (!rc && lw->has_shared)
                rc = swiglu_ffn(m->be, &lw->shared, xn, n, ys);
        }
    }
    if (!rc) { /* combine in expert order, then the shared experts, as before */
        memset(out, 0, (size_t)n * h * sizeof(float));
        for (int e = 0; e < ne; e++)
            for (int j = start[e]; j < start[e] + count[e]; j++)
                for (int i = 0; i < h; i++)
                    out[(size_t)rows[j] * h + i] += row_weight[j] * ye[(size_t)j * h + i];
        for (size_t i = 0; lw->has_shared && i < (size_t)n * h; i++)
            out[i] += ys[i];
    }
    free(scores);
    free(ids);
    free(weights);
    free(taken);
    free(start);
    free(count);
    free(rows);
    free(row_weight);
    free(xe);
    free(ye);
    free(ys);
    return rc;
}

int ffn_forward(const model *m, int layer, const float *xn, int n, float *out)
{
    const layer_weights *lw = &m->w.layers[layer];
    return lw->moe ? moe_forward(m, layer, lw, xn, n, out)
                   : swiglu_ffn(m->be, &lw->dense, xn, n, out);
}
