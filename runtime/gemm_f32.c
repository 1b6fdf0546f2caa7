/* fp32 matrix product in register tiles (runtime/gemm_f32.h): four rows of C by 32 columns
 * (AVX-512) or six by 16 (AVX2); each loaded piece of B serves every row of the tile, each
 * broadcast element of A a whole row of it. Column edges use masked loads and stores. */
#include "gemm_f32.h"

#include <stdint.h>

#include "dot.h"

void gemm_f32_ref(int m, int n, int k, const float *a, size_t lda, const float *b, size_t ldb,
                  float *c, size_t ldc, bool accumulate)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float s = accumulate ? c[(size_t)i * ldc + (size_t)j] : 0;
            for (int p = 0; p < k; p++)
                s += a[(size_t)i * lda + (size_t)p] * b[(size_t)p * ldb + (size_t)j];
            c[(size_t)i * ldc + (size_t)j] = s;
        }
}

void gemm_f32_nt_ref(int m, int n, int k, const float *a, size_t lda, const float *b,
                     size_t ldb, float *c, size_t ldc, bool accumulate)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float s = 0;
            for (int p = 0; p < k; p++)
                s += a[(size_t)i * lda + (size_t)p] * b[(size_t)j * ldb + (size_t)p];
            c[(size_t)i * ldc + (size_t)j] = (accumulate ? c[(size_t)i * ldc + (size_t)j] : 0) + s;
        }
}

#if defined(__x86_64__)
#include <immintrin.h>

#define T512 __attribute__((target("avx512f,avx2,fma")))
#define T256 __attribute__((target("avx2,fma")))
#define INLINE static inline __attribute__((always_inline))

/* Rows i0..i0+mr-1, columns j0..j0+31 (the first cols of them). */
T512 INLINE void tile512(const float *a, size_t lda, const float *b, size_t ldb, float *c,
                         size_t ldc, int k, int cols, bool accumulate, const int mr)
{
    const __mmask16 m0 = cols >= 16 ? 0xffff : (__mmask16)((1u << cols) - 1);
    const __mmask16 m1 = cols >= 32 ? 0xffff : cols <= 16 ? 0 : (__mmask16)((1u << (cols - 16)) - 1);
    __m512 acc[4][2];
#pragma GCC unroll 4
    for (int i = 0; i < mr; i++) {
        acc[i][0] = accumulate ? _mm512_maskz_loadu_ps(m0, c + (size_t)i * ldc) : _mm512_setzero_ps();
        acc[i][1] = accumulate ? _mm512_maskz_loadu_ps(m1, c + (size_t)i * ldc + 16)
                               : _mm512_setzero_ps();
    }
    for (int p = 0; p < k; p++) {
        const float *bp = b + (size_t)p * ldb;
        const __m512 b0 = _mm512_maskz_loadu_ps(m0, bp), b1 = _mm512_maskz_loadu_ps(m1, bp + 16);
#pragma GCC unroll 4
        for (int i = 0; i < mr; i++) {
            const __m512 av = _mm512_set1_ps(a[(size_t)i * lda + (size_t)p]);
            acc[i][0] = _mm512_fmadd_ps(av, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(av, b1, acc[i][1]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < mr; i++) {
        _mm512_mask_storeu_ps(c + (size_t)i * ldc, m0, acc[i][0]);
        _mm512_mask_storeu_ps(c + (size_t)i * ldc + 16, m1, acc[i][1]);
    }
}

/* Tiles of up to ROWS rows by COLS columns over C, row remainders by their own shapes (TILE,
 * a statement on mr, cols, ai, bj, ci, kb and add), over k in blocks of K_BLOCK: a block of
 * B's columns (K_BLOCK rows, 16 KB at 32 columns) then stays in L1 while every row tile of A
 * passes over it. Without the blocking, P V over 4096 cached tokens read B's column slice from
 * L2 once per row tile, with a page stride between rows (one thread, 16 x 64 x 4096: 10.7
 * GMAC/s). C carries each sum from one block to the next in fp32, so the sums are the same
 * in-order sums. */
#define K_BLOCK 128
#define GEMM_DRIVER(ROWS, COLS, TILE)                                                              \
    for (int p0 = 0; p0 < k || p0 == 0; p0 += K_BLOCK) {                                           \
        const int kb = k - p0 < K_BLOCK ? k - p0 : K_BLOCK;                                        \
        const bool add = accumulate || p0 > 0;                                                     \
        for (int j = 0; j < n; j += COLS)                                                          \
            for (int i = 0; i < m; i += ROWS) {                                                    \
                const int mr = m - i < ROWS ? m - i : ROWS, cols = n - j < COLS ? n - j : COLS;    \
                const float *ai = a + (size_t)i * lda + p0;                                        \
                const float *bj = b + (size_t)p0 * ldb + j;                                        \
                float *ci = c + (size_t)i * ldc + j;                                               \
                TILE                                                                               \
            }                                                                                      \
    }

#define TILE512_ROWS                                                                               \
    switch (mr) {                                                                                  \
    case 4: tile512(ai, lda, bj, ldb, ci, ldc, kb, cols, add, 4); break;                           \
    case 3: tile512(ai, lda, bj, ldb, ci, ldc, kb, cols, add, 3); break;                           \
    case 2: tile512(ai, lda, bj, ldb, ci, ldc, kb, cols, add, 2); break;                           \
    default: tile512(ai, lda, bj, ldb, ci, ldc, kb, cols, add, 1); break;                          \
    }

T512 void gemm_f32_avx512(int m, int n, int k, const float *a, size_t lda, const float *b,
                          size_t ldb, float *c, size_t ldc, bool accumulate)
{
    GEMM_DRIVER(4, 32, TILE512_ROWS)
}

/* The lanes of an AVX2 masked load or store: the first cols of 8. */
T256 INLINE __m256i mask8(int cols)
{
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(cols), lane);
}

/* Rows i0..i0+mr-1 (mr <= 6), columns j0..j0+15 (the first cols of them): 12 accumulators,
 * two loads of B and six broadcasts of A per step. Four rows left the fmas waiting on loads
 * (AMD Zen 3, one thread, P V of 16 rows over 128 cached latents in L2: 22 -> 31 GMAC/s). A
 * full tile (full set) loads B without masks, which cost extra on some CPUs. */
T256 INLINE void tile256(const float *a, size_t lda, const float *b, size_t ldb, float *c,
                         size_t ldc, int k, int cols, bool accumulate, const int mr,
                         const bool full)
{
    const __m256i m0 = mask8(cols), m1 = mask8(cols - 8);
    __m256 acc[6][2];
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++) {
        acc[i][0] = accumulate ? _mm256_maskload_ps(c + (size_t)i * ldc, m0) : _mm256_setzero_ps();
        acc[i][1] = accumulate ? _mm256_maskload_ps(c + (size_t)i * ldc + 8, m1)
                               : _mm256_setzero_ps();
    }
    for (int p = 0; p < k; p++) {
        const float *bp = b + (size_t)p * ldb;
        const __m256 b0 = full ? _mm256_loadu_ps(bp) : _mm256_maskload_ps(bp, m0);
        const __m256 b1 = full ? _mm256_loadu_ps(bp + 8) : _mm256_maskload_ps(bp + 8, m1);
#pragma GCC unroll 6
        for (int i = 0; i < mr; i++) {
            const __m256 av = _mm256_broadcast_ss(a + (size_t)i * lda + (size_t)p);
            acc[i][0] = _mm256_fmadd_ps(av, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(av, b1, acc[i][1]);
        }
    }
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++) {
        _mm256_maskstore_ps(c + (size_t)i * ldc, m0, acc[i][0]);
        _mm256_maskstore_ps(c + (size_t)i * ldc + 8, m1, acc[i][1]);
    }
}

#define TILE256_SHAPE(full)                                                                        \
    switch (mr) {                                                                                  \
    case 6: tile256(ai, lda, bj, ldb, ci, ldc, kb, cols, add, 6, full); break;                     \
    case 5: tile256(ai, lda, bj, ldb, ci, ldc, kb, cols, add, 5, full); break;                     \
    case 4: tile256(ai, lda, bj, ldb, ci, ldc, kb, cols, add, 4, full); break;                     \
    case 3: tile256(ai, lda, bj, ldb, ci, ldc, kb, cols, add, 3, full); break;                     \
    case 2: tile256(ai, lda, bj, ldb, ci, ldc, kb, cols, add, 2, full); break;                     \
    default: tile256(ai, lda, bj, ldb, ci, ldc, kb, cols, add, 1, full); break;                    \
    }
#define TILE256_ROWS                                                                               \
    if (cols == 16)                                                                                \
        TILE256_SHAPE(true)                                                                        \
    else                                                                                           \
        TILE256_SHAPE(false)

T256 void gemm_f32_avx2(int m, int n, int k, const float *a, size_t lda, const float *b,
                        size_t ldb, float *c, size_t ldc, bool accumulate)
{
    GEMM_DRIVER(6, 16, TILE256_ROWS)
}

/* The 16 lane sums of a 4x4 tile of accumulators at once: lane 4 i + j of the result is the sum
 * of acc[i][j]'s lanes. A tree of shuffles and adds over all 16 (45 instructions) instead of 16
 * separate horizontal sums (about 8 each): with a short k, as in attention's rope part (16 or
 * 64), the folds were most of the work. */
T512 INLINE __m512 fold_pair(__m512 a, __m512 b)
{
    return _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
}

/* Takes the accumulators by value: an array whose address escapes stays in memory. */
T512 INLINE __m512 fold16(__m512 a00, __m512 a01, __m512 a02, __m512 a03, __m512 a10,
                          __m512 a11, __m512 a12, __m512 a13, __m512 a20, __m512 a21,
                          __m512 a22, __m512 a23, __m512 a30, __m512 a31, __m512 a32,
                          __m512 a33)
{
    /* per 128-bit lane: a b a b, each a sum of two elements */
    const __m512 pairs[8] = {fold_pair(a00, a01), fold_pair(a02, a03), fold_pair(a10, a11),
                             fold_pair(a12, a13), fold_pair(a20, a21), fold_pair(a22, a23),
                             fold_pair(a30, a31), fold_pair(a32, a33)};
    __m512 quads[4], halves[2];
#pragma GCC unroll 4
    for (int q = 0; q < 4; q++) { /* per 128-bit lane: the four accumulators 4q..4q+3 */
        const __m512d a = _mm512_castps_pd(pairs[2 * q]), b = _mm512_castps_pd(pairs[2 * q + 1]);
        quads[q] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)),
                                 _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
    }
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) /* fold the four 128-bit lanes in pairs */
        halves[h] = _mm512_add_ps(
            _mm512_shuffle_f32x4(quads[2 * h], quads[2 * h + 1], _MM_SHUFFLE(2, 0, 2, 0)),
            _mm512_shuffle_f32x4(quads[2 * h], quads[2 * h + 1], _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm512_add_ps(_mm512_shuffle_f32x4(halves[0], halves[1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(halves[0], halves[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

/* C rows i0..i0+mr-1 by columns j0..j0+nr-1 of A B^T: mr x nr dot products over k, each in
 * 16 lanes (k in steps of 16, the tail masked), folded once at the end. */
T512 INLINE void nt_tile512(const float *a, size_t lda, const float *b, size_t ldb, float *c,
                            size_t ldc, int k, bool accumulate, const int mr, const int nr)
{
    /* every accumulator set, loops unrolled: otherwise gcc keeps the array in memory and
     * stores all 16 accumulators on every step */
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++)
            acc[i][j] = _mm512_setzero_ps();
    for (int p = 0; p < k; p += 16) {
        const __mmask16 mk = k - p >= 16 ? 0xffff : (__mmask16)((1u << (k - p)) - 1);
        __m512 bv[4];
#pragma GCC unroll 4
        for (int j = 0; j < nr; j++)
            bv[j] = _mm512_maskz_loadu_ps(mk, b + (size_t)j * ldb + (size_t)p);
#pragma GCC unroll 4
        for (int i = 0; i < mr; i++) {
            const __m512 av = _mm512_maskz_loadu_ps(mk, a + (size_t)i * lda + (size_t)p);
#pragma GCC unroll 4
            for (int j = 0; j < nr; j++)
                acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
        }
    }
    float sums[16];
    _mm512_storeu_ps(sums, fold16(acc[0][0], acc[0][1], acc[0][2], acc[0][3], acc[1][0],
                                  acc[1][1], acc[1][2], acc[1][3], acc[2][0], acc[2][1],
                                  acc[2][2], acc[2][3], acc[3][0], acc[3][1], acc[3][2],
                                  acc[3][3]));
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) {
            float *out = c + (size_t)i * ldc + (size_t)j;
            *out = (accumulate ? *out : 0) + sums[4 * i + j];
        }
}

/* The tile shape for mr rows of A by nr of B (AVX-512). */
#define NT_SHAPES_2(tile, ...)                                                                     \
    case 7: tile(__VA_ARGS__, 2, 4); break;                                                        \
    case 6: tile(__VA_ARGS__, 2, 3); break;                                                        \
    case 5: tile(__VA_ARGS__, 2, 2); break;                                                        \
    case 4: tile(__VA_ARGS__, 2, 1); break;                                                        \
    case 3: tile(__VA_ARGS__, 1, 4); break;                                                        \
    case 2: tile(__VA_ARGS__, 1, 3); break;                                                        \
    case 1: tile(__VA_ARGS__, 1, 2); break;                                                        \
    default: tile(__VA_ARGS__, 1, 1); break;
#define NT_SHAPES_4(tile, ...)                                                                     \
    case 15: tile(__VA_ARGS__, 4, 4); break;                                                       \
    case 14: tile(__VA_ARGS__, 4, 3); break;                                                       \
    case 13: tile(__VA_ARGS__, 4, 2); break;                                                       \
    case 12: tile(__VA_ARGS__, 4, 1); break;                                                       \
    case 11: tile(__VA_ARGS__, 3, 4); break;                                                       \
    case 10: tile(__VA_ARGS__, 3, 3); break;                                                       \
    case 9: tile(__VA_ARGS__, 3, 2); break;                                                        \
    case 8: tile(__VA_ARGS__, 3, 1); break;                                                        \
    NT_SHAPES_2(tile, __VA_ARGS__)

T512 void gemm_f32_nt_avx512(int m, int n, int k, const float *a, size_t lda, const float *b,
                             size_t ldb, float *c, size_t ldc, bool accumulate)
{
    for (int j = 0; j < n; j += 4)
        for (int i = 0; i < m; i += 4) {
            const int mr = m - i < 4 ? m - i : 4, nr = n - j < 4 ? n - j : 4;
            switch ((mr - 1) * 4 + (nr - 1)) {
                NT_SHAPES_4(nt_tile512, a + (size_t)i * lda, lda, b + (size_t)j * ldb, ldb,
                            c + (size_t)i * ldc + j, ldc, k, accumulate)
            }
        }
}

/* The same in 8 lanes: 4 rows of A by 3 of B, 12 accumulators (2 x 4 left the fmas waiting on
 * loads: Zen 3, one thread, 16 x 128 x 512 in L2: 22 -> 34 GMAC/s). Full steps of 8 load
 * without masks; the tail of k is masked. */
T256 INLINE void nt_tile256(const float *a, size_t lda, const float *b, size_t ldb, float *c,
                            size_t ldc, int k, bool accumulate, const int mr, const int nr)
{
    __m256 acc[4][3]; /* loops unrolled so the accumulators stay in registers */
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
#pragma GCC unroll 3
        for (int j = 0; j < 3; j++)
            acc[i][j] = _mm256_setzero_ps();
    int p = 0;
    for (; p + 8 <= k; p += 8) {
        __m256 bv[3];
#pragma GCC unroll 3
        for (int j = 0; j < nr; j++)
            bv[j] = _mm256_loadu_ps(b + (size_t)j * ldb + (size_t)p);
#pragma GCC unroll 4
        for (int i = 0; i < mr; i++) {
            const __m256 av = _mm256_loadu_ps(a + (size_t)i * lda + (size_t)p);
#pragma GCC unroll 3
            for (int j = 0; j < nr; j++)
                acc[i][j] = _mm256_fmadd_ps(av, bv[j], acc[i][j]);
        }
    }
    if (p < k) {
        const __m256i mk = mask8(k - p);
        __m256 bv[3];
#pragma GCC unroll 3
        for (int j = 0; j < nr; j++)
            bv[j] = _mm256_maskload_ps(b + (size_t)j * ldb + (size_t)p, mk);
#pragma GCC unroll 4
        for (int i = 0; i < mr; i++) {
            const __m256 av = _mm256_maskload_ps(a + (size_t)i * lda + (size_t)p, mk);
#pragma GCC unroll 3
            for (int j = 0; j < nr; j++)
                acc[i][j] = _mm256_fmadd_ps(av, bv[j], acc[i][j]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 3
        for (int j = 0; j < nr; j++) {
            __m128 h = _mm_add_ps(_mm256_castps256_ps128(acc[i][j]),
                                  _mm256_extractf128_ps(acc[i][j], 1));
            h = _mm_add_ps(h, _mm_movehl_ps(h, h));
            h = _mm_add_ss(h, _mm_movehdup_ps(h));
            float *out = c + (size_t)i * ldc + (size_t)j;
            *out = (accumulate ? *out : 0) + _mm_cvtss_f32(h);
        }
}

/* B's rows this far ahead are prefetched while a column of tiles works on the current three:
 * attention streams B (the cache) from memory, and the hardware prefetcher alone left the
 * fmas waiting (16 x 4096 x 512, cold cache, pieces of 128: about 10% faster). */
#define NT_PREFETCH_ROWS 3

T256 void gemm_f32_nt_avx2(int m, int n, int k, const float *a, size_t lda, const float *b,
                           size_t ldb, float *c, size_t ldc, bool accumulate)
{
    for (int j = 0; j < n; j += 3) {
        for (int jp = j + NT_PREFETCH_ROWS; jp < j + 2 * NT_PREFETCH_ROWS && jp < n; jp++)
            for (int p = 0; p < k; p += 16)
                _mm_prefetch((const char *)(b + (size_t)jp * ldb + (size_t)p), _MM_HINT_T0);
        for (int i = 0; i < m; i += 4) {
            const int mr = m - i < 4 ? m - i : 4, nr = n - j < 3 ? n - j : 3;
            const float *ai = a + (size_t)i * lda, *bj = b + (size_t)j * ldb;
            float *ci = c + (size_t)i * ldc + j;
            switch ((mr - 1) * 3 + (nr - 1)) {
            case 11: nt_tile256(ai, lda, bj, ldb, ci, ldc, k, accumulate, 4, 3); break;
            case 10: nt_tile256(ai, lda, bj, ldb, ci, ldc, k, accumulate, 4, 2); break;
            case 9: nt_tile256(ai, lda, bj, ldb, ci, ldc, k, accumulate, 4, 1); break;
            case 8: nt_tile256(ai, lda, bj, ldb, ci, ldc, k, accumulate, 3, 3); break;
            case 7: nt_tile256(ai, lda, bj, ldb, ci, ldc, k, accumulate, 3, 2); break;
            case 6: nt_tile256(ai, lda, bj, ldb, ci, ldc, k, accumulate, 3, 1); break;
            case 5: nt_tile256(ai, lda, bj, ldb, ci, ldc, k, accumulate, 2, 3); break;
            case 4: nt_tile256(ai, lda, bj, ldb, ci, ldc, k, accumulate, 2, 2); break;
            case 3: nt_tile256(ai, lda, bj, ldb, ci, ldc, k, accumulate, 2, 1); break;
            case 2: nt_tile256(ai, lda, bj, ldb, ci, ldc, k, accumulate, 1, 3); break;
            case 1: nt_tile256(ai, lda, bj, ldb, ci, ldc, k, accumulate, 1, 2); break;
            default: nt_tile256(ai, lda, bj, ldb, ci, ldc, k, accumulate, 1, 1); break;
            }
        }
    }
}
#endif

void gemm_f32_nt(int m, int n, int k, const float *a, size_t lda, const float *b, size_t ldb,
                 float *c, size_t ldc, bool accumulate)
{
#if defined(__x86_64__)
    if (dsq_dot_have_avx512()) {
        gemm_f32_nt_avx512(m, n, k, a, lda, b, ldb, c, ldc, accumulate);
        return;
    }
    if (dsq_dot_have_avx2()) {
        gemm_f32_nt_avx2(m, n, k, a, lda, b, ldb, c, ldc, accumulate);
        return;
    }
#endif
    gemm_f32_nt_ref(m, n, k, a, lda, b, ldb, c, ldc, accumulate);
}

void gemm_f32(int m, int n, int k, const float *a, size_t lda, const float *b, size_t ldb,
              float *c, size_t ldc, bool accumulate)
{
#if defined(__x86_64__)
    if (dsq_dot_have_avx512()) {
        gemm_f32_avx512(m, n, k, a, lda, b, ldb, c, ldc, accumulate);
        return;
    }
    if (dsq_dot_have_avx2()) {
        gemm_f32_avx2(m, n, k, a, lda, b, ldb, c, ldc, accumulate);
        return;
    }
#endif
    gemm_f32_ref(m, n, k, a, lda, b, ldb, c, ldc, accumulate);
}
