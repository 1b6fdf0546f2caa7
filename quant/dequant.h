/* Reference dequantization of one row of any storage type to f32: the definition every faster
 * path (AVX2, CUDA) is tested against. */
#ifndef DSQ_DEQUANT_H
#define DSQ_DEQUANT_H

#include <stdint.h>

/* out[cols] = row r of a (rows, cols) tensor of the given type and group size at base. */
void dsq_dequant_row(uint32_t type, const void *base, uint64_t rows, uint64_t cols,
                     uint32_t group, uint64_t r, float *out);

#endif
