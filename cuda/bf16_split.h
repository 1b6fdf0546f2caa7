/* A float as the sum of two bf16 (hi = v rounded to nearest even, lo = the rest rounded), the
 * operand form of the tensor-core GEMM (cuda/gemm.cu): hi + lo is within 2^-16 |v| of v, where
 * hi alone is only within 2^-8. Plain C so the CPU tests check the same bits. */
#ifndef DSQ_BF16_SPLIT_H
#define DSQ_BF16_SPLIT_H

#include <stdint.h>

#include "float16.h"

static inline DSQ_HD void bf16_split(float v, uint16_t *hi, uint16_t *lo)
{
    *hi = dsq_f32_to_bf16(v);
    *lo = dsq_f32_to_bf16(v - dsq_bf16_to_f32(*hi));
}

#endif
