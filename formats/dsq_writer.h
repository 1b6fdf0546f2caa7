/* Writes a .dsq file. Tensors are declared first (in file order), which fixes every offset; data
 * is then written tensor by tensor, each tensor's bytes in order (tensors may interleave); the
 * index, metadata and header come last. Nothing appears under the final name until finish. */
#ifndef DSQ_WRITER_H
#define DSQ_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "dsq_format.h"
#include "error.h"

typedef struct dsq_writer dsq_writer;

int dsq_writer_create(dsq_writer **out, const char *path, dsq_error *err);

/* Declares the next tensor in file order; *index receives its position. */
int dsq_writer_add(dsq_writer *w, const char *name, uint32_t type, uint32_t ndim,
                   const uint64_t *shape, uint32_t group_size, uint32_t *index, dsq_error *err);

/* Fixes the layout and reserves disk space for the data (failing early on a full disk). */
int dsq_writer_begin_data(dsq_writer *w, dsq_error *err);

/* Bytes of data the file will hold (valid after begin_data). */
uint64_t dsq_writer_data_bytes(const dsq_writer *w);

/* Declared info of tensor index (offset valid after begin_data). */
const dsq_tensor_info *dsq_writer_tensor(const dsq_writer *w, uint32_t index);

/* Appends len bytes to tensor index. */
int dsq_writer_write(dsq_writer *w, uint32_t index, const void *buf, size_t len, dsq_error *err);

/* Checks every tensor is complete, writes index, metadata (JSON text, zstd-compressed when that
 * is smaller) and header, then makes the file durable under its final name. */
int dsq_writer_finish(dsq_writer *w, const char *meta_json, size_t meta_len, dsq_error *err);

/* Frees the writer; removes the temporary file unless finish succeeded. */
void dsq_writer_free(dsq_writer *w);

#endif
