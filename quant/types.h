/* Tensor storage types of the .dsq format: ids (stable on disk), names and sizes. New types get
 * new ids; a reader that meets an id it does not know refuses the file naming the tensor. */
#ifndef DSQ_TYPES_H
#define DSQ_TYPES_H

#include <stdbool.h>
#include <stdint.h>

enum dsq_type {
    DSQ_TYPE_F32 = 0,
    DSQ_TYPE_F16 = 1,
    DSQ_TYPE_BF16 = 2,
    DSQ_TYPE_COUNT
};

typedef struct {
    const char *name;     /* as written in metadata and printed by `dsq info` */
    uint32_t block_elems; /* elements per block along the row (1 for plain floats) */
    uint32_t block_bytes; /* bytes per block */
    bool quantized;
} dsq_type_traits;

/* Traits of a type id, or NULL if the id is unknown. */
const dsq_type_traits *dsq_type_info(uint32_t type);

/* Type id for a name ("bf16"), or -1. */
int dsq_type_from_name(const char *name);

/* Bytes taken by `rows` rows of `cols` elements; false if cols is not a whole number of blocks
 * or the size overflows. */
bool dsq_type_nbytes(uint32_t type, uint64_t rows, uint64_t cols, uint64_t *bytes);

#endif
