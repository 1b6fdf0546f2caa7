/* q8: int8, symmetric, one f16 scale per group of G consecutive elements along a row (the
 * input dimension). value = d * q, q in [-127, 127].
 *
 * Layout of an (N rows, K cols) tensor, "planar" so that every plane is 16-byte aligned and a
 * warp reading one row's weights issues contiguous 128-byte loads:
 *     int8  q[N][K]          row r at byte r * K
 *     f16   d[N][K / G]      after the q plane, at byte N * K
 * G divides K and is a multiple of 32 (so K / 2 and every plane start stay 16-byte aligned).
 * Bytes: N * K + 2 * N * K / G;  bits per weight: 8 + 16 / G (8.25 at G = 64). */
#ifndef DSQ_Q8_H
#define DSQ_Q8_H

#include <stdint.h>

#include "float16.h"

static inline DSQ_HD uint64_t dsq_q8_bytes(uint64_t rows, uint64_t cols, uint64_t group)
{
    return rows * cols + 2 * rows * (cols / group);
}

/* The scale plane of a q8 tensor that starts at base. */
static inline DSQ_HD const uint16_t *dsq_q8_scales(const void *base, uint64_t rows, uint64_t cols)
{
    return (const uint16_t *)((const uint8_t *)base + rows * cols);
}

/* Element (r, k) of a q8 tensor. */
static inline DSQ_HD float dsq_q8_get(const void *base, uint64_t rows, uint64_t cols,
                                      uint64_t group, uint64_t r, uint64_t k)
{
    const int8_t q = ((const int8_t *)base)[r * cols + k];
    const uint16_t d = dsq_q8_scales(base, rows, cols)[r * (cols / group) + k / group];
    return dsq_f16_to_f32(d) * (float)q;
}

#endif
