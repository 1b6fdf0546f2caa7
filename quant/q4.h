/* q4: 4-bit unsigned with a per-group f16 scale and f16 minimum (asymmetric): value = d * q + m,
 * q in [0, 15], one (d, m) pair per group of G consecutive elements along a row.
 *
 * Layout of an (N rows, K cols) tensor, planar like q8:
 *     u8    q[N][K / 2]        row r at byte r * K / 2; byte j holds element 2j in its low
 *                              nibble and element 2j + 1 in its high nibble
 *     f16   dm[N][K / G][2]    after the q plane, at byte N * K / 2: (d, m) of each group,
 *                              adjacent so one 4-byte load fetches both
 * G divides K and is a multiple of 32.
 * Bytes: N * K / 2 + 4 * N * K / G;  bits per weight: 4 + 32 / G (4.5 at G = 64). */
#ifndef DSQ_Q4_H
#define DSQ_Q4_H

#include <stdint.h>

#include "float16.h"

static inline DSQ_HD uint64_t dsq_q4_bytes(uint64_t rows, uint64_t cols, uint64_t group)
{
    return rows * cols / 2 + 4 * rows * (cols / group);
}

/* The (d, m) plane of a q4 tensor that starts at base. */
static inline DSQ_HD const uint16_t *dsq_q4_scales(const void *base, uint64_t rows, uint64_t cols)
{
    return (const uint16_t *)((const uint8_t *)base + rows * cols / 2);
}

/* Element (r, k) of a q4 tensor. */
static inline DSQ_HD float dsq_q4_get(const void *base, uint64_t rows, uint64_t cols,
                                      uint64_t group, uint64_t r, uint64_t k)
{
    const uint8_t byte = ((const uint8_t *)base)[r * cols / 2 + k / 2];
    const int q = (k & 1) ? byte >> 4 : byte & 15;
    const uint16_t *dm = dsq_q4_scales(base, rows, cols) + 2 * (r * (cols / group) + k / group);
    return dsq_f16_to_f32(dm[0]) * (float)q + dsq_f16_to_f32(dm[1]);
}

#endif
