/* Reference quantizers: one row of f32 values to its q8, q6 or q4 codes and group scales, with a
 * per-group search for the scale (and minimum) that minimizes squared error. Deterministic:
 * the same input gives the same bytes on every machine, so files are reproducible. */
#ifndef DSQ_QUANTIZE_H
#define DSQ_QUANTIZE_H

#include <stdint.h>

typedef struct {
    double sum_sq_err; /* sum over quantized elements of (x - dequant(x))^2 */
    double sum_sq;     /* sum of x^2, for relative error */
    double max_abs_err;
    uint64_t count;
} quant_stats;

/* Adds the errors of `from` into `into`. */
void quant_stats_merge(quant_stats *into, const quant_stats *from);

/* Quantizes x[cols] (one row) to `type` (DSQ_TYPE_Q8, DSQ_TYPE_Q4 or DSQ_TYPE_Q6) with group
 * size `group`. codes receives the row's part of the q plane (cols bytes for q8, cols / 2 for
 * q4; for q6 its part of the nibble plane, cols / 2 bytes, then of the top-bit plane, cols / 4);
 * scales the row's part of the scale plane (cols / group f16 for q8 and q6, 2 * cols / group for
 * q4).
 * importance[cols] weights each column's squared error in the search (NULL: uniform), the
 * hook for activation-aware calibration. stats (may be NULL) accumulates the error. */
void dsq_quantize_row(uint32_t type, const float *x, uint64_t cols, uint32_t group,
                      const float *importance, void *codes, uint16_t *scales, quant_stats *stats);

/* The plain choice the search must never lose to: q8 scale = absmax / 127; q6 scale = the
 * element of largest magnitude / -32; q4 d = (max - min) / 15, m = min. Same outputs as
 * dsq_quantize_row, for tests and comparisons. */
void dsq_quantize_row_absmax(uint32_t type, const float *x, uint64_t cols, uint32_t group,
                             void *codes, uint16_t *scales, quant_stats *stats);

#endif
