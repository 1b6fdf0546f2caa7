/* The router decisions of a CPU run, for tests that compare two runs of a model whose logits
 * differ by rounding: a backend wrapped around the CPU one sees every router product and
 * records the first token whose expert choice is within 2 D of a tie (route_margin.h), D the
 * bound on the difference applied to the router's logits: only there can the other run choose
 * other experts. Tokens from there on (later tokens attend to its cache entries) are not
 * compared. Set watch_first = INT_MAX and watch_row0 (the token index of the forward's first
 * row) before each forward. */
#ifndef DSQ_ROUTE_WATCH_H
#define DSQ_ROUTE_WATCH_H

#include <math.h>
#include <stdbool.h>

#include "backend.h"
#include "model.h"
#include "route_margin.h"

static const dsq_backend *watch_inner;
static const model *watch_model;
static int watch_row0;  /* token index of the first row of the current CPU forward */
static int watch_first; /* first ambiguous token seen, INT_MAX if none */
static int watch_calls; /* router products seen */
static double watch_tol; /* D relative to max(4, the row's largest |logit|) */

static void watch_matmul(const dsq_matrix *w, const float *x, float *y, int n)
{
    watch_inner->matmul(w, x, y, n);
    const dsq_model_config *c = watch_model->cfg;
    bool router = false;
    for (int l = 0; !router && l < c->n_layers; l++)
        router = watch_model->w.layers[l].moe && w->data == watch_model->w.layers[l].router.data;
    if (!router)
        return;
    watch_calls++;
    const moe_route_params p = {c->n_routed_experts, c->n_experts_per_tok,
                                c->topk_method == DSQ_TOPK_GROUP_LIMITED, c->n_group,
                                c->topk_group, c->norm_topk_prob, (float)c->routed_scaling_factor};
    for (int t = 0; t < n; t++) {
        const float *z = y + (size_t)t * w->rows;
        double mx = 4;
        for (int e = 0; e < w->rows; e++)
            mx = fmax(mx, fabs(z[e]));
        if (moe_route_margin(&p, z) <= 2 * watch_tol * mx && watch_row0 + t < watch_first)
            watch_first = watch_row0 + t;
    }
}

static dsq_backend watch_backend;

/* Routes m's CPU matrix products through watch_matmul, with D = tol * max(4, max |logit|). */
static void watch(model *m, double tol)
{
    watch_tol = tol;
    watch_inner = m->be;
    watch_backend = *m->be;
    watch_backend.matmul = watch_matmul;
    watch_model = m;
    watch_calls = 0;
    m->be = &watch_backend;
}

#endif
