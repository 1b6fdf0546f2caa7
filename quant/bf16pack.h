/* The CPU's row-interleaved copy of a bf16 tensor, made once at load for the prompt's kernels
 * (AVX-512, or AVX2 with each chunk as two 8-row halves): planar rows make a vector dot product
 * sum one row across its lanes and fold every row and token horizontally at the end; here each
 * 64-byte chunk holds two elements of 16 rows, each fma takes one broadcast activation, and lane r
 * accumulates row r.
 *
 * Layout of an (N rows, K cols) bf16 tensor (N a multiple of 16, K even): blocks of 16 rows one
 * after another, block b = rows 16b..16b+15, each 32 K bytes, in chunks of 64 bytes in k order:
 * chunk c covers k = 2c, 2c + 1: bytes 4r..4r+3 = w[16b + r][2c] (low half), w[16b + r][2c + 1]
 * (high half), the row's own 4 bytes there. Bytes: N K 2, as the planar tensor.
 *
 * The kernel takes f32 activations; each lane keeps one sum in k order, one fma per element, so
 * a value is within K u sum |w x| of the exact dot (u = 2^-24), like the float tiles of
 * quant/dot.h. */
#ifndef DSQ_BF16PACK_H
#define DSQ_BF16PACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Tokens and 16-row blocks one dsq_bf16pack_tile call takes at most. */
#define DSQ_BF16PACK_MAX_TOKENS 12
#define DSQ_BF16PACK_MAX_BLOCKS 2

/* Whether a (rows, cols) bf16 tensor has a packed form. */
bool dsq_bf16pack_fits(uint64_t rows, uint64_t cols);

/* Writes block b of the packed form of the planar tensor into packed (rows * cols * 2 bytes);
 * blocks are independent. */
void dsq_bf16pack_block(const void *planar, uint64_t rows, uint64_t cols, uint64_t b,
                        void *packed);

/* Element (r, k) of a packed tensor, as f32: the layout's definition, for tests. */
float dsq_bf16pack_get(const void *packed, uint64_t cols, uint64_t r, uint64_t k);

/* Whether this CPU runs dsq_bf16pack_tile (AVX-512 F or AVX2 with FMA). */
bool dsq_bf16pack_have(void);

/* out[t * ostride + 16 b + i] = row 16 b + i dotted with x[t][cols], for i < 16 nb and t < nt
 * (blocks b..b + nb - 1, nb 1..DSQ_BF16PACK_MAX_BLOCKS; nt 1..DSQ_BF16PACK_MAX_TOKENS); call
 * only when dsq_bf16pack_have(). */
void dsq_bf16pack_tile(const void *packed, uint64_t cols, uint64_t b, int nb,
                       const float *const *x, int nt, float *out, size_t ostride);

/* The AMX path (quant/bf16pack_amx.c), for prompts: the activations rounded to bf16 (round to
 * nearest even), so a value is within (2^-8 + K 2^-24) sum |w x| of the exact dot of the f32
 * activations, plus the flush of subnormal products to zero. */

/* Whether this CPU and OS run dsq_bf16pack_amx: AMX-TILE, AMX-BF16 and AVX512-BF16, and the
 * kernel granted the tile state (asked once). */
bool dsq_bf16pack_amx_have(void);

/* Whether a (rows, cols) bf16 tensor runs on the AMX path: packed, and cols a multiple of 32
 * (one tile's k). */
bool dsq_bf16pack_amx_fits(uint64_t rows, uint64_t cols);

/* out[i] = x[i] rounded to bf16, nearest even, for i < n. */
void dsq_bf16_round_rows(const float *x, uint64_t n, uint16_t *out);

/* out[t * ostride + 16 b + i] = row 16 b + i dotted with x[t] for i < 16 nb (nb 1 or 2) and
 * t < n, where x holds n rows of cols bf16 and then rows up to the next multiple of 16 that may
 * hold anything (the tiles read them; their sums are dropped). Call only when
 * dsq_bf16pack_amx_have() and dsq_bf16pack_amx_fits(). */
void dsq_bf16pack_amx(const void *packed, uint64_t cols, uint64_t b, int nb, const uint16_t *x,
                      int n, float *out, size_t ostride);

#if defined(__x86_64__)
/* The two paths, for the tests; call only where dsq_dot_have_avx512() or dsq_dot_have_avx2()
 * says the CPU runs them. */
void dsq_bf16pack_tile_avx512(const void *packed, uint64_t cols, uint64_t b, int nb,
                              const float *const *x, int nt, float *out, size_t ostride);
void dsq_bf16pack_tile_avx2(const void *packed, uint64_t cols, uint64_t b, int nb,
                            const float *const *x, int nt, float *out, size_t ostride);
#endif

#endif
