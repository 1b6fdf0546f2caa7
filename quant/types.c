/* The type-traits table. */
#include "types.h"

#include <string.h>

#include "q4.h"
#include "q6.h"
#include "q8.h"

static const dsq_type_traits type_traits[DSQ_TYPE_COUNT] = {
    [DSQ_TYPE_F32] = {.name = "f32", .elem_bytes = 4},
    [DSQ_TYPE_F16] = {.name = "f16", .elem_bytes = 2},
    [DSQ_TYPE_BF16] = {.name = "bf16", .elem_bytes = 2},
    [DSQ_TYPE_Q8] = {.name = "q8", .quantized = true},
    [DSQ_TYPE_Q4] = {.name = "q4", .quantized = true},
    [DSQ_TYPE_Q6] = {.name = "q6", .quantized = true},
};

const dsq_type_traits *dsq_type_info(uint32_t type)
{
    return type < DSQ_TYPE_COUNT && type_traits[type].name ? &type_traits[type] : NULL;
}

int dsq_type_from_name(const char *name)
{
    for (int i = 0; i < DSQ_TYPE_COUNT; i++)
        if (type_traits[i].name && strcmp(type_traits[i].name, name) == 0)
            return i;
    return -1;
}

const char *dsq_group_problem(uint64_t cols, uint32_t group)
{
    if (group == 0 || group % 32 != 0)
        return "the group size must be a positive multiple of 32";
    if (cols % group != 0)
        return "the group size does not divide the row length";
    return NULL;
}

bool dsq_type_nbytes(uint32_t type, uint64_t rows, uint64_t cols, uint32_t group,
                     uint64_t *bytes)
{
    const dsq_type_traits *t = dsq_type_info(type);
    if (!t || (t->quantized ? dsq_group_problem(cols, group) != NULL : group != 0))
        return false;
    /* bound the operands so the size formulas below cannot overflow */
    if (rows > (1ull << 40) || cols > (1ull << 40) || (rows && cols > UINT64_MAX / 8 / rows))
        return false;
    if (type == DSQ_TYPE_Q8)
        *bytes = dsq_q8_bytes(rows, cols, group);
    else if (type == DSQ_TYPE_Q4)
        *bytes = dsq_q4_bytes(rows, cols, group);
    else if (type == DSQ_TYPE_Q6)
        *bytes = dsq_q6_bytes(rows, cols, group);
    else
        *bytes = rows * cols * t->elem_bytes;
    return true;
}
