/* Opens a .dsq file read-only: maps it, checks the header checksum and every offset, size, type
 * and shape in the index against the file before anything else may use them. */
#ifndef DSQ_READER_H
#define DSQ_READER_H

#include <jansson.h>
#include <stdint.h>

#include "dsq_format.h"
#include "error.h"

typedef struct {
    char *path;
    const uint8_t *map; /* the whole file */
    uint64_t size;
    uint32_t version_major, version_minor;
    uint32_t meta_codec;
    uint64_t meta_stored_size;
    json_t *meta;          /* parsed metadata object */
    dsq_tensor_info *tensors; /* in file order */
    uint32_t n_tensors;
    uint32_t *by_name; /* tensor indices sorted by name, for lookup */
    char *names;       /* storage for the tensors' names */
} dsq_file;

int dsq_file_open(dsq_file *f, const char *path, dsq_error *err);
void dsq_file_close(dsq_file *f);

/* Tensor by name, or NULL. */
const dsq_tensor_info *dsq_file_find(const dsq_file *f, const char *name);

/* Pointer to a tensor's stored bytes inside the mapping. */
static inline const void *dsq_file_data(const dsq_file *f, const dsq_tensor_info *t)
{
    return f->map + t->offset;
}

/* Recomputes a tensor's checksum; fails naming the tensor on mismatch. */
int dsq_file_verify_tensor(const dsq_file *f, const dsq_tensor_info *t, dsq_error *err);

#endif
