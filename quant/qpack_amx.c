/* The packed int8 kernels (quant/qpack.h) on AMX tiles, for prompts. A q8 block's chunks are
 * already AMX's B operand for bytes (tile row i = chunk i: 16 rows by 4 k, as unsigned w + 128),
 * so 16 chunks (64 k, 1 KB) load as one tile; a q4 or q6 chunk of 8 k splits into two such rows,
 * its low nibbles (k..k + 3) and its high ones (k + 4..k + 7), with q6's top bits or'ed in,
 * unpacked into a 1 KB buffer per tile.
 * The tokens' codes are the A operand: 16 tokens by 64 k (32 for groups that 64 does not
 * divide), loaded straight from evenly spaced rows, else gathered per tile (a MoE expert's
 * tokens are rows of the batch out of order). TDPBSUD (signed activations by unsigned weights)
 * sums a group's products exactly in int32; each group's tiles are then stored and folded into
 * fp32 sums with the same operations, in the same order, as the AVX-512 VNNI kernel
 * (quant/qpack_avx512vnni.c), so the two give the same bits. */
#include "qpack.h"

#include <string.h>

#if defined(__x86_64__) && defined(__linux__)
#include <immintrin.h>

#include "amx.h"
#include "qpack_x86_512.h"
#include "types.h"

#define TARGET __attribute__((target("amx-tile,amx-int8,avx512f,avx512bw,avx512vl,f16c,fma")))

enum { ROWS = DSQ_QPACK_ROWS };

bool dsq_qpack_amx_have(void)
{
    return dsq_amx_have_int8();
}

bool dsq_qpack_amx_fits(uint32_t type, uint64_t rows, uint64_t cols, uint32_t group)
{
    return (type == DSQ_TYPE_Q8 || type == DSQ_TYPE_Q4 || type == DSQ_TYPE_Q6) &&
           rows % ROWS == 0 && group % 32 == 0 && cols % group == 0;
}

/* Tiles 0-3 the int32 sums (two token tiles by two row blocks), 4-5 the codes of 16 tokens by
 * kt k, 6-7 the weights of kt k by 16 rows. */
TARGET static void configure(int kt)
{
    dsq_amx_config c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int i = 0; i < 8; i++) {
        c.rows[i] = i == 6 || i == 7 ? (uint8_t)(kt / 4) : ROWS;
        c.colsb[i] = i == 4 || i == 5 ? (uint16_t)kt : 64;
    }
    _tile_loadconfig(&c);
}

/* kt k of a q4 or q6 block from k0 as a B tile: chunk i's low nibbles are row 2i, its high
 * ones 2i + 1 (quant/qpack_x86_512.h). */
TARGET static void unpack_nibbles(bool q6, const uint8_t *chunks, uint64_t k0, int kt,
                                  uint8_t *tile)
{
    for (int i = 0; i < kt / 8; i++) {
        __m512i lo, hi;
        dsq_qpack512_nibbles(chunks + (q6 ? 12 : 8) * k0 + (q6 ? 96 : 64) * i, q6, &lo, &hi);
        _mm512_store_si512((void *)(tile + 128 * i), lo);
        _mm512_store_si512((void *)(tile + 128 * i + 64), hi);
    }
}

/* The codes of tokens x[0..nt) from k0, kt of each, as rows of kt bytes: one or two A tiles. */
TARGET static void gather(const dsq_qx *x, int nt, uint64_t k0, int kt, int8_t *a)
{
    if (kt == 64)
        for (int t = 0; t < nt; t++)
            _mm512_store_si512((void *)(a + 64 * t),
                               _mm512_loadu_si512((const void *)(x[t].q + k0)));
    else
        for (int t = 0; t < nt; t++)
            _mm256_store_si256((void *)(a + 32 * t),
                               _mm256_loadu_si256((const void *)(x[t].q + k0)));
}

/* Bytes between consecutive tokens' codes when nt is whole tiles (16 or 32) evenly spaced, as
 * a prompt's rounded rows are: then the A tiles load from them directly, without the gather
 * (a partial tile would read past the last row). 0 otherwise. */
static int64_t token_stride(const dsq_qx *x, int nt)
{
    if (nt != ROWS && nt != 2 * ROWS)
        return 0;
    const int64_t stride = x[1].q - x[0].q;
    for (int t = 1; t < nt; t++)
        if (x[t].q - x[t - 1].q != stride)
            return 0;
    return stride > 0 ? stride : 0;
}

/* Folds group g's int32 sums c (tile j + 2 i: tokens 16 i.., block j) into acc (token t's 32
 * sums at 32 t, block j's at 16 j): the VNNI kernel's arithmetic, with each token's scalars taken
 * once for both blocks. */
TARGET static void fold_group(uint32_t type, int32_t (*c)[ROWS * ROWS], const uint16_t *scales,
                              uint64_t ng, uint64_t g, const dsq_qx *x, int n0, int n1, int nb,
                              float *acc)
{
    const bool q4 = type == DSQ_TYPE_Q4;
    /* q8's codes are w + 128 and q6's u = q + 32: that times the codes' sum comes off */
    const int32_t offset = type == DSQ_TYPE_Q8 ? 128 : 32;
    for (int i = 0; i < (n1 ? 2 : 1); i++) {
        const int nt = i ? n1 : n0;
        float xd[ROWS], xm[ROWS];
        int32_t off[ROWS];
        for (int t = 0; t < nt; t++) {
            const dsq_qx *xt = &x[ROWS * i + t];
            xd[t] = xt->d[g];
            xm[t] = xd[t] * (float)xt->s[g]; /* q4: the minimum's term */
            off[t] = offset * xt->s[g];
        }
        for (int j = 0; j < nb; j++) {
            const uint16_t *sc = scales + (uint64_t)j * ng * (q4 ? 32 : 16) + (q4 ? 32 : 16) * g;
            const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const void *)sc));
            const __m512 m =
                _mm512_cvtph_ps(_mm256_loadu_si256((const void *)(sc + (q4 ? 16 : 0))));
            const int32_t *cj = c[j + 2 * i];
            float *o = acc + 2 * ROWS * ROWS * i + ROWS * j;
            for (int t = 0; t < nt; t++) {
                __m512i v = _mm512_load_si512((const void *)(cj + ROWS * t));
                if (!q4)
                    v = _mm512_sub_epi32(v, _mm512_set1_epi32(off[t]));
                float *ot = o + 2 * ROWS * t;
                __m512 sum =
                    _mm512_fmadd_ps(_mm512_cvtepi32_ps(v), _mm512_mul_ps(d, _mm512_set1_ps(xd[t])),
                                    _mm512_load_ps(ot));
                if (q4)
                    sum = _mm512_fmadd_ps(m, _mm512_set1_ps(xm[t]), sum);
                _mm512_store_ps(ot, sum);
            }
        }
    }
}

TARGET void dsq_qpack_amx(uint32_t type, const void *packed, uint64_t rows, uint64_t cols,
                          uint32_t group, uint64_t b, int nb, const dsq_qx *x, int nt, float *out,
                          size_t ostride)
{
    const bool q4 = type == DSQ_TYPE_Q4, q6 = type == DSQ_TYPE_Q6, nibbles = q4 || q6;
    const uint64_t ng = cols / group;
    const uint64_t block_bytes = q4 ? ROWS * cols / 2 : q6 ? ROWS * cols * 3 / 4 : ROWS * cols;
    const int kt = group % 64 ? 32 : 64, n0 = nt < ROWS ? nt : ROWS, n1 = nt - n0;
    const uint64_t steps = cols / (uint64_t)kt, per_group = group / (uint64_t)kt;
    const uint8_t *codes = (const uint8_t *)packed + b * block_bytes;
    const uint16_t *scales =
        (const uint16_t *)(const void *)((const uint8_t *)packed + rows / ROWS * block_bytes) +
        b * ng * (q4 ? 32 : 16);
    /* Two of each staging buffer: step s + 1 is written while step s's tiles load, and group
     * g - 1's sums are folded while group g's tiles run, because a tile load waits for vector
     * stores to the same lines to leave the store buffer, and vector loads for tile stores. */
    _Alignas(64) int8_t a[2][2 * ROWS * 64];      /* token t's kt codes at kt t */
    _Alignas(64) uint8_t w[2][2][ROWS * 64];      /* q4, q6: the blocks' B tiles */
    _Alignas(64) int32_t sums[2][4][ROWS * ROWS]; /* groups g and g - 1 */
    /* the fp32 sums, here rather than in out: out's rows lie a multiple of 4 KB apart, and
     * their lines crowded one L1 set at every group */
    _Alignas(64) float acc[2 * ROWS * 2 * ROWS];
    memset(a, 0, sizeof a); /* rows past the tokens: summed, never folded */
    memset(acc, 0, sizeof acc);
    const int64_t stride = token_stride(x, nt);
    configure(kt);
    for (uint64_t s = 0; s <= steps; s++) {
        if (s < steps) { /* stage step s */
            if (!stride)
                gather(x, nt, s * (uint64_t)kt, kt, a[s & 1]);
            for (int j = 0; nibbles && j < nb; j++)
                unpack_nibbles(q6, codes + (uint64_t)j * block_bytes, s * (uint64_t)kt, kt,
                               w[s & 1][j]);
        }
        if (s == 0)
            continue;
        const uint64_t k = s - 1, k0 = k * (uint64_t)kt; /* run step s - 1 */
        if (k % per_group == 0) {
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
        }
        if (stride) {
            _tile_loadd(4, x[0].q + k0, stride);
            if (n1)
                _tile_loadd(5, x[0].q + ROWS * stride + k0, stride);
        } else {
            _tile_loadd(4, a[k & 1], kt);
            if (n1)
                _tile_loadd(5, a[k & 1] + ROWS * kt, kt);
        }
        if (nibbles) {
            _tile_loadd(6, w[k & 1][0], 64);
            if (nb == 2)
                _tile_loadd(7, w[k & 1][1], 64);
        } else { /* chunk k0 / 4 sits at byte 16 k0 */
            _tile_loadd(6, codes + 16 * k0, 64);
            if (nb == 2)
                _tile_loadd(7, codes + block_bytes + 16 * k0, 64);
        }
        _tile_dpbsud(0, 4, 6);
        if (nb == 2)
            _tile_dpbsud(1, 4, 7);
        if (n1) {
            _tile_dpbsud(2, 5, 6);
            if (nb == 2)
                _tile_dpbsud(3, 5, 7);
        }
        if (k % per_group == 0 && k > 0) /* group g - 1 folds while g's tiles run */
            fold_group(type, sums[(k / per_group - 1) & 1], scales, ng, k / per_group - 1, x, n0,
                       n1, nb, acc);
        if (k % per_group != per_group - 1)
            continue;
        /* the group is summed: its tiles out (tile j + 2 i: tokens 16 i.., block j) */
        int32_t(*c)[ROWS * ROWS] = sums[(k / per_group) & 1];
        _tile_stored(0, c[0], ROWS * sizeof(int32_t));
        if (nb == 2)
            _tile_stored(1, c[1], ROWS * sizeof(int32_t));
        if (n1) {
            _tile_stored(2, c[2], ROWS * sizeof(int32_t));
            if (nb == 2)
                _tile_stored(3, c[3], ROWS * sizeof(int32_t));
        }
    }
    fold_group(type, sums[(ng - 1) & 1], scales, ng, ng - 1, x, n0, n1, nb, acc);
    _tile_release();
    for (int t = 0; t < nt; t++)
        memcpy(out + (size_t)t * ostride + ROWS * b, acc + 2 * ROWS * t,
               (size_t)nb * ROWS * sizeof(float));
}

#else
#include <stdlib.h>

bool dsq_qpack_amx_have(void)
{
    return false;
}

bool dsq_qpack_amx_fits(uint32_t type, uint64_t rows, uint64_t cols, uint32_t group)
{
    (void)type, (void)rows, (void)cols, (void)group;
    return false;
}

void dsq_qpack_amx(uint32_t type, const void *packed, uint64_t rows, uint64_t cols, uint32_t group,
                   uint64_t b, int nb, const dsq_qx *x, int nt, float *out, size_t ostride)
{
    (void)type, (void)packed, (void)rows, (void)cols, (void)group, (void)b, (void)nb, (void)x,
        (void)nt, (void)out, (void)ostride;
    abort(); /* unreachable: dsq_qpack_amx_have() is false here */
}

#endif
