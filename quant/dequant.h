/* Reference dequantization of one row of any storage type to f32: the definition every faster
 * path (AVX2, CUDA) is tested against. */
#ifndef DSQ_DEQUANT_H
#define DSQ_DEQUANT_H

#include <stdint.h>

/* out[cols] = row r of a (rows, cols) tensor of the given type and group size at base. */
void dsq_dequant_row(uint32_t type, const void *base, uint64_t rows, uint64_t cols,
                     uint32_t group, uint64_t r, float *out);

/* The same values, bit for bit, by the fastest path this CPU runs (AVX2 where it has it; the
 * reference otherwise or under dsq_dot_force_reference). For rows widened on every token. */
void dsq_dequant_row_fast(uint32_t type, const void *base, uint64_t rows, uint64_t cols,
                          uint32_t group, uint64_t r, float *out);

/* y[j] = sum over i < n of x[i] * (row r0 + i)[j], for j < cols: W^T x over a run of n rows,
 * the product absorbed MLA takes with W_UK. y is overwritten. The reference widens each row
 * (dsq_dequant_row) and adds x[i] times it to y, row by row; the fast path (AVX2, under the same
 * switch as dsq_dequant_row_fast) decodes the same values in registers and adds them with one
 * fused multiply-add each, in the same row order: what widening into a buffer and a fused axpy
 * per row would give, without the buffer's stores and loads. row: cols floats the reference
 * widens rows into. */
void dsq_dequant_rows_sum(uint32_t type, const void *base, uint64_t rows, uint64_t cols,
                          uint32_t group, uint64_t r0, int n, const float *x, float *y, float *row);

#if defined(__x86_64__)
/* The AVX2 path (quant/dot_avx2.c, beside the dot kernels whose decoders it shares); call only
 * when dsq_dot_have_avx2(). */
void dsq_dequant_row_avx2(uint32_t type, const void *base, uint64_t rows, uint64_t cols,
                          uint32_t group, uint64_t r, float *out);

/* The AVX2 path of dsq_dequant_rows_sum (quant/dot_avx2.c); call only when dsq_dot_have_avx2(). */
void dsq_dequant_rows_sum_avx2(uint32_t type, const void *base, uint64_t rows, uint64_t cols,
                               uint32_t group, uint64_t r0, int n, const float *x, float *y);
#endif

#endif
