/* Whether this CPU and OS run the AMX tile kernels (quant/bf16pack_amx.c, quant/qpack_amx.c),
 * and the tile configuration they load. Linux keeps the 8 KB tile state from a process until
 * it asks for it (arch_prctl ARCH_REQ_XCOMP_PERM), once for all its threads; each question is
 * asked once (CPUID traps to the hypervisor in a virtual machine). DSQ_AMX=0 in the
 * environment turns both kernels off, for benchmarks. */
#ifndef DSQ_AMX_H
#define DSQ_AMX_H

#include <stdbool.h>
#include <stdint.h>

/* AMX-TILE and AMX-BF16, AVX-512 F and AVX512-BF16 (the rounding of activations). */
bool dsq_amx_have_bf16(void);

/* AMX-TILE and AMX-INT8, and the AVX-512 VNNI packed path's features (the per-group fp32
 * folding of the integer tiles). */
bool dsq_amx_have_int8(void);

/* LDTILECFG's 64-byte operand, palette 1: tile i has rows[i] rows of colsb[i] bytes. */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} dsq_amx_config;

#endif
