/* The CPU's row-interleaved copy of a q8, q6 or q4 tensor, made once at load for the packed
 * kernels: AVX-512 VNNI (quant/qpack_avx512vnni.c), AVX-VNNI and AVX2 (quant/qpack_x86_256.h).
 * With the file's planar rows a vector dot product sums one row's elements across its lanes, so
 * every group of every row and token costs a horizontal fold into fp32; here each 64-byte chunk
 * holds 16 rows, each multiply takes one broadcast 4-byte slice of the activations, and lane r
 * accumulates row r: a group's fp32 work is one convert and one fma per 16 rows (per 8 on
 * 256-bit registers, which take a chunk as its two 32-byte halves, rows 0-7 and 8-15), and no
 * horizontal sums remain.
 *
 * Layout of an (N rows, K cols) tensor in groups of G (N a multiple of 16, G of 8):
 *   blocks of 16 rows one after another, block b = rows 16b..16b+15, each 16 K bytes (q8),
 *   8 K bytes (q4) or 12 K bytes (q6), in chunks in k order:
 *     q8: 64-byte chunk c covers k = 4c..4c+3: byte 4r + j = q[16b + r][4c + j] + 128, as u8;
 *     q4: 64-byte chunk c covers k = 8c..8c+7: byte 4r + j = q[16b + r][8c + j] (low nibble)
 *                                                         | q[16b + r][8c + 4 + j] << 4;
 *     q6: 96-byte chunk c covers k = 8c..8c+7: bytes 0-63 hold the low four bits of u as q4's
 *         chunk holds its codes; in byte 64 + 4r + j (r < 8) bit pairs 0-3 hold the top two
 *         bits of u[16b + r][8c + j], u[16b + r][8c + 4 + j], u[16b + r + 8][8c + j] and
 *         u[16b + r + 8][8c + 4 + j]: the pairs a 256-bit half of rows 0-7 or 8-15 needs, one
 *         shift and mask away from bits 4-5;
 *   then the scales, by block then group: the 16 rows' f16 d (q8, q6), or 16 d then 16 m (q4).
 * Bytes: the planar tensor's (dsq_q8_bytes, dsq_q4_bytes, dsq_q6_bytes).
 *
 * The dot product is quant/qdot.h's definition, with the activations rounded in the plain
 * element order (dsq_qx_quantize with DSQ_TYPE_Q8, for q4 weights too). For q8 the VNNI kernels
 * take 128 times the group's code sum off the integer sum of w + 128; AVX2, whose maddubs would
 * saturate on w + 128, multiplies |w| by x with w's sign. Integer sums are exact; only the fp32
 * order differs from dsq_qdot_tile_ref, within tests/test_qdot.c's bound. q6 sums u * x (u in
 * [0, 63]: with AVX2 two maddubs pairs add to at most 4 * 63 * 127 = 32004 in int16) and takes
 * 32 times the group's code sum off. */
#ifndef DSQ_QPACK_H
#define DSQ_QPACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qdot.h"

/* Rows of one block, and tokens one dsq_qpack_tile call takes at most. */
#define DSQ_QPACK_ROWS 16
#define DSQ_QPACK_MAX_TOKENS 8

/* Whether a (rows, cols) tensor of this type and group has a packed form (every packed path
 * runs q8, q6 and q4). */
bool dsq_qpack_fits(uint32_t type, uint64_t rows, uint64_t cols, uint32_t group);

/* Bytes of the packed form (the same as the planar tensor's). */
uint64_t dsq_qpack_bytes(uint32_t type, uint64_t rows, uint64_t cols, uint32_t group);

/* Writes block b of the packed form of the planar tensor at planar into packed (the whole
 * packed tensor's buffer); blocks are independent, so callers may pack them in parallel. */
void dsq_qpack_block(uint32_t type, const void *planar, uint64_t rows, uint64_t cols,
                     uint32_t group, uint64_t b, void *packed);

/* Element (r, k) of a packed tensor, as f32: the layout's definition, for tests. */
float dsq_qpack_get(uint32_t type, const void *packed, uint64_t rows, uint64_t cols,
                    uint32_t group, uint64_t r, uint64_t k);

/* The packed paths are named by quant/qdot.h's paths: DSQ_QDOT_AVX512VNNI (AVX-512 F, BW, VL
 * and VNNI), DSQ_QDOT_AVXVNNI and DSQ_QDOT_AVX2, each with FMA and F16C; DSQ_QDOT_SCALAR has no
 * packed kernel. Whether this CPU runs packed path p (asked once per path: CPUID traps to the
 * hypervisor in a virtual machine). */
bool dsq_qpack_have_path(dsq_qdot_path p);

/* Whether this CPU runs dsq_qpack_tile: some packed path. */
bool dsq_qpack_have(void);

/* The packed path dsq_qpack_tile uses now: the forced one, else the fastest this CPU runs
 * (DSQ_QDOT_SCALAR when none). */
dsq_qdot_path dsq_qpack_current(void);

/* Makes dsq_qpack_tile use packed path p (which this CPU must run), none (DSQ_QDOT_SCALAR:
 * dsq_qpack_have() is then false), or the fastest again (-1); tests and benchmarks. */
void dsq_qpack_force(int p);

/* Forces the int8 kernels by name, for benchmarks (the DSQ_INT8_KERNELS environment variable):
 * "avx512vnni", "avxvnni" or "avx2" forces that planar path and the packed one of the same ISA,
 * "<name>-planar" the planar path alone with no packed kernels, "scalar" the scalar reference.
 * False, forcing nothing, for any other name or a path this CPU does not run. */
bool dsq_int8_kernels_select(const char *name);

/* Whether the int8 matmuls take the packed kernels: a packed path runs and it is the ISA of the
 * planar path (dsq_qdot_current()) it replaces. Unforced, the fastest packed path is always the
 * fastest planar path's ISA; forcing a planar path with dsq_qdot_force, or a packed one with
 * dsq_qpack_force, alone keeps the planar kernels. */
bool dsq_qpack_replaces_qdot(void);

/* out[t * ostride + 16 b + i] = row 16 b + i dotted with the rounded row x[t], for i < 16 and
 * t < nt (1..DSQ_QPACK_MAX_TOKENS), on dsq_qpack_current(); call only when dsq_qpack_have(). */
void dsq_qpack_tile(uint32_t type, const void *packed, uint64_t rows, uint64_t cols,
                    uint32_t group, uint64_t b, const dsq_qx *x, int nt, float *out,
                    size_t ostride);

/* The AMX kernel (quant/qpack_amx.c), for prompts: the same products as the AVX-512 VNNI
 * kernel, bit for bit. Whether this CPU and OS run it (quant/amx.h), and whether a tensor takes
 * it (q8 or q4, groups a multiple of 32). */
#define DSQ_QPACK_AMX_MAX_TOKENS 32
/* Fewer tokens than this run faster on the VNNI kernel (one thread, 2048 x 1408 q4, group 64:
 * AMX 0.74x VNNI at 4 tokens, 0.94x at 8, 1.2x at 12, 1.4x at 16 and more). */
#define DSQ_QPACK_AMX_MIN_TOKENS 12
bool dsq_qpack_amx_have(void);
bool dsq_qpack_amx_fits(uint32_t type, uint64_t rows, uint64_t cols, uint32_t group);

/* out[t * ostride + 16 (b + j) + i] = row 16 (b + j) + i dotted with the rounded row x[t], for
 * i < 16, j < nb (1 or 2) and t < nt (1..DSQ_QPACK_AMX_MAX_TOKENS); call only when
 * dsq_qpack_amx_have() and dsq_qpack_amx_fits(). */
void dsq_qpack_amx(uint32_t type, const void *packed, uint64_t rows, uint64_t cols, uint32_t group,
                   uint64_t b, int nb, const dsq_qx *x, int nt, float *out, size_t ostride);

#if defined(__x86_64__)
/* The kernel of each packed path; call only when dsq_qpack_have_path says it runs. */
void dsq_qpack_tile_avx512vnni(uint32_t type, const void *packed, uint64_t rows, uint64_t cols,
                               uint32_t group, uint64_t b, const dsq_qx *x, int nt, float *out,
                               size_t ostride);
void dsq_qpack_tile_avxvnni(uint32_t type, const void *packed, uint64_t rows, uint64_t cols,
                            uint32_t group, uint64_t b, const dsq_qx *x, int nt, float *out,
                            size_t ostride);
void dsq_qpack_tile_avx2(uint32_t type, const void *packed, uint64_t rows, uint64_t cols,
                         uint32_t group, uint64_t b, const dsq_qx *x, int nt, float *out,
                         size_t ostride);
#endif

#endif
