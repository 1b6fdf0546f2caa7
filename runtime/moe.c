/* Feed-forward layers: dense SwiGLU, and mixture of experts (softmax router, greedy or
 * group-limited top-k, routed experts batched per expert, shared experts, fp32 combine). */
#include <stdlib.h>
#include <string.h>

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
    be->matmul(&f->gate, x, g, n);
    be->matmul(&f->up, x, u, n);
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

static int moe_forward(const model *m, int layer, const layer_weights *lw, const float *xn, int n,
                       float *out)
{
    const dsq_model_config *c = m->cfg;
    const int h = c->hidden_size, ne = c->n_routed_experts, k = c->n_experts_per_tok;
    float *scores = malloc((size_t)n * ne * sizeof(float));
    int *ids = malloc((size_t)n * k * sizeof(int));
    float *weights = malloc((size_t)n * k * sizeof(float));
    char *taken = malloc((size_t)ne);
    int *rows = malloc((size_t)n * sizeof(int));
    float *row_weight = malloc((size_t)n * sizeof(float));
    float *xe = malloc((size_t)n * h * sizeof(float));
    float *ye = malloc((size_t)n * h * sizeof(float));
    int rc = scores && ids && weights && taken && rows && row_weight && xe && ye ? DSQ_OK
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
        memset(out, 0, (size_t)n * h * sizeof(float));
    }
    /* each expert runs once on the tokens that chose it */
    for (int e = 0; !rc && e < ne; e++) {
        int count = 0;
        for (int t = 0; t < n; t++)
            for (int i = 0; i < k; i++)
                if (ids[t * k + i] == e) {
                    rows[count] = t;
                    row_weight[count] = weights[t * k + i];
                    memcpy(xe + (size_t)count * h, xn + (size_t)t * h, (size_t)h * sizeof(float));
                    count++;
                }
        if (!count)
            continue;
        rc = swiglu_ffn(m->be, &lw->experts[e], xe, count, ye);
        for (int j = 0; !rc && j < count; j++)
            for (int i = 0; i < h; i++)
                out[(size_t)rows[j] * h + i] += row_weight[j] * ye[(size_t)j * h + i];
    }
    if (!rc && lw->has_shared) {
        rc = swiglu_ffn(m->be, &lw->shared, xn, n, ye);
        for (size_t i = 0; !rc && i < (size_t)n * h; i++)
            out[i] += ye[i];
    }
    free(scores);
    free(ids);
    free(weights);
    free(taken);
    free(rows);
    free(row_weight);
    free(xe);
    free(ye);
    return rc;
}

int ffn_forward(const model *m, int layer, const float *xn, int n, float *out)
{
    const layer_weights *lw = &m->w.layers[layer];
    return lw->moe ? moe_forward(m, layer, lw, xn, n, out)
                   : swiglu_ffn(m->be, &lw->dense, xn, n, out);
}
