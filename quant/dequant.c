/* Row dequantization, scalar and obviously correct. */
#include "dequant.h"

#include <string.h>

#include "float16.h"
#include "q4.h"
#include "q6.h"
#include "q8.h"
#include "types.h"

void dsq_dequant_row(uint32_t type, const void *base, uint64_t rows, uint64_t cols,
                     uint32_t group, uint64_t r, float *out)
{
    switch (type) {
    case DSQ_TYPE_F32:
        memcpy(out, (const float *)base + r * cols, cols * sizeof(float));
        break;
    case DSQ_TYPE_BF16:
        for (uint64_t k = 0; k < cols; k++)
            out[k] = dsq_bf16_to_f32(((const uint16_t *)base)[r * cols + k]);
        break;
    case DSQ_TYPE_F16:
        for (uint64_t k = 0; k < cols; k++)
            out[k] = dsq_f16_to_f32(((const uint16_t *)base)[r * cols + k]);
        break;
    case DSQ_TYPE_Q8: {
        const int8_t *q = (const int8_t *)base + r * cols;
        const uint16_t *d = dsq_q8_scales(base, rows, cols) + r * (cols / group);
        for (uint64_t k = 0; k < cols; k++)
            out[k] = dsq_f16_to_f32(d[k / group]) * (float)q[k];
        break;
    }
    case DSQ_TYPE_Q4: {
        const uint8_t *q = (const uint8_t *)base + r * cols / 2;
        const uint16_t *dm = dsq_q4_scales(base, rows, cols) + 2 * r * (cols / group);
        for (uint64_t k = 0; k < cols; k++) {
            int v = (k & 1) ? q[k / 2] >> 4 : q[k / 2] & 15;
            const uint16_t *g = dm + 2 * (k / group);
            out[k] = dsq_f16_to_f32(g[0]) * (float)v + dsq_f16_to_f32(g[1]);
        }
        break;
    }
    case DSQ_TYPE_Q6:
        for (uint64_t k = 0; k < cols; k++)
            out[k] = dsq_q6_get(base, rows, cols, group, r, k);
        break;
    default:
        memset(out, 0, cols * sizeof(float)); /* unreachable: the reader refuses unknown types */
    }
}
