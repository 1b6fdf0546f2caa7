/* Packing a planar q8/q6/q4 tensor into the CPU's row-interleaved layout (quant/qpack.h), and
 * that layout's element getter. */
#include "qpack.h"

#include <string.h>

#include "float16.h"
#include "q4.h"
#include "q6.h"
#include "q8.h"
#include "types.h"

bool dsq_qpack_fits(uint32_t type, uint64_t rows, uint64_t cols, uint32_t group)
{
    return (type == DSQ_TYPE_Q8 || type == DSQ_TYPE_Q4 || type == DSQ_TYPE_Q6) && rows > 0 &&
           rows % DSQ_QPACK_ROWS == 0 && group > 0 && group % 8 == 0 && cols % group == 0;
}

uint64_t dsq_qpack_bytes(uint32_t type, uint64_t rows, uint64_t cols, uint32_t group)
{
    return type == DSQ_TYPE_Q8   ? dsq_q8_bytes(rows, cols, group)
           : type == DSQ_TYPE_Q6 ? dsq_q6_bytes(rows, cols, group)
                                 : dsq_q4_bytes(rows, cols, group);
}

/* Bytes of codes in one packed block; the scale plane starts after rows / 16 of them. */
static uint64_t block_code_bytes(uint32_t type, uint64_t cols)
{
    return type == DSQ_TYPE_Q8   ? DSQ_QPACK_ROWS * cols
           : type == DSQ_TYPE_Q6 ? DSQ_QPACK_ROWS * cols * 3 / 4
                                 : DSQ_QPACK_ROWS * cols / 2;
}

void dsq_qpack_block(uint32_t type, const void *planar, uint64_t rows, uint64_t cols,
                     uint32_t group, uint64_t b, void *packed)
{
    const uint64_t ng = cols / group, r0 = b * DSQ_QPACK_ROWS;
    uint8_t *codes = (uint8_t *)packed + b * block_code_bytes(type, cols);
    uint16_t *scales = (uint16_t *)(void *)((uint8_t *)packed +
                                            rows / DSQ_QPACK_ROWS * block_code_bytes(type, cols));
    if (type == DSQ_TYPE_Q8) {
        const uint8_t *q = planar;
        const uint16_t *d = dsq_q8_scales(planar, rows, cols);
        for (uint64_t c = 0; c < cols / 4; c++)
            for (int r = 0; r < DSQ_QPACK_ROWS; r++) {
                uint32_t v;
                memcpy(&v, q + (r0 + (uint64_t)r) * cols + 4 * c, 4);
                v ^= 0x80808080u; /* each byte + 128 */
                memcpy(codes + 64 * c + 4 * r, &v, 4);
            }
        for (uint64_t g = 0; g < ng; g++)
            for (int r = 0; r < DSQ_QPACK_ROWS; r++)
                scales[(b * ng + g) * DSQ_QPACK_ROWS + (uint64_t)r] =
                    d[(r0 + (uint64_t)r) * ng + g];
    } else if (type == DSQ_TYPE_Q6) {
        const uint16_t *d = dsq_q6_scales(planar, rows, cols);
        const uint8_t *top = dsq_q6_high(planar, rows, cols);
        for (uint64_t run = 0; run < cols / 32; run++) { /* four chunks per run of 32 */
            uint8_t *o = codes + 96 * 4 * run;
            memset(o, 0, 96 * 4);
            for (int r = 0; r < DSQ_QPACK_ROWS; r++) {
                const uint64_t row = r0 + (uint64_t)r;
                const uint8_t *lo = (const uint8_t *)planar + row * cols / 2 + 16 * run;
                const uint8_t *hi = top + row * cols / 4 + 8 * run;
                uint8_t u[32];
                for (int j = 0; j < 32; j++) /* quant/q6.h's order of the top bits */
                    u[j] = (uint8_t)(((j & 1) ? lo[j / 2] >> 4 : lo[j / 2] & 15) |
                                     (hi[j / 2 % 8] >> (2 * ((j & 1) * 2 + j / 16)) & 3) << 4);
                for (int c = 0; c < 4; c++)
                    for (int j = 0; j < 4; j++) {
                        const int u0 = u[8 * c + j], u4 = u[8 * c + 4 + j];
                        uint8_t *chunk = o + 96 * c;
                        chunk[4 * r + j] = (uint8_t)((u0 & 15) | (u4 & 15) << 4);
                        /* top bits: rows 0-7 in pairs 0 and 1, rows 8-15 in pairs 2 and 3 */
                        chunk[64 + 4 * (r % 8) + j] |=
                            (uint8_t)((u0 >> 4 | (u4 >> 4) << 2) << (r < 8 ? 0 : 4));
                    }
            }
        }
        for (uint64_t g = 0; g < ng; g++)
            for (int r = 0; r < DSQ_QPACK_ROWS; r++)
                scales[(b * ng + g) * DSQ_QPACK_ROWS + (uint64_t)r] =
                    d[(r0 + (uint64_t)r) * ng + g];
    } else {
        const uint8_t *q = planar;
        const uint16_t *dm = dsq_q4_scales(planar, rows, cols);
        for (uint64_t c = 0; c < cols / 8; c++)
            for (int r = 0; r < DSQ_QPACK_ROWS; r++) {
                /* planar bytes hold elements (2j, 2j + 1); packed byte j holds (j, j + 4) */
                const uint8_t *s = q + (r0 + (uint64_t)r) * cols / 2 + 4 * c;
                uint8_t *o = codes + 64 * c + 4 * r;
                o[0] = (uint8_t)((s[0] & 15) | (s[2] & 15) << 4);
                o[1] = (uint8_t)((s[0] >> 4) | (s[2] & 0xf0));
                o[2] = (uint8_t)((s[1] & 15) | (s[3] & 15) << 4);
                o[3] = (uint8_t)((s[1] >> 4) | (s[3] & 0xf0));
            }
        for (uint64_t g = 0; g < ng; g++)
            for (int r = 0; r < DSQ_QPACK_ROWS; r++) {
                const uint16_t *p = dm + 2 * ((r0 + (uint64_t)r) * ng + g);
                uint16_t *o = scales + (b * ng + g) * 2 * DSQ_QPACK_ROWS + (uint64_t)r;
                o[0] = p[0];
                o[DSQ_QPACK_ROWS] = p[1];
            }
    }
}

float dsq_qpack_get(uint32_t type, const void *packed, uint64_t rows, uint64_t cols,
                    uint32_t group, uint64_t r, uint64_t k)
{
    const uint64_t ng = cols / group, b = r / DSQ_QPACK_ROWS, i = r % DSQ_QPACK_ROWS;
    const uint8_t *codes = (const uint8_t *)packed + b * block_code_bytes(type, cols);
    const uint16_t *scales =
        (const uint16_t *)(const void *)((const uint8_t *)packed +
                                         rows / DSQ_QPACK_ROWS * block_code_bytes(type, cols));
    if (type == DSQ_TYPE_Q8) {
        const int q = (int)codes[64 * (k / 4) + 4 * i + k % 4] - 128;
        return dsq_f16_to_f32(scales[(b * ng + k / group) * DSQ_QPACK_ROWS + i]) * (float)q;
    }
    if (type == DSQ_TYPE_Q6) {
        const uint8_t *chunk = codes + 96 * (k / 8);
        const uint8_t byte = chunk[4 * i + k % 4], top = chunk[64 + 4 * (i % 8) + k % 4];
        const int shift = (i < 8 ? 0 : 4) + (k % 8 < 4 ? 0 : 2);
        const int u = (k % 8 < 4 ? byte & 15 : byte >> 4) | (top >> shift & 3) << 4;
        return dsq_f16_to_f32(scales[(b * ng + k / group) * DSQ_QPACK_ROWS + i]) * (float)(u - 32);
    }
    const uint8_t byte = codes[64 * (k / 8) + 4 * i + k % 4];
    const int q = k % 8 < 4 ? byte & 15 : byte >> 4;
    const uint16_t *s = scales + (b * ng + k / group) * 2 * DSQ_QPACK_ROWS + i;
    return dsq_f16_to_f32(s[0]) * (float)q + dsq_f16_to_f32(s[DSQ_QPACK_ROWS]);
}
