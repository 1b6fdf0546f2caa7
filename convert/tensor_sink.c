/* Row-parallel quantization into the planar layouts, streamed to the writer. */
#include "tensor_sink.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "types.h"

int tensor_sink_begin(tensor_sink *s, dsq_writer *w, uint32_t index, uint64_t max_rows,
                      dsq_error *err)
{
    memset(s, 0, sizeof *s);
    s->w = w;
    s->index = index;
    s->info = dsq_writer_tensor(w, index);
    s->rows = s->info->shape[0];
    s->cols = s->info->shape[1];
    const uint64_t groups = s->cols / s->info->group_size;
    if (s->info->type == DSQ_TYPE_Q8) {
        s->code_row_bytes = s->cols;
        s->scale_row_entries = groups;
    } else if (s->info->type == DSQ_TYPE_Q6) { /* a row's nibbles, then its top bits */
        s->code_row_bytes = s->cols / 2 + s->cols / 4;
        s->scale_row_entries = groups;
        s->high = malloc(s->rows * (s->cols / 4));
        if (!s->high) {
            tensor_sink_free(s);
            return dsq_fail(err, DSQ_ERESOURCE, "out of memory quantizing %s", s->info->name);
        }
    } else {
        s->code_row_bytes = s->cols / 2;
        s->scale_row_entries = 2 * groups;
    }
    s->codes_cap = max_rows < s->rows ? max_rows : s->rows;
    s->codes = malloc(s->codes_cap * s->code_row_bytes);
    s->scales = malloc(s->rows * s->scale_row_entries * sizeof(uint16_t));
    if (!s->codes || !s->scales) {
        tensor_sink_free(s);
        return dsq_fail(err, DSQ_ERESOURCE, "out of memory quantizing %s", s->info->name);
    }
    return DSQ_OK;
}

int tensor_sink_rows(tensor_sink *s, const float *rows, uint64_t n_rows, dsq_error *err)
{
    if (n_rows > s->codes_cap || s->rows_done + n_rows > s->rows)
        return dsq_fail(err, DSQ_EUSAGE, "%s: %llu rows exceed the tensor or the chunk",
                        s->info->name, (unsigned long long)n_rows);
    long bad_row = -1;
    for (uint64_t i = 0; i < n_rows * s->cols && bad_row < 0; i++)
        if (!isfinite(rows[i]))
            bad_row = (long)(s->rows_done + i / s->cols);
    if (bad_row >= 0)
        return dsq_fail(err, DSQ_EINPUT, "tensor %s: row %ld holds a NaN or infinity",
                        s->info->name, bad_row);
    quant_stats total = s->stats;
#pragma omp parallel
    {
        quant_stats mine = {0};
#pragma omp for schedule(static)
        for (uint64_t r = 0; r < n_rows; r++)
            dsq_quantize_row(s->info->type, rows + r * s->cols, s->cols, s->info->group_size,
                             NULL, s->codes + r * s->code_row_bytes,
                             s->scales + (s->rows_done + r) * s->scale_row_entries, &mine);
#pragma omp critical
        quant_stats_merge(&total, &mine);
    }
    s->stats = total;
    size_t stream_row_bytes = s->code_row_bytes;
    if (s->high) { /* keep each row's top bits, and close up its nibbles for the file */
        const size_t nib = s->cols / 2, top = s->cols / 4;
        for (uint64_t r = 0; r < n_rows; r++) {
            memcpy(s->high + (s->rows_done + r) * top, s->codes + r * (nib + top) + nib, top);
            memmove(s->codes + r * nib, s->codes + r * (nib + top), nib);
        }
        stream_row_bytes = nib;
    }
    s->rows_done += n_rows;
    return dsq_writer_write(s->w, s->index, s->codes, n_rows * stream_row_bytes, err);
}

int tensor_sink_end(tensor_sink *s, dsq_error *err)
{
    int rc = s->rows_done == s->rows
                 ? DSQ_OK
                 : dsq_fail(err, DSQ_EUSAGE, "%s: only %llu of %llu rows written", s->info->name,
                            (unsigned long long)s->rows_done, (unsigned long long)s->rows);
    if (rc == DSQ_OK && s->high)
        rc = dsq_writer_write(s->w, s->index, s->high, s->rows * (s->cols / 4), err);
    if (rc == DSQ_OK)
        rc = dsq_writer_write(s->w, s->index, s->scales,
                              s->rows * s->scale_row_entries * sizeof(uint16_t), err);
    tensor_sink_free(s);
    return rc;
}

void tensor_sink_free(tensor_sink *s)
{
    free(s->codes);
    free(s->scales);
    free(s->high);
    s->codes = NULL;
    s->scales = NULL;
    s->high = NULL;
}
