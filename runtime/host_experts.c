/* Routed experts computed in host memory for a device engine (see host_experts.h). */
#include "host_experts.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "moe_experts.h"

struct host_experts {
    const model *m;
    unsigned char *on_gpu; /* [n_layers * n_experts] */
    moe_workspace ws;
    int threads; /* the opening thread's OpenMP team size, for the thread that runs the calls */
    double seconds; /* in host_experts_run */
};

int host_experts_open(host_experts **out, const model *m, const unsigned char *on_gpu,
                      int max_tokens, dsq_error *err)
{
    *out = NULL;
    const size_t n = (size_t)m->cfg->n_layers * m->cfg->n_routed_experts;
    host_experts *he = calloc(1, sizeof *he);
    if (!he || !(he->on_gpu = malloc(n ? n : 1)) ||
        moe_workspace_init(&he->ws, m->cfg, 0, max_tokens)) {
        if (he)
            free(he->on_gpu);
        free(he);
        return dsq_fail(err, DSQ_ERESOURCE, "out of memory for the host experts' buffers");
    }
    memcpy(he->on_gpu, on_gpu, n);
    he->m = m;
    he->threads = omp_get_max_threads();
    *out = he;
    return DSQ_OK;
}

double host_experts_seconds(const host_experts *he)
{
    return he ? he->seconds : 0;
}

void host_experts_close(host_experts *he)
{
    if (!he)
        return;
    moe_workspace_free(&he->ws);
    free(he->on_gpu);
    free(he);
}

void host_experts_place(host_experts *he, int layer, int expert, bool on_gpu)
{
    he->on_gpu[(size_t)layer * he->m->cfg->n_routed_experts + expert] = on_gpu;
}

int host_experts_count(const host_experts *he, int layer)
{
    const int ne = he->m->cfg->n_routed_experts;
    if (layer < 0 || layer >= he->m->cfg->n_layers || !he->m->w.layers[layer].moe)
        return 0;
    int count = 0;
    for (int e = 0; e < ne; e++)
        count += !he->on_gpu[(size_t)layer * ne + e];
    return count;
}

bool host_experts_in_layer(const host_experts *he, int layer)
{
    return host_experts_count(he, layer) > 0;
}

int host_experts_run(host_experts *he, int layer, const float *xn, int n, const int *ids,
                     const float *weights, float *out, dsq_error *err)
{
    const dsq_model_config *c = he->m->cfg;
    if (layer < 0 || layer >= c->n_layers || !he->m->w.layers[layer].moe || n < 1 ||
        n > he->ws.max_tokens)
        return dsq_fail(err, DSQ_EUSAGE, "host experts: layer %d with %d tokens (at most %d)",
                        layer, n, he->ws.max_tokens);
    for (int i = 0; i < n * c->n_experts_per_tok; i++)
        if (ids[i] < 0 || ids[i] >= c->n_routed_experts)
            return dsq_fail(err, DSQ_EINPUT, "host experts: layer %d: expert id %d", layer, ids[i]);
    /* a thread OpenMP did not start (a device's callback thread) begins with the default team
     * size, not the one --threads set */
    if (omp_get_max_threads() != he->threads)
        omp_set_num_threads(he->threads);
    const unsigned char *skip = he->on_gpu + (size_t)layer * c->n_routed_experts;
    const double t0 = omp_get_wtime();
    int rc =
        moe_experts_cpu(&he->ws, &he->m->w.layers[layer], xn, n, ids, weights, skip, out, NULL);
    he->seconds += omp_get_wtime() - t0;
    if (rc == DSQ_EUSAGE)
        return dsq_fail(err, rc, "host experts: layer %d: shared experts without room", layer);
    return rc ? dsq_fail(err, rc, "host experts: layer %d: out of memory", layer) : DSQ_OK;
}
