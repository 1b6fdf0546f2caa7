/* Fused dot products of one weight row (any storage type) with an f32 vector, without widening
 * the row first: a scalar reference that defines the result, and AVX2 versions picked at run time.
 *
 * Definition (dsq_dot_row_ref), fp32 throughout:
 *   f32, f16, bf16: sum over k of w[k] * x[k], accumulated in order;
 *   q8, q6: sum over groups g of d_g * s_g, with s_g = sum over the group of q[k] * x[k] in
 *   order (q6: q = u - 32);
 *   q4: sum over groups g of (d_g * s_g + m_g * xs_g), xs_g = sum of x over the group in order.
 * Faster paths may sum in another order; tests bound the difference (tests/test_dot.c). */
#ifndef DSQ_DOT_H
#define DSQ_DOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How many floats of per-vector precomputation dsq_dot_xsums writes for a type: cols / group for
 * q4 (the group sums of x, which the m term needs), 0 for every other type. */
uint64_t dsq_dot_xsum_len(uint32_t type, uint64_t cols, uint32_t group);

/* xsum[dsq_dot_xsum_len(...)] = the group sums of x[cols]. A matmul computes these once per token
 * and passes them for every row; nothing is written when the length is 0. */
void dsq_dot_xsums(uint32_t type, const float *x, uint64_t cols, uint32_t group, float *xsum);

/* Row r of a (rows, cols) tensor of the given type and group (0 for plain floats) at base, dotted
 * with x[cols]. xsum: x's group sums from dsq_dot_xsums, or NULL to compute them here. Uses the
 * fastest path this CPU runs, chosen once at first use. */
float dsq_dot_row(uint32_t type, const void *base, uint64_t rows, uint64_t cols, uint32_t group,
                  uint64_t r, const float *x, const float *xsum);

/* The scalar reference: the definition above. */
float dsq_dot_row_ref(uint32_t type, const void *base, uint64_t rows, uint64_t cols, uint32_t group,
                      uint64_t r, const float *x, const float *xsum);

/* Makes dsq_dot_row use the reference (true) or the fastest path again (false); for tests. */
void dsq_dot_force_reference(bool on);

/* The path dsq_dot_row uses now: "avx2" or "scalar". */
const char *dsq_dot_path(void);

/* Whether the AVX2 paths run now (the CPU has them and the reference is not forced): for
 * kernels outside quant/ that follow the same switch (runtime/kv_q8.c). */
bool dsq_dot_use_avx2(void);

/* Whether this CPU (and OS) runs the AVX2 + FMA + F16C kernels. */
bool dsq_dot_have_avx2(void);

#if defined(__x86_64__)
/* AVX2 + FMA + F16C versions of dsq_dot_row_ref (quant/dot_avx2.c); call only when
 * dsq_dot_have_avx2(). */
float dsq_dot_row_avx2(uint32_t type, const void *base, uint64_t rows, uint64_t cols,
                       uint32_t group, uint64_t r, const float *x, const float *xsum);

/* A tile of a plain float tensor (f32, bf16, f16): out[t * ostride + i] = row r0 + i dotted with
 * x[t][cols], for i < nr (1..4) and t < nt (1..2); each weight load serves both tokens. Within
 * the same bound of the exact dot as dsq_dot_row_avx2; call only when dsq_dot_have_avx2(). */
void dsq_dot_tile_avx2(uint32_t type, const void *base, uint64_t cols, uint64_t r0, int nr,
                       const float *const *x, int nt, float *out, size_t ostride);

/* The same with 512-bit registers and up to four tokens (nt 1..4; quant/dot_avx512.c); call
 * only when dsq_dot_have_avx512(). */
void dsq_dot_tile_avx512(uint32_t type, const void *base, uint64_t cols, uint64_t r0, int nr,
                         const float *const *x, int nt, float *out, size_t ostride);
#endif

/* Whether this CPU (and OS) runs the AVX-512F float tile, besides the AVX2 kernels. */
bool dsq_dot_have_avx512(void);

#endif
