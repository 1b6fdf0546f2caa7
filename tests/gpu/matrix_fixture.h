/* Random stored matrices of any type and the magnitude S = sum_k |w_k x_k| that the GEMV and
 * GEMM tests' rounding bounds scale with (q4: (|d q| + |m|) |x|; q6: |d (u - 32)| |x|). */
#ifndef DSQ_MATRIX_FIXTURE_H
#define DSQ_MATRIX_FIXTURE_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

extern "C" {
#include "dot.h"
}
#include "q4.h"
#include "q6.h"
#include "q8.h"

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint32_t next_u32(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}
static float uniform(void)
{
    return (float)(next_u32() >> 8) / (float)(1u << 24) * 2.0f - 1.0f;
}


/* A random (rows, cols) matrix of the type, as stored. */
static uint8_t *random_matrix(uint32_t type, int rows, int cols, uint32_t group, uint64_t *bytes)
{
    if (!dsq_type_nbytes(type, (uint64_t)rows, (uint64_t)cols, group, bytes)) {
        fprintf(stderr, "random_matrix: type %u cannot hold %d x %d in groups of %u\n", type, rows,
                cols, group);
        abort();
    }
    uint8_t *m = (uint8_t *)malloc(*bytes);
    if (!m) {
        fprintf(stderr, "random_matrix: out of memory for %llu bytes\n",
                (unsigned long long)*bytes);
        abort();
    }
    const uint64_t n = (uint64_t)rows * cols;
    if (type == DSQ_TYPE_F32) {
        for (uint64_t i = 0; i < n; i++)
            ((float *)m)[i] = uniform();
    } else if (type == DSQ_TYPE_BF16) {
        for (uint64_t i = 0; i < n; i++)
            ((uint16_t *)m)[i] = dsq_f32_to_bf16(uniform());
    } else {
        /* codes: q8's int8, q4's nibbles, q6's nibbles and top bits (any bits are valid) */
        const uint64_t codes = type == DSQ_TYPE_Q8 ? n : type == DSQ_TYPE_Q6 ? 3 * n / 4 : n / 2;
        for (uint64_t i = 0; i < codes; i++) {
            uint8_t b = (uint8_t)next_u32();
            m[i] = type == DSQ_TYPE_Q8 && b == 0x80 ? 0x81 : b; /* q8 codes stay in [-127, 127] */
        }
        uint16_t *sc = (uint16_t *)(m + codes);
        for (uint64_t i = 0; i < (*bytes - codes) / 2; i++)
            sc[i] = dsq_f32_to_f16(uniform() * 0.01f);
    }
    return m;
}

/* S of the bound for row r and vector x. */
static double magnitude(uint32_t type, const uint8_t *m, int rows, int cols, uint32_t group, int r,
                        const float *x)
{
    double s = 0;
    for (int k = 0; k < cols; k++) {
        double w;
        if (type == DSQ_TYPE_F32)
            w = fabs(((const float *)m)[(size_t)r * cols + k]);
        else if (type == DSQ_TYPE_BF16)
            w = fabs(dsq_bf16_to_f32(((const uint16_t *)m)[(size_t)r * cols + k]));
        else if (type == DSQ_TYPE_Q8)
            w = fabs(dsq_q8_get(m, rows, cols, group, r, k));
        else if (type == DSQ_TYPE_Q6)
            w = fabs(dsq_q6_get(m, rows, cols, group, r, k));
        else {
            const uint16_t *dm =
                dsq_q4_scales(m, rows, cols) + 2 * ((size_t)r * (cols / group) + k / group);
            const uint8_t b = m[(size_t)r * cols / 2 + k / 2];
            w = fabs(dsq_f16_to_f32(dm[0]) * ((k & 1) ? b >> 4 : b & 15)) +
                fabs(dsq_f16_to_f32(dm[1]));
        }
        s += w * fabs(x[k]);
    }
    return s;
}

#endif
