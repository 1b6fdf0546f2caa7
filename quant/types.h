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
    DSQ_TYPE_Q8 = 16, /* quant/q8.h */
    DSQ_TYPE_Q4 = 17, /* quant/q4.h */
    DSQ_TYPE_Q6 = 18, /* quant/q6.h; since format 1.1 */
    DSQ_TYPE_COUNT
};

typedef struct {
    const char *name; /* as written in metadata and printed by `dsq info` */
    uint32_t elem_bytes; /* plain floats: bytes per element; 0 for quantized types */
    bool quantized;   /* grouped along the row; size from group_size (quant/q8.h, q4.h, q6.h) */
} dsq_type_traits;

/* Traits of a type id, or NULL if the id is unknown. */
const dsq_type_traits *dsq_type_info(uint32_t type);

/* Type id for a name ("bf16"), or -1. */
int dsq_type_from_name(const char *name);

/* Bytes taken by `rows` rows of `cols` elements with the given group size (0 for plain
 * floats; for quantized types a multiple of 32 that divides cols). False if the group does not
 * fit the type and shape, or the size overflows. */
bool dsq_type_nbytes(uint32_t type, uint64_t rows, uint64_t cols, uint32_t group,
                     uint64_t *bytes);

/* Why a group size cannot be used for a row of cols elements, or NULL if it can. */
const char *dsq_group_problem(uint64_t cols, uint32_t group);

#endif
