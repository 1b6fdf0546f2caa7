/* The KV cache in bf16 (--kv-cache bf16, the default): half the bytes a decode step reads
 * from a long cache. MHA (V1) rounds its keys and values to bf16. MLA (V2) keeps a row per
 * position: RMSNorm(c_kv) in bf16 and the roped shared key k_pe in two bf16 parts
 * (kv_bf16_latent_row), 1,280 bytes per token and layer at DeepSeek-V2's size against 2,304 in
 * f32; on CPUs with AMX the two products of its absorbed attention (scores = [q_lat | q_pe |
 * q_pe] . row, sums = P c) run on bf16 tiles instead of fp32 FMAs. Only the stored latent is
 * rounded: the tile kernels split each fp32 query and probability into two bf16 parts (hi and
 * lo), so they compute the fp32 products of the rounded cache to within 2^-16 of the terms
 * (TDPBF16PS multiplies bf16 pairs exactly and adds in fp32). Without AMX MLA's pieces are
 * widened to fp32 and go through gemm_f32; MHA's decode reads its bf16 rows directly (AVX-512 or
 * AVX2). */
#ifndef DSQ_KV_BF16_H
#define DSQ_KV_BF16_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Values per cached row: kv_lora_rank latents, the rope key values as bf16 (hi), what each
 * leaves (lo), then zeros to a multiple of 32 (the tiles' k step; DeepSeek-V2's 512 + 2 x 64
 * needs none). The key is unnormalized and meets a query of its own scale: kept as hi + lo it
 * is within 2^-16 of its fp32 value, in the bytes an fp32 key would take. */
static inline size_t kv_bf16_latent_row(int kv_lora_rank, int rope)
{
    return ((size_t)kv_lora_rank + 2 * (size_t)rope + 31) / 32 * 32;
}

/* Rounds n floats to bf16 (nearest even), as the cache stores latents, keys and values. */
void kv_bf16_store(const float *x, size_t n, uint16_t *out);

/* n floats as hi = bf16(x) and lo = bf16(x - hi), as the cache stores MLA's roped keys. */
void kv_bf16_store_split(const float *x, size_t n, uint16_t *hi, uint16_t *lo);

/* Widens n cached bf16 values to fp32 (exact). */
void kv_bf16_widen(const uint16_t *x, size_t n, float *out);

/* MHA's decode over a bf16 cache, straight from the cached rows (each position's row holds its
 * key or value heads one after another, hd values each, rows stride values apart): no widened
 * copy is written and read back. Query head h takes key/value head h / group.
 * scores[h * sstride + i] = q[h * hd ..] . key i of head h / group, for h < nh, i < ns. */
void mha_bf16_scores(const uint16_t *keys, size_t stride, int ns, const float *q, int nh, int group,
                     int hd, float *scores, size_t sstride);

/* out[h * hd + d] = sum over i < ns of p[h * pstride + i] value i of head h / group at d, for
 * h < nh, d < hd, positions in order. */
void mha_bf16_weighted_sum(const uint16_t *values, size_t stride, int ns, const float *p,
                           size_t pstride, int nh, int group, int hd, float *out);

/* Whether the tile kernels run here (AMX-BF16 with AVX-512) for latents of kvr values:
 * kvr a multiple of 32. */
bool latent_amx_fits(int kvr);

/* Elements (uint16_t) of rows query rows of kvr values packed for latent_amx_scores, and the
 * bytes of one thread's scratch for pieces of up to `positions` cached rows cstride apart. */
size_t latent_amx_queries_len(int rows, int kvr);
size_t latent_amx_scratch_bytes(int rows, int positions, size_t cstride);

/* Packs q_lat (rows of kvr floats) as the scores' B operand: per 16-row block and 32 k, a 1 KB
 * tile of k pairs, once as the bf16 of each value (hi) and once as the bf16 of what hi leaves
 * (lo). */
void latent_amx_pack_queries(const float *q_lat, int rows, int kvr, uint16_t *packed);

/* scores[r * sstride + i] = q_lat[r] . latent[i] over the first kvr values of each cached row,
 * for r < rows and i < ns: latent, ns rows of bf16 cstride apart; packed from
 * latent_amx_pack_queries; scratch of latent_amx_scratch_bytes. */
void latent_amx_scores(const uint16_t *latent, int kvr, size_t cstride, int ns,
                       const uint16_t *packed, int rows, float *scores, size_t sstride,
                       void *scratch);

/* out[r * kvr + j] = sum over i < ns of p[r * pstride + i] latent[i][j], for r < rows and the
 * first kvr values of each cached row. While it computes it brings next_bytes at next (the
 * caller's next piece, or NULL) into L2: the products leave the memory idle, and the next
 * piece's scores would wait for it. */
void latent_amx_weighted_sum(const uint16_t *latent, int kvr, size_t cstride, int ns,
                             const float *p, size_t pstride, int rows, float *out, void *scratch,
                             const void *next, size_t next_bytes);

#endif
