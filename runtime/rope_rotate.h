/* One RoPE rotation, shared by the CPU tests and the CUDA kernels: pair i of a head's rope dims
 * (NeoX: x[i], x[i + dim/2]; interleaved, V2: x[2i], x[2i+1]) turned by the tabulated cos, sin
 * (runtime/rope.c computes the tables, YaRN mscale folded in). */
#ifndef DSQ_ROPE_ROTATE_H
#define DSQ_ROPE_ROTATE_H

#include <stdbool.h>

#include "float16.h" /* DSQ_HD */

static inline DSQ_HD void rope_rotate_pair(float *x, int i, int dim, bool interleaved, float cs,
                                           float sn)
{
    const int a = interleaved ? 2 * i : i, b = interleaved ? 2 * i + 1 : i + dim / 2;
    const float x0 = x[a], x1 = x[b];
    x[a] = x0 * cs - x1 * sn;
    x[b] = x1 * cs + x0 * sn;
}

#endif
