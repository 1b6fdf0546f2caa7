/* q6: 6-bit symmetric with one f16 scale per group of G consecutive elements along a row:
 * value = d * (u - 32), u in [0, 63]. Meant for the matrices every token reads in full (the
 * output head) where q4 costs too much accuracy and q8 too many bytes: 6 + 16 / G bits per
 * weight (6.25 at G = 64), against q8's 8.25.
 *
 * Layout of an (N rows, K cols) tensor, planar like q4:
 *     u8    lo[N][K / 2]       u's low four bits, exactly as q4's nibble plane: byte j of a row
 *                              holds element 2j in its low nibble and 2j + 1 in its high one
 *     u8    hi[N][K / 4]       after it, at byte N * K / 2: u's top two bits, 8 bytes per run of
 *                              32 elements; in a run's byte b, bit pair s (bits 2s, 2s + 1)
 *                              belongs to element 2b (s = 0), 16 + 2b (1), 2b + 1 (2), 17 + 2b (3)
 *     f16   d[N][K / G]        after it, at byte 3 * N * K / 4
 * G divides K and is a multiple of 32. The bit pairs are ordered so that one 8-byte load,
 * shifted by 0, 2, 4 and 6, gives a run's top bits in the order its nibbles unpack (evens, then
 * odds): the order of quant/qdot.h's int8 activations.
 * Bytes: 3 * N * K / 4 + 2 * N * K / G;  bits per weight: 6 + 16 / G. */
#ifndef DSQ_Q6_H
#define DSQ_Q6_H

#include <stdint.h>

#include "float16.h"

static inline DSQ_HD uint64_t dsq_q6_bytes(uint64_t rows, uint64_t cols, uint64_t group)
{
    return rows * cols / 2 + rows * cols / 4 + 2 * rows * (cols / group);
}

/* The top-bits plane and the scale plane of a q6 tensor that starts at base. */
static inline DSQ_HD const uint8_t *dsq_q6_high(const void *base, uint64_t rows, uint64_t cols)
{
    return (const uint8_t *)base + rows * cols / 2;
}

static inline DSQ_HD const uint16_t *dsq_q6_scales(const void *base, uint64_t rows, uint64_t cols)
{
    return (const uint16_t *)((const uint8_t *)base + rows * cols / 2 + rows * cols / 4);
}

/* Where element k of a row keeps its top two bits: byte *byte of the row's part of the hi
 * plane (8 per run of 32), bits *shift and *shift + 1. */
static inline DSQ_HD void dsq_q6_high_slot(uint64_t k, uint64_t *byte, int *shift)
{
    const uint64_t j = k % 32;
    *byte = k / 32 * 8 + j / 2 % 8;
    *shift = 2 * (int)((j & 1) * 2 + j / 16);
}

/* u (0..63) of element (r, k). */
static inline DSQ_HD int dsq_q6_code(const void *base, uint64_t rows, uint64_t cols, uint64_t r,
                                     uint64_t k)
{
    const uint8_t lo = ((const uint8_t *)base)[r * cols / 2 + k / 2];
    uint64_t byte;
    int shift;
    dsq_q6_high_slot(k, &byte, &shift);
    const uint8_t hi = dsq_q6_high(base, rows, cols)[r * cols / 4 + byte];
    return ((k & 1) ? lo >> 4 : lo & 15) | (hi >> shift & 3) << 4;
}

/* Element (r, k) of a q6 tensor. */
static inline DSQ_HD float dsq_q6_get(const void *base, uint64_t rows, uint64_t cols,
                                      uint64_t group, uint64_t r, uint64_t k)
{
    const uint16_t d = dsq_q6_scales(base, rows, cols)[r * (cols / group) + k / group];
    return dsq_f16_to_f32(d) * (float)(dsq_q6_code(base, rows, cols, r, k) - 32);
}

#endif
