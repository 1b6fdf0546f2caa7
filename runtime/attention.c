/* Attention: MHA with NeoX RoPE (DeepSeek-MoE) and MLA (DeepSeek-V2) in two forms over one
 * latent cache: expanded (K, V rebuilt by kv_b) and absorbed (W_UK folded into the query,
 * W_UV applied after the weighted sum of latents). Prompts and the absorbed form's scores and
 * sums run as fp32 matrix products (gemm_f32.h), its W_UK and W_UV products on kv_b's storage;
 * a single MHA query over an f32 cache as a dot product per cached key. A bf16 or q8 cache
 * (kv_bf16.h, kv_q8.h) is widened for prompts, and a decode step takes it in pieces: MLA's on
 * AMX tiles where the CPU has them. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "backend_cpu.h"
#include "dequant.h"
#include "dot.h"
#include "gemm_f32.h"
#include "kv_bf16.h"
#include "kv_q8.h"
#include "model.h"
#include "ops.h"

/* Attention work (query-key pairs times head size) below which threads do not pay: a parallel
 * region costs a few microseconds, and a serial stretch longer than a barrier's spin lets the
 * other threads fall asleep (runtime/main.c). The tiny model's absorbed decode goes parallel
 * from about 128 cached tokens. */
#define PARALLEL_MIN_WORK (1l << 16)

/* Causal attention of one query over cached positions 0..last; out gets the weighted values.
 * key(s) and value(s) give the cached vectors; scores are scaled dot products. */
static void mha_head(const float *q, const float *keys, size_t key_stride, const float *values,
                     size_t value_stride, int dim, int last, float scale, float *scores,
                     float *out)
{
    for (int s = 0; s <= last; s++)
        scores[s] = ops_dot(q, keys + (size_t)s * key_stride, dim);
    ops_scaled_softmax(scores, last + 1, scale);
    memset(out, 0, (size_t)dim * sizeof(float));
    for (int s = 0; s <= last; s++)
        ops_axpy(out, scores[s], values + (size_t)s * value_stride, dim);
}

/* Queries one matrix product of scores takes: a block of them shares each loaded key. */
#define QUERY_BLOCK 16

/* Causal attention of queries t0..t0+tn-1 (at positions n_past + t) of one head, as fp32
 * matrix products: scores = Q K^T over the keys the last of them sees, scaled, softmax over
 * each query's own positions (later ones zeroed), out = P V. q: the first query, rows q_stride
 * apart; k: the first key, rows of qk floats k_stride apart; v: the first value, rows v_stride
 * apart; scores: tn rows of s_stride floats, s_stride >= every key. Keys and values are best
 * contiguous per head (k_stride = qk, v_stride = vd): one thread, 16 queries over 4,096
 * cached positions, scores from keys transposed ([qk][pos]) ran at 6-10 GMAC/s against 19-20
 * from rows, and P V from rows 4,096 floats apart at 11-12 against 15-20 from packed rows. */
static void head_block(const float *q, size_t q_stride, const float *k, size_t k_stride, int qk,
                       const float *v, size_t v_stride, int vd, int n_past, int t0, int tn,
                       float scale, float *scores, size_t s_stride, float *out, size_t out_stride)
{
    const int keys = n_past + t0 + tn;
    gemm_f32_nt(tn, keys, qk, q, q_stride, k, k_stride, scores, s_stride, false);
    for (int i = 0; i < tn; i++) {
        float *row = scores + (size_t)i * s_stride;
        const int last = n_past + t0 + i;
        ops_scaled_softmax(row, last + 1, scale);
        memset(row + last + 1, 0, (size_t)(keys - last - 1) * sizeof(float));
    }
    gemm_f32(tn, vd, keys, scores, s_stride, v, v_stride, out, out_stride, false);
}

/* The softmax taken in pieces, combined: out (n floats) = sum over pieces p of e^(max_p - max)
 * partial_p / sum over p of e^(max_p - max) sum_p, where piece p's weighted sum partial_p is at
 * partial + p * pstride and its maximum and exponential sum at pmax[p * mstride] and
 * psum[p * mstride]; a piece whose sum is 0 saw no position. */
static void combine_pieces(int n_pieces, const float *partial, size_t pstride, const float *pmax,
                           const float *psum, size_t mstride, float *out, int n)
{
    float max = -INFINITY, sum = 0;
    for (int p = 0; p < n_pieces; p++)
        max = fmaxf(max, pmax[(size_t)p * mstride]);
    memset(out, 0, (size_t)n * sizeof(float));
    for (int p = 0; p < n_pieces; p++) {
        const size_t at = (size_t)p * mstride;
        if (psum[at] == 0)
            continue;
        const float w = expf(pmax[at] - max);
        sum += w * psum[at];
        ops_axpy(out, w, partial + (size_t)p * pstride, n);
    }
    ops_scale(out, n, 1.0f / sum);
}

/* Positions per piece of a decode step over a bf16 or q8 MHA cache. */
#define MHA_PIECE_MAX 32

/* One query (a decode step) over a bf16 or q8 MHA cache, in pieces of positions as the absorbed
 * MLA decode takes them: each thread takes a piece's scores for every head straight from the
 * cached keys, their exponentials against the piece's own maximum, then the weighted sums of the
 * piece's values; the pieces are then combined. Every cached key and value is read once per
 * step, a piece at a time (within a piece head by head: the kernels keep a head's query or sum
 * in registers). */
static int mha_decode_pieces(model *m, int layer, const float *q, float *attn)
{
    const dsq_model_config *c = m->cfg;
    const int hd = c->head_dim, nh = c->n_heads, group = nh / c->n_kv_heads;
    const size_t kvw = m->cache_a_stride, layer_at = (size_t)layer * m->ctx * kvw;
    const size_t g = (size_t)kv_q8_group(hd); /* a q8 cache's values per scale */
    const int total = m->n_past + 1;
    int piece = (total + 7) / 8; /* at least 8 pieces for the threads */
    piece = piece < 8 ? 8 : piece > MHA_PIECE_MAX ? MHA_PIECE_MAX : piece;
    const int n_pieces = (total + piece - 1) / piece;
    const size_t each = (size_t)nh * piece; /* each thread's scores: head h's at h * piece */
    float *scratch = malloc((size_t)omp_get_max_threads() * each * sizeof(float));
    float *partial = malloc((size_t)n_pieces * nh * (hd + 2) * sizeof(float));
    if (!scratch || !partial) {
        free(scratch);
        free(partial);
        return DSQ_ERESOURCE;
    }
    float *piece_max = partial + (size_t)n_pieces * nh * hd;
    float *piece_sum = piece_max + (size_t)n_pieces * nh;
#pragma omp parallel if ((long)nh * total * hd > PARALLEL_MIN_WORK)
    {
        float *sc = scratch + (size_t)omp_get_thread_num() * each;
#pragma omp for schedule(static)
        for (int p = 0; p < n_pieces; p++) {
            const int s0 = p * piece, ns = total - s0 < piece ? total - s0 : piece;
            /* position s0's row: every kv head's hd values, one after another */
            const size_t at = layer_at + (size_t)s0 * kvw;
            if (m->keys_q8)
                mha_q8_scores(m->keys_q8 + at, m->key_scales + at / g, kvw, ns, q, nh, group, hd,
                              sc, (size_t)piece);
            else
                mha_bf16_scores(m->keys_bf16 + at, kvw, ns, q, nh, group, hd, sc, (size_t)piece);
            for (int h = 0; h < nh; h++) {
                const size_t ph = (size_t)p * nh + h;
                piece_sum[ph] =
                    ops_scaled_exp(sc + (size_t)h * piece, ns, m->softmax_scale, &piece_max[ph]);
            }
            float *out = partial + (size_t)p * nh * hd;
            if (m->values_q8)
                mha_q8_weighted_sum(m->values_q8 + at, m->value_scales + at / g, kvw, ns, sc,
                                    (size_t)piece, nh, group, hd, out);
            else
                mha_bf16_weighted_sum(m->values_bf16 + at, kvw, ns, sc, (size_t)piece, nh, group,
                                      hd, out);
        }
#pragma omp for schedule(static)
        for (int h = 0; h < nh; h++)
            combine_pieces(n_pieces, partial + (size_t)h * hd, (size_t)nh * hd, piece_max + h,
                           piece_sum + h, (size_t)nh, attn + (size_t)h * hd, hd);
    }
    free(scratch);
    free(partial);
    return DSQ_OK;
}

static int mha_forward(model *m, int layer, const float *xn, int n, float *out)
{
    const dsq_model_config *c = m->cfg;
    const layer_weights *lw = &m->w.layers[layer];
    const int hd = c->head_dim, nh = c->n_heads, nkv = c->n_kv_heads, group = nh / nkv;
    const size_t stride = m->cache_a_stride;
    /* a cache of bf16 or q8 rows rather than the f32 reference */
    const bool packed = m->keys_bf16 || m->keys_q8;
    const size_t layer_at = (size_t)layer * m->ctx * stride, g = (size_t)kv_q8_group(hd);
    const int total = m->n_past + n;
    float *keys = packed ? NULL : m->cache_a + layer_at;
    float *values = packed ? NULL : m->cache_b + layer_at;
    /* new keys and values: straight into an f32 cache at their positions; for a packed cache
     * into new_kv first, rounded into the cache after RoPE */
    float *new_kv = packed ? malloc(2 * (size_t)n * stride * sizeof(float)) : NULL;
    float *new_k = packed ? new_kv : keys + (size_t)m->n_past * stride;
    float *new_v = packed ? new_kv + (size_t)n * stride : values + (size_t)m->n_past * stride;
    /* a prompt over a packed cache reads it widened: whole rows, as the f32 cache's */
    float *widened = packed && n > 1 ? malloc(2 * (size_t)total * stride * sizeof(float)) : NULL;
    float *q = malloc((size_t)n * nh * hd * sizeof(float));
    float *attn = malloc((size_t)n * nh * hd * sizeof(float));
    /* each thread's scores (a block of queries, or the one query of a decode step) */
    const size_t span = (size_t)(n > 1 ? QUERY_BLOCK : 1) * (size_t)total;
    float *scratch = malloc((size_t)omp_get_max_threads() * span * sizeof(float));
    int rc = DSQ_OK;
    if (!q || !attn || !scratch || (packed && !new_kv) || (packed && n > 1 && !widened)) {
        rc = DSQ_ERESOURCE;
        goto done;
    }
    const dsq_matmul_job qkv[3] = {
        {&lw->wq, xn, q, n, NULL}, {&lw->wk, xn, new_k, n, NULL}, {&lw->wv, xn, new_v, n, NULL}};
    if (m->be != &dsq_backend_cpu || dsq_cpu_matmul_many(qkv, 3)) /* one region on the CPU */
        for (int i = 0; i < 3; i++)
            m->be->matmul(qkv[i].w, xn, qkv[i].y, n);
    for (int t = 0; t < n; t++) {
        const int pos = m->n_past + t;
        for (int h = 0; h < nh; h++)
            rope_apply(&m->rope, q + ((size_t)t * nh + h) * hd, pos);
        for (int h = 0; h < nkv; h++)
            rope_apply(&m->rope, new_k + (size_t)t * stride + (size_t)h * hd, pos);
        const size_t at = layer_at + (size_t)pos * stride;
        if (m->keys_bf16) {
            kv_bf16_store(new_k + (size_t)t * stride, stride, m->keys_bf16 + at);
            kv_bf16_store(new_v + (size_t)t * stride, stride, m->values_bf16 + at);
        } else if (m->keys_q8) {
            kv_q8_store(new_k + (size_t)t * stride, stride, (int)g, m->keys_q8 + at,
                        m->key_scales + at / g);
            kv_q8_store(new_v + (size_t)t * stride, stride, (int)g, m->values_q8 + at,
                        m->value_scales + at / g);
        }
    }
    if (packed && n == 1) {
        rc = mha_decode_pieces(m, layer, q, attn);
        goto project;
    }
    if (packed) {
        keys = widened;
        values = widened + (size_t)total * stride;
        const size_t len = (size_t)total * stride;
        if (m->keys_bf16) {
            kv_bf16_widen(m->keys_bf16 + layer_at, len, keys);
            kv_bf16_widen(m->values_bf16 + layer_at, len, values);
        } else {
            kv_q8_widen(m->keys_q8 + layer_at, m->key_scales + layer_at / g, len, (int)g, keys);
            kv_q8_widen(m->values_q8 + layer_at, m->value_scales + layer_at / g, len, (int)g,
                        values);
        }
    }
    const bool threads = (long)n * nh * total * hd > PARALLEL_MIN_WORK;
    if (n > 1) { /* keys and values straight from the cache, rows of the cache's stride */
        const int blocks = (n + QUERY_BLOCK - 1) / QUERY_BLOCK;
#pragma omp parallel for collapse(2) schedule(dynamic) if (threads)
        for (int h = 0; h < nh; h++)
            for (int b = 0; b < blocks; b++) {
                const int t0 = b * QUERY_BLOCK, tn = n - t0 < QUERY_BLOCK ? n - t0 : QUERY_BLOCK;
                const size_t kvh = (size_t)(h / group);
                head_block(q + ((size_t)t0 * nh + h) * hd, (size_t)nh * hd, keys + kvh * hd,
                           stride, hd, values + kvh * hd, stride, hd, m->n_past, t0, tn,
                           m->softmax_scale, scratch + (size_t)omp_get_thread_num() * span,
                           (size_t)total, attn + ((size_t)t0 * nh + h) * hd, (size_t)nh * hd);
            }
    } else { /* one query over the f32 cache: a dot product per cached key */
#pragma omp parallel for schedule(static) if (threads)
        for (int h = 0; h < nh; h++) {
            size_t kv_off = (size_t)(h / group) * hd;
            mha_head(q + (size_t)h * hd, keys + kv_off, stride, values + kv_off, stride, hd,
                     m->n_past, m->softmax_scale,
                     scratch + (size_t)omp_get_thread_num() * span,
                     attn + (size_t)h * hd);
        }
    }
project:
    if (!rc)
        m->be->matmul(&lw->wo, attn, out, n);
done:
    free(new_kv);
    free(widened);
    free(scratch);
    free(q);
    free(attn);
    return rc;
}

/* Layer `layer`'s cache of positions 0..total-1 as fp32 rows: latents (kv_lora_rank floats
 * each) into *latent, roped keys (rope floats each) into *pe; the f32 cache itself, or the
 * bf16 cache widened into *copy (the caller frees it). False when out of memory. */
static bool cache_f32(const model *m, int layer, int total, const float **latent, const float **pe,
                      float **copy)
{
    const size_t kvr = (size_t)m->cfg->kv_lora_rank, rope = (size_t)m->cfg->qk_rope_head_dim;
    *copy = NULL;
    if (!m->latent_bf16) {
        *latent = m->cache_a + (size_t)layer * m->ctx * m->cache_a_stride;
        *pe = m->cache_b + (size_t)layer * m->ctx * m->cache_b_stride;
        return true;
    }
    if (!(*copy = malloc(((size_t)total * (kvr + rope) + rope) * sizeof(float))))
        return false; /* latents, keys, and one row of keys' lo parts */
    const uint16_t *rows = m->latent_bf16 + (size_t)layer * m->ctx * m->cache_a_stride;
    float *lat = *copy, *keys = lat + (size_t)total * kvr, *lo = keys + (size_t)total * rope;
    for (int s = 0; s < total; s++) {
        const uint16_t *row = rows + (size_t)s * m->cache_a_stride;
        float *key = keys + (size_t)s * rope;
        kv_bf16_widen(row, kvr, lat + (size_t)s * kvr);
        kv_bf16_widen(row + kvr, rope, key);
        kv_bf16_widen(row + kvr + rope, rope, lo);
        for (size_t i = 0; i < rope; i++) /* the key: hi + lo */
            key[i] += lo[i];
    }
    *latent = lat;
    *pe = keys;
    return true;
}

/* MLA, expanded: per head, k = [W_UK c ; k_pe], v = W_UV c for every cached position, copied
 * out of kv_b's output into rows per head (keys [h][pos][qk], values [h][pos][vd]) so that
 * each block of queries reads them contiguously (head_block). */
static int mla_expanded(model *m, int layer, const float *q, int n, float *attn, float *kv)
{
    const dsq_model_config *c = m->cfg;
    const int nh = c->n_heads, nope = c->qk_nope_head_dim, rope = c->qk_rope_head_dim;
    const int vd = c->v_head_dim, qk = nope + rope, kvw = nope + vd;
    const int total = m->n_past + n;
    const float *latent, *pe;
    float *widened;
    if (!cache_f32(m, layer, total, &latent, &pe, &widened))
        return DSQ_ERESOURCE;
    m->be->matmul(&m->w.layers[layer].kv_b, latent, kv, total); /* (total, nh * (nope + v)) */
    float *kh = malloc((size_t)nh * total * qk * sizeof(float));
    float *vh = malloc((size_t)nh * total * vd * sizeof(float));
    float *scratch = malloc((size_t)omp_get_max_threads() * QUERY_BLOCK * total * sizeof(float));
    if (!kh || !vh || !scratch) {
        free(widened);
        free(kh);
        free(vh);
        free(scratch);
        return DSQ_ERESOURCE;
    }
    const bool threads = (long)n * nh * total * qk > PARALLEL_MIN_WORK;
#pragma omp parallel for schedule(static) if (threads)
    for (int h = 0; h < nh; h++)
        for (int s = 0; s < total; s++) {
            const float *src = kv + (size_t)s * nh * kvw + (size_t)h * kvw;
            float *key = kh + ((size_t)h * total + s) * qk;
            memcpy(key, src, (size_t)nope * sizeof(float));
            memcpy(key + nope, pe + (size_t)s * rope, (size_t)rope * sizeof(float));
            memcpy(vh + ((size_t)h * total + s) * vd, src + nope, (size_t)vd * sizeof(float));
        }
    free(widened);
    const int blocks = (n + QUERY_BLOCK - 1) / QUERY_BLOCK;
#pragma omp parallel for collapse(2) schedule(dynamic) if (threads)
    for (int h = 0; h < nh; h++)
        for (int b = 0; b < blocks; b++) {
            const int t0 = b * QUERY_BLOCK, tn = n - t0 < QUERY_BLOCK ? n - t0 : QUERY_BLOCK;
            head_block(q + ((size_t)t0 * nh + h) * qk, (size_t)nh * qk,
                       kh + (size_t)h * total * qk, (size_t)qk, qk, vh + (size_t)h * total * vd,
                       (size_t)vd, vd, m->n_past, t0, tn, m->softmax_scale,
                       scratch + (size_t)omp_get_thread_num() * QUERY_BLOCK * total,
                       (size_t)total, attn + ((size_t)t0 * nh + h) * vd, (size_t)nh * vd);
        }
    free(kh);
    free(vh);
    free(scratch);
    return DSQ_OK;
}

/* The absorbed decode takes the cache in pieces of at most this many positions (a piece's
 * latents, 256 KB at kv_lora_rank 512, stay in a core's L2 cache between the scores and the
 * weighted sum), for at most this many query rows (each piece keeps rows x kv_lora_rank
 * partial sums): a decode step of DeepSeek-V2's 128 heads (the whole-cache path instead widened
 * a bf16 cache to fp32 on every step, 16.2 against 18.5-19.4 tokens/s for two full-width V2
 * layers at 4,096 cached tokens). */
#define PIECE_MAX 128
#define PIECE_MAX_ROWS 128

/* The absorbed form's scores of every query row (t * nh + h) against ns cached positions into
 * out (rows ostride apart): q_lat . c, then each query's heads' q_pe . k_pe. c: those
 * positions' latents, rows c_stride apart; pe: their roped keys, rows pe_stride apart. */
static void absorbed_scores(const dsq_model_config *c, const float *q, int n, const float *q_lat,
                            const float *c_rows, size_t c_stride, const float *pe, size_t pe_stride,
                            int ns, float *out, size_t ostride)
{
    const int nh = c->n_heads, nope = c->qk_nope_head_dim, rope = c->qk_rope_head_dim;
    const int qk = nope + rope, kvr = c->kv_lora_rank;
    gemm_f32_nt(n * nh, ns, kvr, q_lat, (size_t)kvr, c_rows, c_stride, out, ostride, false);
    for (int t = 0; t < n; t++) /* one query's heads at a time */
        gemm_f32_nt(nh, ns, rope, q + (size_t)t * nh * qk + nope, (size_t)qk, pe, pe_stride,
                    out + (size_t)t * nh * ostride, ostride, true);
}

/* MLA, absorbed: q_lat = W_UK^T q_nope; score = q_lat . c + q_pe . k_pe; out = W_UV (sum p c).
 * Every head of every query goes through the cache together, as matrix products, so each
 * cached latent is read once per four heads rather than once per head. */
static int mla_absorbed(model *m, int layer, const float *q, int n, float *attn, float *q_lat,
                        float *o_lat)
{
    const dsq_model_config *c = m->cfg;
    const int nh = c->n_heads, nope = c->qk_nope_head_dim, rope = c->qk_rope_head_dim;
    const int vd = c->v_head_dim, qk = nope + rope, kvr = c->kv_lora_rank, kvw = nope + vd;
    const dsq_matrix *kv_b = &m->w.layers[layer].kv_b;
    const int total = m->n_past + n, rows = n * nh; /* row t * nh + h: query t, head h */
    const float scale = m->softmax_scale;
    /* A few query rows (decode): one pass over the cache in pieces of whole cached rows. Each
     * piece takes its scores, their exponentials against the piece's own maximum, and its
     * weighted sum of latents while those are still in cache; the pieces are then combined
     * with the weights e^(max_piece - max) (the softmax taken in parts). Piece boundaries
     * depend only on the cache length, so the sums are the same for any number of threads.
     * More rows (a prompt in the absorbed form): all scores, the softmax, then P latent by
     * slices of its columns. */
    const bool pieces = rows <= PIECE_MAX_ROWS;
    int piece = (total + 7) / 8; /* at least 8 pieces for the threads, 16 to 128 positions */
    piece = piece < 16 ? 16 : piece > PIECE_MAX ? PIECE_MAX : (piece + 7) / 8 * 8;
    const int n_pieces = (total + piece - 1) / piece;
    const int slice = 64;
    const int pos_slices = (total + slice - 1) / slice, col_slices = (kvr + slice - 1) / slice;
    /* A bf16 cache's pieces take each cached row [latent | key hi | key lo] whole against
     * [q_lat | q_pe | q_pe], on the tiles or widened into each thread's scratch first; without
     * pieces, and from an f32 cache, the kernels read fp32 latents and keys. */
    const size_t row_len = m->cache_a_stride;
    const uint16_t *lat16 =
        m->latent_bf16 ? m->latent_bf16 + (size_t)layer * m->ctx * row_len : NULL;
    /* tiles of few rows and short pieces cost more than they save (the tiny model's 4 heads
     * below 512 cached tokens: 9.0 against 10.9 thousand tokens/s widened) */
    const bool tiles = lat16 && pieces && m->latent_tiles && (rows >= 8 || piece >= 64);
    /* each thread's piece: its scores (rows of `piece` floats: rows the cache's length apart
     * would fall into one L1 set), then what its kernels need */
    const size_t score_bytes = ((size_t)rows * piece * sizeof(float) + 63) / 64 * 64;
    const size_t scratch_each =
        !pieces ? 0
                : score_bytes + (!lat16  ? 0
                                 : tiles ? latent_amx_scratch_bytes(rows, piece, row_len)
                                         : (size_t)piece * row_len * sizeof(float));
    uint8_t *scratch = scratch_each ? malloc((size_t)omp_get_max_threads() * scratch_each) : NULL;
    float *q_rows = lat16 && pieces ? malloc((size_t)rows * row_len * sizeof(float)) : NULL;
    uint16_t *q_tiles =
        tiles ? malloc(latent_amx_queries_len(rows, (int)row_len) * sizeof(uint16_t)) : NULL;
    const float *latent = NULL, *pe = NULL;
    float *widened = NULL;
    const bool f32_rows = !(pieces && lat16),
               have_rows = !f32_rows || cache_f32(m, layer, total, &latent, &pe, &widened);
    float *scores = pieces ? NULL : malloc((size_t)rows * total * sizeof(float)); /* all */
    float *partial = pieces ? malloc((size_t)n_pieces * rows * (kvr + 2) * sizeof(float)) : NULL;
    float *piece_max = partial ? partial + (size_t)n_pieces * rows * kvr : NULL;
    float *piece_sum = piece_max ? piece_max + (size_t)n_pieces * rows : NULL;
    /* each thread's scratch for W_UV's rows (a whole line even where they need none) */
    const size_t uv_each = (dsq_cpu_dot_rows_scratch(kv_b) + 64) / 64 * 64;
    uint8_t *uv_scratch = aligned_alloc(64, (size_t)omp_get_max_threads() * uv_each);
    /* a widened row per thread, for the reference path of W_UK's product */
    float *w_uk_rows = malloc((size_t)omp_get_max_threads() * kvr * sizeof(float));
    if ((pieces && !partial) || !uv_scratch || !w_uk_rows || (scratch_each && !scratch) ||
        (tiles && !q_tiles) || (lat16 && pieces && !q_rows) || !have_rows || (!pieces && !scores)) {
        free(scores);
        free(scratch);
        free(q_rows);
        free(q_tiles);
        free(widened);
        free(partial);
        free(uv_scratch);
        free(w_uk_rows);
        return DSQ_ERESOURCE;
    }
    /* the W_UK product decodes nh * nope rows of kv_b whatever the cache length */
#pragma omp parallel if ((long)(rows * total + nh * nope) * kvr > PARALLEL_MIN_WORK)
    {
        /* q_lat[t][h] = q_nope[t][h] W_UK[h], a sum of W_UK's rows. W_UK is used transposed,
         * which the row kernels do not do, so its rows are decoded once per step and query from
         * the file's storage: a q8 file reads a quarter of the bytes a widened f32 copy would
         * (DeepSeek-V2: 8.4 instead of 33.5 MB per layer and token), and no copy is kept. */
#pragma omp for schedule(static)
        for (int r = 0; r < rows; r++) {
            const int h = r % nh;
            dsq_dequant_rows_sum(kv_b->type, kv_b->data, (uint64_t)kv_b->rows, (uint64_t)kv_b->cols,
                                 kv_b->group, (uint64_t)h * kvw, nope, q + (size_t)r * qk,
                                 q_lat + (size_t)r * kvr,
                                 w_uk_rows + (size_t)omp_get_thread_num() * kvr);
        }
        if (q_rows) {
#pragma omp single
            { /* [q_lat | q_pe | q_pe | zeros to the row's padding], as the cached rows */
                for (int r = 0; r < rows; r++) {
                    float *row = q_rows + (size_t)r * row_len;
                    memcpy(row, q_lat + (size_t)r * kvr, (size_t)kvr * sizeof(float));
                    memcpy(row + kvr, q + (size_t)r * qk + nope, (size_t)rope * sizeof(float));
                    memcpy(row + kvr + rope, row + kvr, (size_t)rope * sizeof(float));
                    memset(row + kvr + 2 * rope, 0,
                           (row_len - (size_t)(kvr + 2 * rope)) * sizeof(float));
                }
                if (tiles)
                    latent_amx_pack_queries(q_rows, rows, (int)row_len, q_tiles);
            }
        }
        if (pieces) {
            uint8_t *thread_scratch = scratch + (size_t)omp_get_thread_num() * scratch_each;
            float *sc = (float *)thread_scratch; /* rows of `piece` floats */
            void *mine = thread_scratch + score_bytes;
#pragma omp for schedule(static)
            for (int p = 0; p < n_pieces; p++) {
                const int s0 = p * piece, ns = total - s0 < piece ? total - s0 : piece;
                const uint16_t *piece16 = lat16 ? lat16 + (size_t)s0 * row_len : NULL;
                /* the fp32 latents the scores and sums read without tiles */
                const float *c_rows = lat16 ? mine : latent + (size_t)s0 * kvr;
                const size_t c_stride = lat16 ? row_len : (size_t)kvr;
                if (tiles) {
                    latent_amx_scores(piece16, (int)row_len, row_len, ns, q_tiles, rows, sc,
                                      (size_t)piece, mine);
                } else if (lat16) {
                    kv_bf16_widen(piece16, (size_t)ns * row_len, mine);
                    gemm_f32_nt(rows, ns, (int)row_len, q_rows, row_len, c_rows, row_len, sc,
                                (size_t)piece, false);
                } else {
                    absorbed_scores(c, q, n, q_lat, c_rows, c_stride, pe + (size_t)s0 * rope,
                                    (size_t)rope, ns, sc, (size_t)piece);
                }
                for (int r = 0; r < rows; r++) { /* row r sees positions up to n_past + r / nh */
                    float *row = sc + (size_t)r * piece;
                    int seen = m->n_past + r / nh + 1 - s0;
                    seen = seen < 0 ? 0 : seen > ns ? ns : seen;
                    const size_t at = (size_t)p * rows + r;
                    piece_sum[at] = ops_scaled_exp(row, seen, scale, &piece_max[at]);
                    memset(row + seen, 0, (size_t)(ns - seen) * sizeof(float));
                }
                float *sums = partial + (size_t)p * rows * kvr;
                if (tiles) { /* the static schedule gives this thread piece p + 1 next */
                    const int next =
                        p + 1 < (omp_get_thread_num() + 1) * n_pieces / omp_get_num_threads() &&
                                p + 1 < n_pieces
                            ? (p + 1) * piece
                            : total;
                    latent_amx_weighted_sum(
                        piece16, kvr, row_len, ns, sc, (size_t)piece, rows, sums, mine,
                        next < total ? lat16 + (size_t)next * row_len : NULL,
                        (size_t)(total - next < piece ? total - next : piece) * row_len * 2);
                } else
                    gemm_f32(rows, kvr, ns, sc, (size_t)piece, c_rows, c_stride, sums, (size_t)kvr,
                             false);
            }
#pragma omp for schedule(static)
            for (int r = 0; r < rows; r++) /* o_lat = sum of pieces e^(max_p - max) / sum */
                combine_pieces(n_pieces, partial + (size_t)r * kvr, (size_t)rows * kvr,
                               piece_max + r, piece_sum + r, (size_t)rows, o_lat + (size_t)r * kvr,
                               kvr);
        } else {
#pragma omp for schedule(static)
            for (int sl = 0; sl < pos_slices; sl++) {
                const int s0 = sl * slice, ns = total - s0 < slice ? total - s0 : slice;
                absorbed_scores(c, q, n, q_lat, latent + (size_t)s0 * kvr, (size_t)kvr,
                                pe + (size_t)s0 * rope, (size_t)rope, ns, scores + s0,
                                (size_t)total);
            }
#pragma omp for schedule(static)
            for (int r = 0; r < rows; r++) {
                float *row = scores + (size_t)r * total;
                const int last = m->n_past + r / nh;
                ops_scaled_softmax(row, last + 1, scale);
                memset(row + last + 1, 0, (size_t)(total - last - 1) * sizeof(float));
            }
#pragma omp for schedule(static)
            for (int sl = 0; sl < col_slices; sl++) { /* o_lat = P latent, a slice of columns */
                const int j0 = sl * slice, nj = kvr - j0 < slice ? kvr - j0 : slice;
                gemm_f32(rows, nj, total, scores, (size_t)total, latent + j0, (size_t)kvr,
                         o_lat + j0, (size_t)kvr, false);
            }
        }
#pragma omp for schedule(static)
        /* attn[t][h] = W_UV[h] o_lat[t][h], r = t nh + h: each head's value rows of kv_b with
         * o_lat rounded to int8 as any q8/q4 matmul's input (unless f32 activations) */
        for (int r = 0; r < rows; r++)
            dsq_cpu_dot_rows(kv_b, r % nh * kvw + nope, vd, o_lat + (size_t)r * kvr,
                             attn + (size_t)r * vd,
                             uv_scratch + (size_t)omp_get_thread_num() * uv_each);
    }
    free(scores);
    free(scratch);
    free(q_rows);
    free(q_tiles);
    free(widened);
    free(partial);
    free(uv_scratch);
    free(w_uk_rows);
    return DSQ_OK;
}

static int mla_forward(model *m, int layer, const float *xn, int n, float *out)
{
    const dsq_model_config *c = m->cfg;
    const layer_weights *lw = &m->w.layers[layer];
    const int nh = c->n_heads, nope = c->qk_nope_head_dim, rope = c->qk_rope_head_dim;
    const int qk = nope + rope, kvr = c->kv_lora_rank, total = m->n_past + n;
    const bool expanded = m->mode == ATTN_EXPANDED || (m->mode == ATTN_AUTO && n > 1);
    size_t q_size = (size_t)n * nh * qk;
    size_t lat_size = expanded ? (size_t)total * nh * (nope + c->v_head_dim)
                               : 2 * (size_t)n * nh * kvr;
    float *q = malloc(q_size * sizeof(float));
    float *ckv = malloc((size_t)n * (kvr + rope) * sizeof(float));
    float *qa = c->q_lora_rank ? malloc((size_t)n * c->q_lora_rank * sizeof(float)) : NULL;
    float *attn = malloc((size_t)n * nh * c->v_head_dim * sizeof(float));
    float *work = malloc(lat_size * sizeof(float));
    int rc = q && ckv && attn && work && (qa || !c->q_lora_rank) ? DSQ_OK : DSQ_ERESOURCE;
    if (!rc) {
        /* the projections of xn in one batch (one parallel region on the CPU) */
        const dsq_matmul_job proj[2] = {
            {c->q_lora_rank ? &lw->q_a : &lw->wq, xn, c->q_lora_rank ? qa : q, n, NULL},
            {&lw->kv_a, xn, ckv, n, NULL}};
        if (m->be != &dsq_backend_cpu || dsq_cpu_matmul_many(proj, 2))
            for (int i = 0; i < 2; i++)
                m->be->matmul(proj[i].w, xn, proj[i].y, n);
        if (c->q_lora_rank) { /* the reference builds q_a_layernorm with its default eps 1e-6 */
            for (int t = 0; t < n; t++)
                ops_rmsnorm(qa + (size_t)t * c->q_lora_rank, qa + (size_t)t * c->q_lora_rank,
                            lw->q_a_norm, c->q_lora_rank, 1e-6f);
            m->be->matmul(&lw->q_b, qa, q, n);
        }
        for (int t = 0; t < n; t++) {
            int pos = m->n_past + t;
            float *row = ckv + (size_t)t * (kvr + rope);
            const size_t at = ((size_t)layer * m->ctx + pos) * m->cache_a_stride;
            rope_apply(&m->rope, row + kvr, pos); /* the shared key, in place */
            if (m->latent_bf16) {                 /* [latent | key] normalized in place, rounded */
                uint16_t *cached = m->latent_bf16 + at;
                ops_rmsnorm(row, row, lw->kv_a_norm, kvr, 1e-6f); /* ditto */
                kv_bf16_store(row, (size_t)kvr, cached);
                kv_bf16_store_split(row + kvr, (size_t)rope, cached + kvr, cached + kvr + rope);
                memset(cached + kvr + 2 * rope, 0,
                       (m->cache_a_stride - (size_t)(kvr + 2 * rope)) * 2);
            } else {
                ops_rmsnorm(m->cache_a + at, row, lw->kv_a_norm, kvr, 1e-6f); /* ditto */
                memcpy(m->cache_b + ((size_t)layer * m->ctx + pos) * rope, row + kvr,
                       (size_t)rope * sizeof(float));
            }
            for (int h = 0; h < nh; h++)
                rope_apply(&m->rope, q + ((size_t)t * nh + h) * qk + nope, pos);
        }
        if (expanded)
            rc = mla_expanded(m, layer, q, n, attn, work);
        else
            rc = mla_absorbed(m, layer, q, n, attn, work, work + (size_t)n * nh * kvr);
    }
    if (!rc)
        m->be->matmul(&lw->wo, attn, out, n);
    free(q);
    free(ckv);
    free(qa);
    free(attn);
    free(work);
    return rc;
}

int attention_forward(model *m, int layer, const float *xn, int n, float *out)
{
    return m->cfg->family == DSQ_FAMILY_V1 ? mha_forward(m, layer, xn, n, out)
                                           : mla_forward(m, layer, xn, n, out);
}
