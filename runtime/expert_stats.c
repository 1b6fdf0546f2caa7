/* Expert routing counts and traces, and their JSON file (see expert_stats.h). */
#include "expert_stats.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "atomic_file.h"
#include "input_file.h"
#include "json_error.h"

#define EXPERT_STATS_MAX_EXPERTS 65535 /* ids are stored in 16 bits */

static int alloc_tables(expert_stats *s, dsq_error *err)
{
    s->moe_index = malloc((size_t)s->n_layers * sizeof(int));
    s->moe_layer = malloc((size_t)(s->n_moe ? s->n_moe : 1) * sizeof(int));
    s->counts = calloc((size_t)(s->n_moe ? s->n_moe : 1) * (size_t)s->n_experts, sizeof(uint64_t));
    s->tokens = calloc((size_t)(s->n_moe ? s->n_moe : 1), sizeof(uint64_t));
    if (!s->moe_index || !s->moe_layer || !s->counts || !s->tokens)
        return dsq_fail(err, DSQ_ERESOURCE, "out of memory for expert statistics");
    return DSQ_OK;
}

int expert_stats_init(expert_stats *s, const dsq_model_config *c, bool keep_trace, dsq_error *err)
{
    memset(s, 0, sizeof *s);
    if (c->n_routed_experts < 1 || c->n_routed_experts > EXPERT_STATS_MAX_EXPERTS)
        return dsq_fail(err, DSQ_EINPUT, "expert statistics: %d routed experts (1..%d counted)",
                        c->n_routed_experts, EXPERT_STATS_MAX_EXPERTS);
    s->n_layers = c->n_layers;
    s->n_experts = c->n_routed_experts;
    s->k = c->n_experts_per_tok;
    s->keep_trace = keep_trace;
    for (int l = 0; l < c->n_layers; l++)
        s->n_moe += model_layer_is_moe(c, l);
    int rc = alloc_tables(s, err);
    for (int l = 0, i = 0; !rc && l < c->n_layers; l++) {
        s->moe_index[l] = model_layer_is_moe(c, l) ? i : -1;
        if (s->moe_index[l] >= 0)
            s->moe_layer[i++] = l;
    }
    if (rc)
        expert_stats_free(s);
    return rc;
}

void expert_stats_free(expert_stats *s)
{
    free(s->moe_index);
    free(s->moe_layer);
    free(s->counts);
    free(s->tokens);
    free(s->trace);
    json_decref(s->meta);
    memset(s, 0, sizeof *s);
}

/* Room in the trace for `tokens` tokens. */
static int trace_reserve(expert_stats *s, size_t tokens)
{
    if (tokens <= s->trace_cap)
        return DSQ_OK;
    size_t cap = s->trace_cap ? s->trace_cap : 1024;
    while (cap < tokens)
        cap *= 2;
    uint16_t *t = realloc(s->trace, cap * (size_t)s->n_moe * (size_t)s->k * sizeof *t);
    if (!t)
        return DSQ_ERESOURCE;
    s->trace = t;
    s->trace_cap = cap;
    return DSQ_OK;
}

int expert_stats_record(expert_stats *s, int layer, const int *ids, int n)
{
    const int moe = s->moe_index[layer];
    const size_t first = (size_t)s->tokens[moe]; /* this layer's tokens so far */
    if (s->keep_trace && trace_reserve(s, first + (size_t)n))
        return DSQ_ERESOURCE;
    for (int t = 0; t < n; t++)
        for (int i = 0; i < s->k; i++) {
            const int e = ids[(size_t)t * s->k + i];
            s->counts[(size_t)moe * s->n_experts + e]++;
            if (s->keep_trace)
                s->trace[((first + t) * (size_t)s->n_moe + moe) * s->k + i] = (uint16_t)e;
        }
    s->tokens[moe] += (uint64_t)n;
    if (s->keep_trace && moe == s->n_moe - 1) /* the last MoE layer completes the tokens */
        s->trace_tokens = (size_t)s->tokens[moe];
    return DSQ_OK;
}

/* ---- file --------------------------------------------------------------------------------- */

static json_t *to_json(const expert_stats *s)
{
    json_t *root = json_pack("{s:s, s:i, s:i, s:i, s:i}", "format", EXPERT_STATS_FORMAT, "version",
                             EXPERT_STATS_VERSION, "n_layers", s->n_layers, "n_experts",
                             s->n_experts, "k", s->k);
    if (!root)
        return NULL;
    if (s->meta)
        json_object_update(root, s->meta);
    json_t *layers = json_array(), *tokens = json_array(), *counts = json_array();
    for (int m = 0; layers && tokens && counts && m < s->n_moe; m++) {
        json_array_append_new(layers, json_integer(s->moe_layer[m]));
        json_array_append_new(tokens, json_integer((json_int_t)s->tokens[m]));
        json_t *row = json_array();
        for (int e = 0; row && e < s->n_experts; e++)
            json_array_append_new(
                row, json_integer((json_int_t)s->counts[(size_t)m * s->n_experts + e]));
        json_array_append_new(counts, row);
    }
    json_object_set_new(root, "moe_layers", layers);
    json_object_set_new(root, "tokens", tokens);
    json_object_set_new(root, "counts", counts);
    if (s->keep_trace) {
        /* token-major: per token, per MoE layer, k ids */
        const size_t n = s->trace_tokens * (size_t)s->n_moe * (size_t)s->k;
        json_t *trace = json_array();
        for (size_t i = 0; trace && i < n; i++)
            json_array_append_new(trace, json_integer(s->trace[i]));
        json_object_set_new(root, "trace_tokens", json_integer((json_int_t)s->trace_tokens));
        json_object_set_new(root, "trace", trace);
    }
    return root;
}

int expert_stats_save(const expert_stats *s, const char *path, dsq_error *err)
{
    json_t *root = to_json(s);
    char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    if (!text)
        return dsq_fail(err, DSQ_ERESOURCE, "%s: out of memory for the expert statistics", path);
    atomic_file af = {0};
    int rc = atomic_file_create(&af, path, err);
    const size_t len = strlen(text);
    for (size_t done = 0; !rc && done < len;) {
        const ssize_t w = write(af.fd, text + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            rc = dsq_fail(err, dsq_status_from_errno(errno), "%s: write failed: %s", path,
                          strerror(errno));
        else
            done += (size_t)w;
    }
    if (!rc && write(af.fd, "\n", 1) != 1)
        rc = dsq_fail(err, dsq_status_from_errno(errno), "%s: write failed: %s", path,
                      strerror(errno));
    if (!rc)
        rc = atomic_file_commit(&af, err);
    atomic_file_abort(&af);
    free(text);
    return rc;
}

/* An integer field in [lo, hi]. */
static int get_int(const json_t *o, const char *key, long long lo, long long hi, long long *out,
                   const char *path, dsq_error *err)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return dsq_fail(err, DSQ_EINPUT, "%s: \"%s\" must be an integer in %lld..%lld", path, key,
                        lo, hi);
    *out = json_integer_value(v);
    return DSQ_OK;
}

static int from_json(expert_stats *s, json_t *root, const char *path, dsq_error *err)
{
    const char *format = json_string_value(json_object_get(root, "format"));
    if (!format || strcmp(format, EXPERT_STATS_FORMAT))
        return dsq_fail(err, DSQ_EINPUT,
                        "%s: not an expert statistics file (\"format\" is not "
                        "\"%s\")",
                        path, EXPERT_STATS_FORMAT);
    long long version, n_layers, n_experts, k, trace_tokens = 0;
    int rc =
        get_int(root, "version", EXPERT_STATS_VERSION, EXPERT_STATS_VERSION, &version, path, err);
    if (!rc)
        rc = get_int(root, "n_layers", 1, 100000, &n_layers, path, err);
    if (!rc)
        rc = get_int(root, "n_experts", 1, EXPERT_STATS_MAX_EXPERTS, &n_experts, path, err);
    if (!rc)
        rc = get_int(root, "k", 1, n_experts, &k, path, err);
    if (rc)
        return rc;
    const json_t *layers = json_object_get(root, "moe_layers");
    const json_t *tokens = json_object_get(root, "tokens");
    const json_t *counts = json_object_get(root, "counts");
    const size_t n_moe = json_array_size(layers);
    if (!json_is_array(layers) || n_moe > (size_t)n_layers || json_array_size(tokens) != n_moe ||
        json_array_size(counts) != n_moe)
        return dsq_fail(err, DSQ_EINPUT,
                        "%s: \"moe_layers\", \"tokens\" and \"counts\" must be "
                        "arrays of one entry per MoE layer (at most n_layers)",
                        path);
    s->n_layers = (int)n_layers;
    s->n_experts = (int)n_experts;
    s->k = (int)k;
    s->n_moe = (int)n_moe;
    if ((rc = alloc_tables(s, err)))
        return rc;
    for (int l = 0; l < s->n_layers; l++)
        s->moe_index[l] = -1;
    for (size_t m = 0; m < n_moe; m++) {
        const json_t *l = json_array_get(layers, m), *t = json_array_get(tokens, m);
        const json_t *row = json_array_get(counts, m);
        if (!json_is_integer(l) || json_integer_value(l) < 0 || json_integer_value(l) >= n_layers ||
            s->moe_index[json_integer_value(l)] >= 0 ||
            (m && json_integer_value(l) <= s->moe_layer[m - 1]))
            return dsq_fail(err, DSQ_EINPUT,
                            "%s: moe_layers[%zu] is not a new layer number in "
                            "increasing order below %lld",
                            path, m, n_layers);
        if (!json_is_integer(t) || json_integer_value(t) < 0)
            return dsq_fail(err, DSQ_EINPUT, "%s: tokens[%zu] is not a count", path, m);
        if (json_array_size(row) != (size_t)n_experts)
            return dsq_fail(err, DSQ_EINPUT, "%s: counts[%zu] must have %lld entries", path, m,
                            n_experts);
        s->moe_layer[m] = (int)json_integer_value(l);
        s->moe_index[s->moe_layer[m]] = (int)m;
        s->tokens[m] = (uint64_t)json_integer_value(t);
        uint64_t sum = 0;
        for (int e = 0; e < s->n_experts; e++) {
            const json_t *v = json_array_get(row, (size_t)e);
            if (!json_is_integer(v) || json_integer_value(v) < 0)
                return dsq_fail(err, DSQ_EINPUT, "%s: counts[%zu][%d] is not a count", path, m, e);
            s->counts[m * (size_t)n_experts + e] = (uint64_t)json_integer_value(v);
            sum += (uint64_t)json_integer_value(v);
        }
        if (sum != s->tokens[m] * (uint64_t)k)
            return dsq_fail(err, DSQ_EINPUT, "%s: counts[%zu] sum to %llu, not tokens x k = %llu",
                            path, m, (unsigned long long)sum,
                            (unsigned long long)(s->tokens[m] * (uint64_t)k));
    }
    const json_t *trace = json_object_get(root, "trace");
    if (trace) {
        if ((rc = get_int(root, "trace_tokens", 0, 1ll << 40, &trace_tokens, path, err)))
            return rc;
        const size_t n = (size_t)trace_tokens * n_moe * (size_t)k;
        if (!json_is_array(trace) || json_array_size(trace) != n)
            return dsq_fail(err, DSQ_EINPUT,
                            "%s: \"trace\" must hold trace_tokens x MoE layers "
                            "x k = %zu ids",
                            path, n);
        s->keep_trace = true;
        if (trace_reserve(s, (size_t)trace_tokens ? (size_t)trace_tokens : 1))
            return dsq_fail(err, DSQ_ERESOURCE, "%s: out of memory for the trace", path);
        for (size_t i = 0; i < n; i++) {
            const json_t *v = json_array_get(trace, i);
            if (!json_is_integer(v) || json_integer_value(v) < 0 ||
                json_integer_value(v) >= n_experts)
                return dsq_fail(err, DSQ_EINPUT, "%s: trace[%zu] is not an expert id", path, i);
            s->trace[i] = (uint16_t)json_integer_value(v);
        }
        s->trace_tokens = (size_t)trace_tokens;
    }
    s->meta = json_object();
    static const char *const meta_keys[] = {"model", "file", "file_size", "text", "ctx"};
    for (size_t i = 0; s->meta && i < sizeof meta_keys / sizeof *meta_keys; i++) {
        json_t *v = json_object_get(root, meta_keys[i]);
        if (v)
            json_object_set(s->meta, meta_keys[i], v);
    }
    return DSQ_OK;
}

int expert_stats_load(expert_stats *s, const char *path, dsq_error *err)
{
    memset(s, 0, sizeof *s);
    char *text = NULL;
    size_t len = 0;
    int rc = input_read_all(path, INPUT_CAP_TEXT, "expert statistics", 0, &text, &len, err);
    if (rc)
        return rc;
    json_error_t je;
    json_t *root = json_loadb(text, len, 0, &je);
    free(text);
    if (!root)
        return dsq_json_out_of_memory(&je)
                   ? dsq_fail(err, DSQ_ERESOURCE, "%s: out of memory reading JSON", path)
                   : dsq_fail(err, DSQ_EINPUT, "%s: line %d: %s", path, je.line, je.text);
    rc = json_is_object(root) ? from_json(s, root, path, err)
                              : dsq_fail(err, DSQ_EINPUT, "%s: not a JSON object", path);
    json_decref(root);
    if (rc)
        expert_stats_free(s);
    return rc;
}

int expert_stats_check(const expert_stats *s, const dsq_model_config *c, const char *path,
                       dsq_error *err)
{
    if (s->n_layers != c->n_layers || s->n_experts != c->n_routed_experts ||
        s->k != c->n_experts_per_tok)
        return dsq_fail(err, DSQ_EINPUT,
                        "%s: statistics of a model with %d layers, %d experts, "
                        "top-%d; this model has %d, %d, top-%d",
                        path, s->n_layers, s->n_experts, s->k, c->n_layers, c->n_routed_experts,
                        c->n_experts_per_tok);
    for (int l = 0; l < c->n_layers; l++)
        if ((s->moe_index[l] >= 0) != model_layer_is_moe(c, l))
            return dsq_fail(err, DSQ_EINPUT,
                            "%s: layer %d is %s in the statistics but not in "
                            "the model",
                            path, l, s->moe_index[l] >= 0 ? "MoE" : "dense");
    return DSQ_OK;
}

double expert_stats_entropy(const expert_stats *s, int moe)
{
    const uint64_t *row = s->counts + (size_t)moe * s->n_experts;
    double total = 0, h = 0;
    for (int e = 0; e < s->n_experts; e++)
        total += (double)row[e];
    for (int e = 0; total > 0 && e < s->n_experts; e++)
        if (row[e]) {
            const double p = (double)row[e] / total;
            h -= p * log2(p);
        }
    return h;
}

static int cmp_desc(const void *a, const void *b)
{
    const uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

double expert_stats_top_share(const expert_stats *s, int moe, int top_n)
{
    uint64_t *row = malloc((size_t)s->n_experts * sizeof *row);
    if (!row)
        return NAN;
    memcpy(row, s->counts + (size_t)moe * s->n_experts, (size_t)s->n_experts * sizeof *row);
    qsort(row, (size_t)s->n_experts, sizeof *row, cmp_desc);
    double total = 0, top = 0;
    for (int e = 0; e < s->n_experts; e++) {
        total += (double)row[e];
        if (e < top_n)
            top += (double)row[e];
    }
    free(row);
    return total > 0 ? top / total : 0;
}
