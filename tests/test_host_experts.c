/* Routed experts split between a device and the host (runtime/host_experts.c): the host's part
 * for any set of experts it holds, added to the part of the others, gives the layer's whole
 * routed output, and each expert's share is exactly what the CPU forward pass adds for it. The
 * whole output (no expert skipped) is the code the CPU forward runs, which test_golden holds to
 * the upstream logits. */
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_pack.h"
#include "fixture_model.h"
#include "host_experts.h"
#include "moe_experts.h"

#define N_TOKENS 7

/* A pass of N_TOKENS tokens: inputs in [-1, 1], k distinct experts per token, weights in
 * (0, 1]. Every expert is chosen by some token and some token leaves each expert out. */
static void make_choices(const dsq_model_config *c, unsigned seed, float *xn, int *ids,
                         float *weights)
{
    const int ne = c->n_routed_experts, k = c->n_experts_per_tok;
    for (size_t i = 0; i < (size_t)N_TOKENS * c->hidden_size; i++) {
        seed = seed * 1103515245u + 12345u;
        xn[i] = (float)((seed >> 8) & 0xffff) / 32768.0f - 1.0f;
    }
    for (int t = 0; t < N_TOKENS; t++)
        for (int j = 0; j < k; j++) {
            ids[t * k + j] = (t * 3 + j * (ne / k + 1)) % ne; /* distinct for j < k <= ne */
            weights[t * k + j] = (float)(t + j + 1) / (float)(N_TOKENS + k);
        }
}

/* The host's output for a layer when the device holds exactly the experts flagged in on_gpu
 * (one layer's flags; every other layer's experts on the device). */
static void host_part(const model *m, int layer, const unsigned char *layer_on_gpu, const float *xn,
                      const int *ids, const float *weights, float *out)
{
    const int ne = m->cfg->n_routed_experts;
    const size_t n = (size_t)m->cfg->n_layers * ne;
    unsigned char *on_gpu = malloc(n);
    memset(on_gpu, 1, n);
    memcpy(on_gpu + (size_t)layer * ne, layer_on_gpu, (size_t)ne);
    host_experts *he;
    dsq_error err = {0};
    CHECK_MSG(host_experts_open(&he, m, on_gpu, N_TOKENS, &err) == DSQ_OK, "%s", err.msg);
    int held = 0;
    for (int e = 0; e < ne; e++)
        held += !layer_on_gpu[e];
    CHECK(host_experts_count(he, layer) == held);
    CHECK(host_experts_in_layer(he, layer) == (held > 0));
    CHECK_MSG(host_experts_run(he, layer, xn, N_TOKENS, ids, weights, out, &err) == DSQ_OK, "%s",
              err.msg);
    host_experts_close(he);
    free(on_gpu);
}

static void check_split(const model *m, const char *name)
{
    const dsq_model_config *c = m->cfg;
    const int ne = c->n_routed_experts, k = c->n_experts_per_tok, h = c->hidden_size;
    const size_t len = (size_t)N_TOKENS * h;
    float *xn = malloc(len * sizeof(float)), *weights = malloc(N_TOKENS * k * sizeof(float));
    int *ids = malloc(N_TOKENS * k * sizeof(int));
    float *whole = malloc(len * sizeof(float)), *sum = malloc(len * sizeof(float));
    float *one = malloc(len * sizeof(float)), *even = malloc(len * sizeof(float));
    float *odd = malloc(len * sizeof(float));
    double *mag = malloc(len * sizeof(double));
    unsigned char *flags = malloc((size_t)ne);
    int layers = 0;
    for (int l = 0; l < c->n_layers; l++) {
        if (!m->w.layers[l].moe)
            continue;
        layers++;
        make_choices(c, 1234u + (unsigned)l, xn, ids, weights);
        /* every expert on the host: what the CPU forward pass computes for the layer */
        moe_workspace ws;
        CHECK(moe_workspace_init(&ws, c, 0, N_TOKENS) == DSQ_OK);
        CHECK(moe_experts_cpu(&ws, &m->w.layers[l], xn, N_TOKENS, ids, weights, NULL, sum, NULL) ==
              DSQ_OK);
        moe_workspace_free(&ws);
        memset(flags, 0, (size_t)ne);
        host_part(m, l, flags, xn, ids, weights, whole);
        CHECK_MSG(memcmp(sum, whole, len * sizeof(float)) == 0,
                  "%s layer %d: the host's whole layer differs from the CPU forward's", name, l);
        /* each expert alone; added in expert order they are the whole, bit for bit, because
         * the whole adds each token's experts in expert order too */
        memset(sum, 0, len * sizeof(float));
        memset(mag, 0, len * sizeof(double));
        for (int e = 0; e < ne; e++) {
            memset(flags, 1, (size_t)ne);
            flags[e] = 0;
            host_part(m, l, flags, xn, ids, weights, one);
            for (int t = 0; t < N_TOKENS; t++) {
                bool chose = false;
                for (int j = 0; j < k; j++)
                    chose |= ids[t * k + j] == e;
                for (int i = 0; i < h && !chose; i++)
                    CHECK_MSG(one[(size_t)t * h + i] == 0.0f,
                              "%s layer %d: token %d did not choose expert %d but got %g", name, l,
                              t, e, one[(size_t)t * h + i]);
            }
            for (size_t i = 0; i < len; i++) {
                sum[i] += one[i];
                mag[i] += fabs(one[i]);
            }
        }
        CHECK_MSG(memcmp(sum, whole, len * sizeof(float)) == 0,
                  "%s layer %d: the experts one by one do not add up to the whole", name, l);
        /* half on the device, half on the host, and the other way round: the two parts are fp32
         * sums of at most k terms each, the whole one of k, plus one addition, so they differ
         * by at most (2 (k - 1) + 1) 2^-24 sum |term| < k 2^-23 sum |term| */
        for (int e = 0; e < ne; e++)
            flags[e] = (unsigned char)(e % 2 == 0);
        host_part(m, l, flags, xn, ids, weights, odd);
        for (int e = 0; e < ne; e++)
            flags[e] = (unsigned char)(e % 2 == 1);
        host_part(m, l, flags, xn, ids, weights, even);
        double worst = 0;
        for (size_t i = 0; i < len; i++) {
            const double diff = fabs((double)odd[i] + even[i] - whole[i]);
            const double bound = k * ldexp(mag[i], -23);
            worst = fmax(worst, mag[i] > 0 ? diff / bound : diff);
            CHECK_MSG(diff <= bound, "%s layer %d: halves differ from the whole by %g (bound %g)",
                      name, l, diff, bound);
        }
        /* every expert on the device: the host adds nothing */
        memset(flags, 1, (size_t)ne);
        host_part(m, l, flags, xn, ids, weights, one);
        for (size_t i = 0; i < len; i++)
            CHECK(one[i] == 0.0f);
        printf("  %s layer %d: halves within %.2f of the bound\n", name, l, worst);
    }
    CHECK(layers > 0);
    free(xn);
    free(weights);
    free(ids);
    free(whole);
    free(sum);
    free(one);
    free(even);
    free(odd);
    free(mag);
    free(flags);
}

TEST(split_between_device_and_host_adds_up)
{
    const char *families[] = {"tiny-v1", "tiny-v2-lite", "tiny-v2"};
    for (int f = 0; f < 3; f++) {
        model m;
        open_fixture_model(families[f], 16, &m);
        check_split(&m, families[f]);
        model_close(&m);
    }
}

/* q4 weights through the int8 kernels, packed where the CPU has a packed kernel: the rows each
 * expert computes must not depend on which other experts share its batch. */
TEST(split_adds_up_on_quantized_packed_weights)
{
    char dir[512], out[512];
    snprintf(dir, sizeof dir, "%s/tiny-v2-lite", test_data_dir());
    snprintf(out, sizeof out, "%s/tiny-v2-lite-q4.dsq", test_tmp_dir());
    convert_options o = {.hf_dir = dir,
                         .out_path = out,
                         .threads = 2,
                         .recipe = {.preset = "q4-all", .group_size = 32}};
    convert_stats st;
    dsq_error err = {0};
    model m;
    if (dsq_convert(&o, &st, &err) || model_open(&m, out, 16, &err)) {
        CHECK_MSG(false, "%s", err.msg);
        return;
    }
    if (cpu_pack_useful())
        CHECK(cpu_pack_weights(&m.w, m.cfg->n_routed_experts, &err) == DSQ_OK);
    check_split(&m, cpu_pack_useful() ? "tiny-v2-lite q4 packed" : "tiny-v2-lite q4");
    model_close(&m);
}

/* A device runs the host's experts from its callback thread, which OpenMP did not start. */
typedef struct {
    host_experts *he;
    int layer, threads_after;
    const float *xn, *weights;
    const int *ids;
    float *out;
    int rc;
} thread_call;

static void *run_on_thread(void *arg)
{
    thread_call *t = arg;
    dsq_error err = {0};
    t->rc = host_experts_run(t->he, t->layer, t->xn, N_TOKENS, t->ids, t->weights, t->out, &err);
    t->threads_after = omp_get_max_threads();
    return NULL;
}

/* From a thread of its own the call gives the same bits with the team size of the thread that
 * opened it (a fresh thread starts with the default, every core); an expert placed on the
 * device later drops out of the sum exactly as if it had been there from the start. */
TEST(callback_thread_and_later_placement)
{
    model m;
    open_fixture_model("tiny-v2-lite", 16, &m);
    const dsq_model_config *c = m.cfg;
    const int ne = c->n_routed_experts, k = c->n_experts_per_tok, h = c->hidden_size;
    const size_t len = (size_t)N_TOKENS * h, n = (size_t)c->n_layers * ne;
    const int layer = c->first_k_dense_replace, saved = omp_get_max_threads();
    float *xn = malloc(len * sizeof(float)), *weights = malloc(N_TOKENS * k * sizeof(float));
    int *ids = malloc(N_TOKENS * k * sizeof(int));
    float *here = malloc(len * sizeof(float)), *there = malloc(len * sizeof(float));
    unsigned char *on_gpu = calloc(n, 1), *flags = calloc((size_t)ne, 1);
    make_choices(c, 99u, xn, ids, weights);
    omp_set_num_threads(1); /* not the default, so a thread that kept the default shows */
    host_experts *he;
    dsq_error err = {0};
    CHECK_MSG(host_experts_open(&he, &m, on_gpu, N_TOKENS, &err) == DSQ_OK, "%s", err.msg);
    CHECK(host_experts_run(he, layer, xn, N_TOKENS, ids, weights, here, &err) == DSQ_OK);
    thread_call t = {he, layer, 0, xn, weights, ids, there, -1};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, run_on_thread, &t) == 0);
    pthread_join(th, NULL);
    CHECK(t.rc == DSQ_OK);
    CHECK_MSG(t.threads_after == 1, "the callback thread ran %d threads, not 1", t.threads_after);
    CHECK(memcmp(here, there, len * sizeof(float)) == 0);
    /* expert ids[0] to the device: the same sum as a host that never held it */
    host_experts_place(he, layer, ids[0], true);
    CHECK(host_experts_count(he, layer) == ne - 1);
    CHECK(host_experts_run(he, layer, xn, N_TOKENS, ids, weights, here, &err) == DSQ_OK);
    flags[ids[0]] = 1;
    host_part(&m, layer, flags, xn, ids, weights, there);
    CHECK(memcmp(here, there, len * sizeof(float)) == 0);
    host_experts_place(he, layer, ids[0], false); /* and back */
    CHECK(host_experts_count(he, layer) == ne);
    host_experts_close(he);
    omp_set_num_threads(saved);
    free(xn);
    free(weights);
    free(ids);
    free(here);
    free(there);
    free(on_gpu);
    free(flags);
    model_close(&m);
}

TEST(bad_calls_are_refused)
{
    model m;
    open_fixture_model("tiny-v2-lite", 16, &m);
    const size_t n = (size_t)m.cfg->n_layers * m.cfg->n_routed_experts;
    unsigned char *on_gpu = calloc(n, 1);
    host_experts *he;
    dsq_error err = {0};
    CHECK(host_experts_open(&he, &m, on_gpu, 2, &err) == DSQ_OK);
    const int k = m.cfg->n_experts_per_tok, h = m.cfg->hidden_size;
    int ids[16] = {0};
    float w[16] = {0}, *x = calloc(3 * (size_t)h, sizeof(float)), *y = calloc(3 * (size_t)h, 4);
    CHECK(host_experts_run(he, 0, x, 1, ids, w, y, &err) == DSQ_EUSAGE); /* layer 0 is dense */
    CHECK(host_experts_run(he, 1, x, 3, ids, w, y, &err) == DSQ_EUSAGE); /* more than 2 tokens */
    CHECK(host_experts_run(he, 9, x, 1, ids, w, y, &err) == DSQ_EUSAGE);
    ids[k - 1] = m.cfg->n_routed_experts;
    CHECK(host_experts_run(he, 1, x, 1, ids, w, y, &err) == DSQ_EINPUT);
    CHECK(strstr(err.msg, "expert id") != NULL);
    CHECK(!host_experts_in_layer(he, 0));
    CHECK(host_experts_count(he, 1) == m.cfg->n_routed_experts);
    host_experts_close(he);
    free(on_gpu);
    free(x);
    free(y);
    model_close(&m);
}
