/* A float as the sum of two bf16 (hi = v rounded to nearest even, lo = the rest rounded), the
 * operand form of the tensor-core GEMM (cuda/gemm.cu): hi + lo is within 2^-16 |v| of v, where
 * hi alone is only within 2^-8. Plain C so the CPU tests check the same bits. */
#ifndef DSQ_BF16_SPLIT_H
#define DSQ_BF16_SPLIT_H

#include <stdbool.h>
#include <stdint.h>

#include "float16.h"

static inline DSQ_HD void bf16_split(float v, uint16_t *hi, uint16_t *lo)
{
    const bool finite = v - v == 0; /* false for infinities and NaN */
    *hi = dsq_f32_to_bf16(v);
    const float h = dsq_bf16_to_f32(*hi);
    if (finite && h - h != 0) /* past bf16's largest (3.39e38): that largest, the rest in lo */
        *hi = (uint16_t)((*hi & 0x8000u) | 0x7f7fu);
    /* an infinite v is hi alone: inf + (v - inf) would be NaN */
    *lo = finite ? dsq_f32_to_bf16(v - dsq_bf16_to_f32(*hi)) : 0;
}

#endif
