/* Integer dot products of q8/q6/q4 weight rows with an activation row rounded to int8.
 *
 * A matmul rounds each activation row once (dsq_qx_quantize) to int8 codes with one f32 scale
 * per weight group: xd_g = max |x| over the group / 127, qx = x / xd_g rounded half away from zero, in [-127, 127],
 * and the integer sum of the codes of each group (xs_g, for the q4 minimum term and q6's offset).
 * For q4 and q6 the codes of each block of B elements (B = 64 when the group is a multiple of 64,
 * else 32) are stored evens first, then odds: the order in which B / 2 bytes of nibbles unpack
 * with one and (low nibbles) and one shift (high nibbles).
 *
 * Definition (dsq_qdot_rows_ref), integer sums exact, then fp32 in group order:
 *   q8: sum over g of (d_g * xd_g) * S_g,                 S_g = sum of q * qx over the group;
 *   q6: the same with S_g = sum of (u - 32) * qx, computed as sum of u * qx - 32 * xs_g;
 *   q4: sum over g of (d_g * xd_g) * S_g + (m_g * xd_g) * xs_g.
 * Faster paths (AVX2 maddubs, AVX-VNNI and AVX-512 VNNI dpbusd) keep the integer sums exact and
 * differ only in the fp32 order; tests/test_qdot.c bounds that.
 *
 * Error against the float activation path: each rounded x differs from x by at most xd_g / 2,
 * so |int8 dot - exact dot| <= sum over g of xd_g / 2 * sum over the group of |w| (plus fp32
 * rounding), i.e. at most 1/254 of sum |w| * max|x| per group. */
#ifndef DSQ_QDOT_H
#define DSQ_QDOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "types.h"

/* The rounded form of one activation row (cols elements, groups of group). */
typedef struct {
    int8_t *q;   /* [cols] codes, q4 order for q4 and q6 weights */
    float *d;    /* [cols / group] scales */
    int32_t *s;  /* [cols / group] sums of the codes */
} dsq_qx;

/* Bytes one rounded row takes in the packed layout dsq_qx_at lays out (q, then d, then s). */
uint64_t dsq_qx_bytes(uint64_t cols, uint32_t group);

/* The rounded row stored at buf (dsq_qx_bytes(cols, group) bytes, 4-byte aligned). Inline:
 * the matmuls take it for every token of every tile. */
static inline dsq_qx dsq_qx_at(void *buf, uint64_t cols, uint32_t group)
{
    uint8_t *b = buf;
    const uint64_t ng = cols / group, qbytes = (cols + 3) / 4 * 4;
    return (dsq_qx){(int8_t *)b, (float *)(void *)(b + qbytes),
                    (int32_t *)(void *)(b + qbytes + ng * sizeof(float))};
}

/* Whether weights of this type take the activation codes in the q4 order below. */
static inline bool dsq_qx_nibble_order(uint32_t type)
{
    return type == DSQ_TYPE_Q4 || type == DSQ_TYPE_Q6;
}

/* Where element k of a row goes in the q4 order for this group size. */
static inline uint64_t dsq_qx_q4_slot(uint64_t k, uint32_t group)
{
    const uint64_t b = group % 64 ? 32 : 64;
    return (k & ~(b - 1)) + (k & 1) * (b / 2) + (k & (b - 1)) / 2;
}

/* Rounds x[cols] for a matmul with weights of the given type (DSQ_TYPE_Q8, _Q6 or _Q4), group
 * a multiple of 32. Fastest path this CPU runs (the scalar one while dsq_qdot_force picks the
 * scalar kernels); every path gives the reference's bits. */
void dsq_qx_quantize(uint32_t type, const float *x, uint64_t cols, uint32_t group, dsq_qx out);

/* The scalar reference: the definition above, computed as xd_g = amax / 127, then
 * inv = 127 / amax (0 for amax 0) and each code (int)(v < 0 ? v - 0.5f : v + 0.5f), v = x * inv;
 * the fast paths repeat exactly that fp32 arithmetic. amax must be finite and 127 / amax too
 * (amax >= about 3.8e-37), else the codes are undefined. */
void dsq_qx_quantize_ref(uint32_t type, const float *x, uint64_t cols, uint32_t group,
                         dsq_qx out);

/* Whether this CPU (and OS) runs dsq_qx_quantize_avx512 (AVX-512 F, BW and VL). */
bool dsq_qx_have_avx512(void);

/* Tokens one dsq_qdot_tile call takes at most. */
#define DSQ_QDOT_MAX_TOKENS 4

/* A tile: out[t * ostride + i] = row r0 + i of a (rows, cols) q8/q6/q4 tensor at base dotted with
 * the rounded row x[t], for i < nr (1..4) and t < nt (1..DSQ_QDOT_MAX_TOKENS); each weight load
 * serves every token of the tile (paths with fewer registers take the tokens two at a time) and
 * each activation load every row. Fastest path this CPU runs. */
void dsq_qdot_tile(uint32_t type, const void *base, uint64_t rows, uint64_t cols, uint32_t group,
                   uint64_t r0, int nr, const dsq_qx *x, int nt, float *out, size_t ostride);

/* The scalar reference: the definition above. */
void dsq_qdot_tile_ref(uint32_t type, const void *base, uint64_t rows, uint64_t cols,
                       uint32_t group, uint64_t r0, int nr, const dsq_qx *x, int nt, float *out,
                       size_t ostride);

/* One token: out[i] for i < nr, as dsq_qdot_tile with nt = 1. */
void dsq_qdot_rows(uint32_t type, const void *base, uint64_t rows, uint64_t cols, uint32_t group,
                   uint64_t r0, int nr, dsq_qx x, float *out);

/* The paths, fastest first; dsq_qdot_tile uses the first this CPU runs. */
typedef enum { DSQ_QDOT_AVX512VNNI, DSQ_QDOT_AVXVNNI, DSQ_QDOT_AVX2, DSQ_QDOT_SCALAR,
               DSQ_QDOT_N_PATHS } dsq_qdot_path;

const char *dsq_qdot_path_name(dsq_qdot_path p);
bool dsq_qdot_have(dsq_qdot_path p);

/* Makes dsq_qdot_tile use path p (which this CPU must run), or the fastest again (-1); tests. */
void dsq_qdot_force(int p);

/* The path dsq_qdot_tile uses now. */
dsq_qdot_path dsq_qdot_current(void);

#if defined(__x86_64__)
/* The same kernel built for each ISA (quant/qdot_x86.h); call only when dsq_qdot_have. */
void dsq_qdot_tile_avx2(uint32_t type, const void *base, uint64_t rows, uint64_t cols,
                        uint32_t group, uint64_t r0, int nr, const dsq_qx *x, int nt,
                        float *out, size_t ostride);
void dsq_qdot_tile_avxvnni(uint32_t type, const void *base, uint64_t rows, uint64_t cols,
                        uint32_t group, uint64_t r0, int nr, const dsq_qx *x, int nt,
                        float *out, size_t ostride);
void dsq_qdot_tile_avx512vnni(uint32_t type, const void *base, uint64_t rows, uint64_t cols,
                        uint32_t group, uint64_t r0, int nr, const dsq_qx *x, int nt,
                        float *out, size_t ostride);

/* dsq_qx_quantize_ref with AVX2 (when dsq_qdot_have(DSQ_QDOT_AVX2)) and with AVX-512 (when
 * dsq_qx_have_avx512()); quant/qx_x86.c. */
void dsq_qx_quantize_avx2(uint32_t type, const float *x, uint64_t cols, uint32_t group,
                          dsq_qx out);
void dsq_qx_quantize_avx512(uint32_t type, const float *x, uint64_t cols, uint32_t group,
                            dsq_qx out);
#endif

#endif
