/* The type-traits table. */
#include "types.h"

#include <string.h>

static const dsq_type_traits type_traits[DSQ_TYPE_COUNT] = {
    [DSQ_TYPE_F32] = {.name = "f32", .block_elems = 1, .block_bytes = 4},
    [DSQ_TYPE_F16] = {.name = "f16", .block_elems = 1, .block_bytes = 2},
    [DSQ_TYPE_BF16] = {.name = "bf16", .block_elems = 1, .block_bytes = 2},
};

const dsq_type_traits *dsq_type_info(uint32_t type)
{
    return type < DSQ_TYPE_COUNT ? &type_traits[type] : NULL;
}

int dsq_type_from_name(const char *name)
{
    for (int i = 0; i < DSQ_TYPE_COUNT; i++)
        if (strcmp(type_traits[i].name, name) == 0)
            return i;
    return -1;
}

bool dsq_type_nbytes(uint32_t type, uint64_t rows, uint64_t cols, uint64_t *bytes)
{
    const dsq_type_traits *t = dsq_type_info(type);
    if (!t || cols % t->block_elems != 0)
        return false;
    uint64_t row_bytes;
    if (__builtin_mul_overflow(cols / t->block_elems, (uint64_t)t->block_bytes, &row_bytes))
        return false;
    return !__builtin_mul_overflow(rows, row_bytes, bytes);
}
