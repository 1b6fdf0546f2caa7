/* The entry point shared by the packed int8 kernels (quant/qpack_avx512vnni.c,
 * quant/qpack_x86_256.h): finds block b's codes and scales and runs the includer's q8_tile,
 * q4_tile or (where it defines QPACK_HAS_Q6) q6_tile for nt tokens. The includer defines TARGET,
 * QPACK_NAME and the tiles first. */
#define CASES(fn, ...)                                                                             \
    case 8: fn(__VA_ARGS__, 8); break;                                                             \
    case 7: fn(__VA_ARGS__, 7); break;                                                             \
    case 6: fn(__VA_ARGS__, 6); break;                                                             \
    case 5: fn(__VA_ARGS__, 5); break;                                                             \
    case 4: fn(__VA_ARGS__, 4); break;                                                             \
    case 3: fn(__VA_ARGS__, 3); break;                                                             \
    case 2: fn(__VA_ARGS__, 2); break;                                                             \
    default: fn(__VA_ARGS__, 1); break;

TARGET void QPACK_NAME(uint32_t type, const void *packed, uint64_t rows, uint64_t cols,
                       uint32_t group, uint64_t b, const dsq_qx *x, int nt, float *out,
                       size_t ostride)
{
    const uint64_t ng = cols / group, blocks = rows / DSQ_QPACK_ROWS;
    float *o = out + b * DSQ_QPACK_ROWS;
    if (type == DSQ_TYPE_Q8) {
        const uint8_t *codes = (const uint8_t *)packed + b * DSQ_QPACK_ROWS * cols;
        const uint16_t *scales = (const uint16_t *)(const void *)((const uint8_t *)packed +
                                                                  blocks * DSQ_QPACK_ROWS * cols) +
                                 b * ng * DSQ_QPACK_ROWS;
        switch (nt) { CASES(q8_tile, codes, scales, cols, group, x, o, ostride) }
#ifdef QPACK_HAS_Q6
    } else if (type == DSQ_TYPE_Q6) {
        const uint8_t *codes = (const uint8_t *)packed + b * DSQ_QPACK_ROWS * cols * 3 / 4;
        const uint16_t *scales =
            (const uint16_t *)(const void *)((const uint8_t *)packed +
                                             blocks * DSQ_QPACK_ROWS * cols * 3 / 4) +
            b * ng * DSQ_QPACK_ROWS;
        switch (nt) { CASES(q6_tile, codes, scales, cols, group, x, o, ostride) }
#endif
    } else { /* q4 (dsq_qpack_fits keeps q6 from paths without its tile) */
        const uint8_t *codes = (const uint8_t *)packed + b * DSQ_QPACK_ROWS * cols / 2;
        const uint16_t *scales =
            (const uint16_t *)(const void *)((const uint8_t *)packed +
                                             blocks * DSQ_QPACK_ROWS * cols / 2) +
            b * ng * 2 * DSQ_QPACK_ROWS;
        switch (nt) { CASES(q4_tile, codes, scales, cols, group, x, o, ostride) }
    }
}
