/* Writes one quantized tensor from rows of f32 values: codes stream to the file chunk by
 * chunk; the scale plane (1/16 to 1/8 of the codes), and q6's top-bit plane (half its nibble
 * plane), are held and written after the last row, as the planar layouts of quant/q8.h,
 * quant/q4.h and quant/q6.h place them. */
#ifndef DSQ_TENSOR_SINK_H
#define DSQ_TENSOR_SINK_H

#include "dsq_writer.h"
#include "quantize.h"

typedef struct {
    dsq_writer *w;
    uint32_t index;
    const dsq_tensor_info *info;
    uint64_t rows, cols, rows_done;
    size_t code_row_bytes, scale_row_entries;
    uint8_t *codes;    /* one chunk of rows */
    size_t codes_cap;  /* rows the codes buffer holds */
    uint16_t *scales;  /* the whole scale plane */
    uint8_t *high;     /* q6: the whole top-bit plane; NULL for the other types */
    quant_stats stats; /* error of this tensor */
} tensor_sink;

/* Starts tensor index (a q8, q6 or q4 tensor declared to the writer); max_rows is the most rows
 * one tensor_sink_rows call will pass. */
int tensor_sink_begin(tensor_sink *s, dsq_writer *w, uint32_t index, uint64_t max_rows,
                      dsq_error *err);

/* Quantizes and writes n_rows rows (n_rows x cols f32, row-major). Non-finite values are
 * refused, naming the tensor and row. */
int tensor_sink_rows(tensor_sink *s, const float *rows, uint64_t n_rows, dsq_error *err);

/* Writes the held planes once every row is in; frees the buffers (also on failure). */
int tensor_sink_end(tensor_sink *s, dsq_error *err);
void tensor_sink_free(tensor_sink *s);

#endif
