/* Model lifetime, KV cache and the layer loop of the forward pass. */
#include "model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kv_bf16.h"
#include "kv_q8.h"
#include "ops.h"

static _Atomic kv_cache_type kv_cache = KV_CACHE_BF16;

#define KV_Q8_NOT_MLA                                                                              \
    "--kv-cache q8 keeps MHA's keys and values (DeepSeek-MoE); this model's attention is MLA, "    \
    "whose latent cache is bf16 or f32"

void model_set_kv_cache(kv_cache_type t)
{
    kv_cache = t;
}

kv_cache_type model_kv_cache(void)
{
    return kv_cache;
}

size_t model_cache_bytes(const dsq_model_config *c, int ctx, kv_cache_type t)
{
    const size_t rows = (size_t)c->n_layers * (size_t)ctx;
    if (c->family == DSQ_FAMILY_V1) {
        const size_t values = 2 * rows * (size_t)c->n_kv_heads * (size_t)c->head_dim;
        return t == KV_CACHE_F32  ? values * sizeof(float)
               : t == KV_CACHE_Q8 ? values + values / (size_t)kv_q8_group(c->head_dim) * 4
                                  : values * 2;
    }
    return t == KV_CACHE_F32
               ? rows * ((size_t)c->kv_lora_rank + (size_t)c->qk_rope_head_dim) * sizeof(float)
               : rows * kv_bf16_latent_row(c->kv_lora_rank, c->qk_rope_head_dim) * 2;
}

int model_open(model *m, const char *path, int ctx, dsq_error *err)
{
    memset(m, 0, sizeof *m);
    int rc = model_file_open(&m->file, path, err);
    if (rc)
        return rc;
    const dsq_model_config *c = m->cfg = &m->file.config;
    m->be = &dsq_backend_cpu;
    if (ctx < 1 || ctx > c->max_position_embeddings) {
        /* the message first: closing clears the config it quotes */
        rc = dsq_fail(err, DSQ_EUSAGE, "--ctx %d out of range: the model takes 1..%d tokens", ctx,
                      c->max_position_embeddings);
        model_close(m);
        return rc;
    }
    if (kv_cache == KV_CACHE_Q8 && c->family != DSQ_FAMILY_V1) {
        rc = dsq_fail(err, DSQ_EUSAGE, "%s: %s", path, KV_Q8_NOT_MLA);
        model_close(m);
        return rc;
    }
    size_t need = model_cache_bytes(c, ctx, kv_cache);
    double have = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    if ((double)need > have * 0.9) {
        model_close(m);
        return dsq_fail(err, DSQ_ERESOURCE,
                        "--ctx %d needs %.1f GB of KV cache; this machine has %.1f GB of memory",
                        ctx, (double)need / 1e9, have / 1e9);
    }
    m->ctx = ctx;
    if ((rc = model_state_init(m, err)) || (rc = weights_build(&m->w, &m->file, err))) {
        model_close(m);
        return rc;
    }
    return DSQ_OK;
}

/* A KV cache: a decode step reads every layer's part of it from memory (MoE-16B at 4,000
 * tokens: 917 MB), so it takes huge pages where the system gives them on request; fewer TLB
 * misses made that step 7-9% faster (docs/BENCH.md, 2026-12-05). Advice only. */
static void *cache_alloc(size_t bytes)
{
    const size_t huge = (size_t)2 << 20;
    if (bytes < huge)
        return malloc(bytes);
    const size_t rounded = (bytes + huge - 1) / huge * huge;
    void *p = aligned_alloc(huge, rounded);
    if (p)
        madvise(p, rounded, MADV_HUGEPAGE);
    return p;
}

int model_state_init(model *m, dsq_error *err)
{
    const dsq_model_config *c = m->cfg;
    const int ctx = m->ctx;
    if (c->family == DSQ_FAMILY_V1) {
        m->cache_a_stride = m->cache_b_stride = (size_t)c->n_kv_heads * (size_t)c->head_dim;
        m->softmax_scale = 1.0f / sqrtf((float)c->head_dim);
    } else {
        m->cache_a_stride = (size_t)c->kv_lora_rank;
        m->cache_b_stride = (size_t)c->qk_rope_head_dim;
        double scale = 1.0 / sqrt((double)(c->qk_nope_head_dim + c->qk_rope_head_dim));
        if (c->rope_yarn && c->yarn_mscale_all_dim != 0) {
            double ms = rope_yarn_mscale(c->yarn_factor, c->yarn_mscale_all_dim);
            scale *= ms * ms;
        }
        m->softmax_scale = (float)scale;
    }
    const size_t rows = (size_t)c->n_layers * (size_t)ctx;
    if (kv_cache == KV_CACHE_Q8 && c->family != DSQ_FAMILY_V1)
        return dsq_fail(err, DSQ_EUSAGE, "%s", KV_Q8_NOT_MLA);
    if (kv_cache == KV_CACHE_Q8) {
        const size_t n = rows * m->cache_a_stride, scales = n / (size_t)kv_q8_group(c->head_dim);
        m->keys_q8 = cache_alloc(n);
        m->values_q8 = cache_alloc(n);
        m->key_scales = cache_alloc(scales * sizeof(float));
        m->value_scales = cache_alloc(scales * sizeof(float));
        if (!m->keys_q8 || !m->values_q8 || !m->key_scales || !m->value_scales)
            return dsq_fail(err, DSQ_ERESOURCE, "out of memory for a %d-token KV cache", ctx);
        return rope_init(&m->rope, c, ctx, err);
    }
    if (kv_cache == KV_CACHE_BF16 && c->family == DSQ_FAMILY_V1) {
        m->keys_bf16 = cache_alloc(rows * m->cache_a_stride * sizeof(uint16_t));
        m->values_bf16 = cache_alloc(rows * m->cache_b_stride * sizeof(uint16_t));
        if (!m->keys_bf16 || !m->values_bf16)
            return dsq_fail(err, DSQ_ERESOURCE, "out of memory for a %d-token KV cache", ctx);
        return rope_init(&m->rope, c, ctx, err);
    }
    if (kv_cache == KV_CACHE_BF16) { /* one row per position: the latent, then the roped key */
        m->cache_a_stride = kv_bf16_latent_row(c->kv_lora_rank, c->qk_rope_head_dim);
        m->cache_b_stride = 0;
        m->latent_bf16 = cache_alloc(rows * m->cache_a_stride * sizeof(uint16_t));
        m->latent_tiles = latent_amx_fits((int)m->cache_a_stride);
        if (!m->latent_bf16)
            return dsq_fail(err, DSQ_ERESOURCE, "out of memory for a %d-token KV cache", ctx);
        return rope_init(&m->rope, c, ctx, err);
    }
    size_t per_layer_a = (size_t)ctx * m->cache_a_stride, per_layer_b = (size_t)ctx * m->cache_b_stride;
    m->cache_a = cache_alloc((size_t)c->n_layers * per_layer_a * sizeof(float));
    m->cache_b = cache_alloc((size_t)c->n_layers * per_layer_b * sizeof(float));
    if (!m->cache_a || !m->cache_b)
        return dsq_fail(err, DSQ_ERESOURCE, "out of memory for a %d-token KV cache", ctx);
    return rope_init(&m->rope, c, ctx, err);
}

void model_state_free(model *m)
{
    rope_free(&m->rope);
    free(m->cache_a);
    free(m->cache_b);
    free(m->latent_bf16);
    free(m->keys_bf16);
    free(m->values_bf16);
    free(m->keys_q8);
    free(m->values_q8);
    free(m->key_scales);
    free(m->value_scales);
    m->cache_a = m->cache_b = NULL;
    m->latent_bf16 = m->keys_bf16 = m->values_bf16 = NULL;
    m->keys_q8 = m->values_q8 = NULL;
    m->key_scales = m->value_scales = NULL;
}

void model_close(model *m)
{
    model_state_free(m);
    weights_free(&m->w);
    model_file_close(&m->file);
    memset(m, 0, sizeof *m);
}

int model_logit_error(const model *m, int token, int pos, dsq_error *err)
{
    return dsq_fail(err, DSQ_EINPUT,
                    "%s: the model gave a non-finite logit (token %d at position %d): its "
                    "weights or config are damaged",
                    m->file.file.path, token, pos);
}

int model_check_logits(const model *m, const float *logits, int rows, int pos, dsq_error *err)
{
    const size_t vocab = (size_t)m->cfg->vocab_size;
    for (int r = 0; r < rows; r++)
        for (size_t i = 0; i < vocab; i++)
            if (!isfinite(logits[(size_t)r * vocab + i]))
                return model_logit_error(m, (int)i, pos + r, err);
    return DSQ_OK;
}

int model_forward(model *m, const int *tokens, int n, float *logits, bool all_logits,
                  dsq_error *err)
{
    const dsq_model_config *c = m->cfg;
    const int h = c->hidden_size;
    if (n < 1 || m->n_past + n > m->ctx)
        return dsq_fail(err, DSQ_EUSAGE, "context full: %d + %d tokens exceed --ctx %d", m->n_past,
                        n, m->ctx);
    for (int t = 0; t < n; t++)
        if (tokens[t] < 0 || tokens[t] >= c->vocab_size)
            return dsq_fail(err, DSQ_EINPUT, "%s: token id %d outside the vocabulary (%d)",
                            m->file.file.path, tokens[t], c->vocab_size);
    float *x = malloc((size_t)n * h * sizeof(float));
    float *xn = malloc((size_t)n * h * sizeof(float));
    float *y = malloc((size_t)n * h * sizeof(float));
    int rc = x && xn && y ? DSQ_OK : dsq_fail(err, DSQ_ERESOURCE, "out of memory");
    for (int t = 0; !rc && t < n; t++)
        m->be->get_row(&m->w.embed, tokens[t], x + (size_t)t * h);
    for (int l = 0; !rc && l < c->n_layers; l++) {
        const layer_weights *lw = &m->w.layers[l];
        for (int t = 0; t < n; t++)
            ops_rmsnorm(xn + (size_t)t * h, x + (size_t)t * h, lw->attn_norm, h,
                        (float)c->rms_norm_eps);
        if ((rc = attention_forward(m, l, xn, n, y))) {
            dsq_fail(err, DSQ_ERESOURCE, "out of memory in layer %d attention", l);
            break;
        }
        for (size_t i = 0; i < (size_t)n * h; i++)
            x[i] += y[i];
        for (int t = 0; t < n; t++)
            ops_rmsnorm(xn + (size_t)t * h, x + (size_t)t * h, lw->ffn_norm, h,
                        (float)c->rms_norm_eps);
        if ((rc = ffn_forward(m, l, xn, n, y))) {
            dsq_fail(err, DSQ_ERESOURCE, "out of memory in layer %d feed-forward", l);
            break;
        }
        for (size_t i = 0; i < (size_t)n * h; i++)
            x[i] += y[i];
    }
    if (!rc) {
        int first = all_logits ? 0 : n - 1;
        for (int t = first; t < n; t++)
            ops_rmsnorm(xn + (size_t)t * h, x + (size_t)t * h, m->w.norm, h,
                        (float)c->rms_norm_eps);
        m->be->matmul(&m->w.output, xn + (size_t)first * h, logits, n - first);
        m->n_past += n;
    }
    free(x);
    free(xn);
    free(y);
    return rc;
}
