/* The bf16 KV cache's conversions, MHA's decode kernels over it and MLA's AMX tile kernels
 * (kv_bf16.h).
 *
 * MHA: head by head over a piece of positions: each score a dot product of the head's query
 * with a cached key, each weighted sum kept in registers (AVX-512) or L1 while the head's
 * values are widened and added.
 *
 * Scores: the cached rows are the A operand as they lie (16 positions by 32 k, rows cstride
 * apart), the queries the B operand (k pairs by 16 query rows), so a tile of sums is 16
 * positions by 16 query rows, transposed into the scores' rows on the way out.
 * Weighted sums: the probabilities are the A operand (16 query rows by 32 positions); the B
 * operand wants the latents of two positions interleaved element by element (a pair of
 * positions by 16 values per tile row), which a piece's latents are shuffled into, four value
 * blocks at a time. */
#include "kv_bf16.h"

#include <stdlib.h>
#include <string.h>

#include "dequant.h"
#include "dot.h"
#include "float16.h"
#include "types.h"

void kv_bf16_store(const float *x, size_t n, uint16_t *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = dsq_f32_to_bf16(x[i]);
}

void kv_bf16_store_split(const float *x, size_t n, uint16_t *hi, uint16_t *lo)
{
    for (size_t i = 0; i < n; i++) {
        hi[i] = dsq_f32_to_bf16(x[i]);
        lo[i] = dsq_f32_to_bf16(x[i] - dsq_bf16_to_f32(hi[i]));
    }
}

void kv_bf16_widen(const uint16_t *x, size_t n, float *out)
{
    /* the cached rows are contiguous: one bf16 row of n values */
    dsq_dequant_row_fast(DSQ_TYPE_BF16, x, 1, (uint64_t)n, 0, 0, out);
}

#if defined(__x86_64__)
#include <immintrin.h>

#define TARGET_AVX2 __attribute__((target("avx2,fma")))

/* Eight cached bf16 values as fp32 (exact). */
TARGET_AVX2 static inline __m256 widen8(const uint16_t *x)
{
    return _mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)x)), 16));
}

TARGET_AVX2 static void mha_sum_avx2(const uint16_t *values, size_t stride, int ns, const float *p,
                                     size_t pstride, int nh, int group, int hd, float *out)
{
    memset(out, 0, (size_t)nh * hd * sizeof(float));
    for (int h = 0; h < nh; h++) {
        const uint16_t *vh = values + (size_t)(h / group) * hd;
        float *o = out + (size_t)h * hd;
        for (int i = 0; i < ns; i++) {
            const uint16_t *v = vh + (size_t)i * stride;
            const __m256 w = _mm256_set1_ps(p[(size_t)h * pstride + i]);
            for (int d = 0; d < hd; d += 8)
                _mm256_storeu_ps(o + d, _mm256_fmadd_ps(w, widen8(v + d), _mm256_loadu_ps(o + d)));
        }
    }
}

#define TARGET_AVX512 __attribute__((target("avx512f,avx2,fma")))

/* Heads of HD_512 values take the AVX-512 kernels: head by head, the query (or the head's
 * weighted sum) held in registers across the piece's positions, so a position costs its row's
 * loads and widening and one multiply-add each, with no reloads or stores of the head's row
 * (MoE-16B at 4,000 cached tokens: 8 layers decoded 10% faster than a row at a time). */
#define HD_512 128

/* Sixteen cached bf16 values as fp32 (exact). */
TARGET_AVX512 static inline __m512 widen16(const uint16_t *x)
{
    return _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)x)), 16));
}

TARGET_AVX512 static void mha_scores_avx512(const uint16_t *keys, size_t stride, int ns,
                                            const float *q, int nh, int group, float *scores,
                                            size_t sstride)
{
    enum { CHUNKS = HD_512 / 16 };
    for (int h = 0; h < nh; h++) {
        const uint16_t *kh = keys + (size_t)(h / group) * HD_512;
        __m512 qv[CHUNKS];
        for (int c = 0; c < CHUNKS; c++)
            qv[c] = _mm512_loadu_ps(q + (size_t)h * HD_512 + 16 * c);
        for (int i = 0; i < ns; i++) {
            const uint16_t *k = kh + (size_t)i * stride;
            __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
            for (int c = 0; c < CHUNKS; c++)
                acc[c % 2] = _mm512_fmadd_ps(qv[c], widen16(k + 16 * c), acc[c % 2]);
            scores[(size_t)h * sstride + i] = _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1]));
        }
    }
}

TARGET_AVX512 static void mha_sum_avx512(const uint16_t *values, size_t stride, int ns,
                                         const float *p, size_t pstride, int nh, int group,
                                         float *out)
{
    enum { CHUNKS = HD_512 / 16 };
    for (int h = 0; h < nh; h++) {
        const uint16_t *vh = values + (size_t)(h / group) * HD_512;
        __m512 o[CHUNKS];
        for (int c = 0; c < CHUNKS; c++)
            o[c] = _mm512_setzero_ps();
        for (int i = 0; i < ns; i++) {
            const __m512 w = _mm512_set1_ps(p[(size_t)h * pstride + i]);
            for (int c = 0; c < CHUNKS; c++)
                o[c] = _mm512_fmadd_ps(w, widen16(vh + (size_t)i * stride + 16 * c), o[c]);
        }
        for (int c = 0; c < CHUNKS; c++)
            _mm512_storeu_ps(out + (size_t)h * HD_512 + 16 * c, o[c]);
    }
}

static bool mha_avx512(int hd)
{
    return hd == HD_512 && dsq_dot_use_avx2() && dsq_dot_have_avx512();
}

static bool mha_avx2(int hd)
{
    return hd % 8 == 0 && dsq_dot_use_avx2();
}
#endif

void mha_bf16_scores(const uint16_t *keys, size_t stride, int ns, const float *q, int nh, int group,
                     int hd, float *scores, size_t sstride)
{
#if defined(__x86_64__)
    if (mha_avx512(hd)) {
        mha_scores_avx512(keys, stride, ns, q, nh, group, scores, sstride);
        return;
    }
#endif
    for (int h = 0; h < nh; h++) /* each head's key as a one-row bf16 tensor */
        for (int i = 0; i < ns; i++)
            scores[(size_t)h * sstride + i] =
                dsq_dot_row(DSQ_TYPE_BF16, keys + (size_t)(h / group) * hd + (size_t)i * stride, 1,
                            (uint64_t)hd, 0, 0, q + (size_t)h * hd, NULL);
}

void mha_bf16_weighted_sum(const uint16_t *values, size_t stride, int ns, const float *p,
                           size_t pstride, int nh, int group, int hd, float *out)
{
#if defined(__x86_64__)
    if (mha_avx512(hd)) {
        mha_sum_avx512(values, stride, ns, p, pstride, nh, group, out);
        return;
    }
    if (mha_avx2(hd)) {
        mha_sum_avx2(values, stride, ns, p, pstride, nh, group, hd, out);
        return;
    }
#endif
    memset(out, 0, (size_t)nh * hd * sizeof(float));
    for (int i = 0; i < ns; i++)
        for (int h = 0; h < nh; h++) {
            const uint16_t *v = values + (size_t)i * stride + (size_t)(h / group) * hd;
            for (int d = 0; d < hd; d++)
                out[(size_t)h * hd + d] += p[(size_t)h * pstride + i] * dsq_bf16_to_f32(v[d]);
        }
}

enum { TILE = 16, K_STEP = 32, TILE_ELEMS = TILE * K_STEP };

static size_t round_up(size_t x, size_t to)
{
    return (x + to - 1) / to * to;
}

size_t latent_amx_queries_len(int rows, int kvr)
{
    /* the hi and lo tiles, and the rows split in place on the way there */
    return 4 * round_up((size_t)rows, TILE) * (size_t)kvr;
}

/* One thread's scratch: the last partial block of positions for the scores (16 cached rows),
 * two sets of weighted-sum B tiles, four per 32 positions (one set filled while the other is
 * read), the probabilities' hi and lo parts (query rows rounded up to 16, by the positions
 * rounded up to 32) and one tile of sums. */
typedef struct {
    uint16_t *tail, *b_tiles, *p_hi, *p_lo;
    float *tile;
} scratch_parts;

enum { B_TILES = 4 };

static size_t parts_layout(int rows, int positions, size_t cstride, void *base, scratch_parts *s)
{
    const size_t pos = round_up((size_t)positions, K_STEP), nr = round_up((size_t)rows, TILE);
    const size_t tail = TILE * cstride * 2;
    const size_t b_tiles = 2 * (pos / K_STEP) * B_TILES * TILE_ELEMS * 2;
    const size_t probs = nr * pos * 2, tile = TILE * TILE * sizeof(float);
    if (s) {
        uint8_t *b = base;
        s->tail = (uint16_t *)b;
        s->b_tiles = (uint16_t *)(b + tail);
        s->p_hi = (uint16_t *)(b + tail + b_tiles);
        s->p_lo = (uint16_t *)(b + tail + b_tiles + probs);
        s->tile = (float *)(b + tail + b_tiles + 2 * probs);
    }
    return tail + b_tiles + 2 * probs + tile;
}

size_t latent_amx_scratch_bytes(int rows, int positions, size_t cstride)
{
    return parts_layout(rows, positions, cstride, NULL, NULL);
}

#if defined(__x86_64__) && defined(__linux__)
#include <immintrin.h>

#include "amx.h"

#define TARGET __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512bf16")))

/* 16 floats (n of them read, zeros past n) as hi + lo, both bf16: v - hi is exact in fp32 and
 * lo keeps its leading 8 bits, so hi + lo is within 2^-16 |v| of v. */
TARGET static void split16(const float *x, int n, uint16_t *hi, uint16_t *lo)
{
    const __mmask16 m = n >= 16 ? 0xffff : (__mmask16)((1u << n) - 1);
    const __m512 v = _mm512_maskz_loadu_ps(m, x);
    const __m256bh h = _mm512_cvtneps_pbh(v);
    const __m512 back =
        _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32((__m256i)h), 16));
    _mm256_storeu_si256((void *)hi, (__m256i)h);
    _mm256_storeu_si256((void *)lo, (__m256i)_mm512_cvtneps_pbh(_mm512_sub_ps(v, back)));
}

TARGET void latent_amx_pack_queries(const float *q_lat, int rows, int kvr, uint16_t *packed)
{
    const int blocks = (rows + TILE - 1) / TILE, steps = kvr / K_STEP;
    const size_t half = (size_t)blocks * TILE * kvr;
    uint16_t *split_rows = packed + 2 * half; /* hi rows, then lo rows, as q_lat's */
    for (int r = 0; r < blocks * TILE; r++)
        for (int k = 0; k < kvr; k += 16) {
            const size_t at = (size_t)r * kvr + k;
            split16(r < rows ? q_lat + at : q_lat, r < rows ? 16 : 0, split_rows + at,
                    split_rows + half + at);
        }
    /* tile row kk of block b at step s: k pair s * 32 + 2 kk of the block's 16 rows, the
     * pair a dword, so the tile is a 16 x 16 transposition of dwords */
    const __m512i rows16 =
        _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                           _mm512_set1_epi32(kvr / 2));
    for (int part = 0; part < 2; part++)
        for (int b = 0; b < blocks; b++)
            for (int s = 0; s < steps; s++) {
                const uint16_t *src = split_rows + part * half + (size_t)b * TILE * kvr;
                uint16_t *tile = packed + part * half + ((size_t)b * steps + s) * TILE_ELEMS;
                for (int kk = 0; kk < TILE; kk++)
                    _mm512_storeu_si512(
                        tile + kk * K_STEP,
                        _mm512_i32gather_epi32(rows16, src + s * K_STEP + 2 * kk, 4));
            }
}

bool latent_amx_fits(int kvr)
{
    return kvr > 0 && kvr % K_STEP == 0 && dsq_amx_have_bf16() &&
           __builtin_cpu_supports("avx512bw"); /* the pair shuffle's vpermt2w */
}

/* Tiles 0-3 four independent sums (a TDPBF16PS waits for the previous one into the same tile,
 * so one chain of sums runs at its latency, not its throughput), 4-6 the operands; 16 rows of
 * 64 bytes each. */
TARGET static void configure(int rows)
{
    dsq_amx_config c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int i = 0; i < 7; i++) {
        c.colsb[i] = 64;
        c.rows[i] = (uint8_t)(i < 6 ? rows : TILE);
    }
    _tile_loadconfig(&c);
}

/* The tile instructions take tile numbers as constants: STEP for sums tiles 0..n-1. */
#define FOR_SUM_TILES(n, STEP)                                                                     \
    do {                                                                                           \
        STEP(0);                                                                                   \
        if ((n) > 1)                                                                               \
            STEP(1);                                                                               \
        if ((n) > 2)                                                                               \
            STEP(2);                                                                               \
        if ((n) > 3)                                                                               \
            STEP(3);                                                                               \
    } while (0)
#define ZERO(t) _tile_zero(t)

/* Scores: for each 16-row block of queries, four blocks of 16 positions at a time, one sums
 * tile each; per 32 k, the queries' hi and lo tiles (5, 6) meet each block's latents (4). */
TARGET void latent_amx_scores(const uint16_t *latent, int kvr, size_t cstride, int ns,
                              const uint16_t *packed, int rows, float *scores, size_t sstride,
                              void *scratch)
{
    scratch_parts s;
    parts_layout(rows, ns, cstride, scratch, &s);
    const int blocks = (rows + TILE - 1) / TILE, steps = kvr / K_STEP;
    const int pos_blocks = (ns + TILE - 1) / TILE;
    const uint16_t *lo_part = packed + (size_t)blocks * TILE * kvr;
    const size_t stride = cstride * 2; /* bytes between cached rows */
    if (ns % TILE) { /* the last positions, padded with zeros: never read past the cache */
        const int np = ns % TILE;
        memcpy(s.tail, latent + (size_t)(ns - np) * cstride, (size_t)np * stride);
        memset(s.tail + (size_t)np * cstride, 0, (size_t)(TILE - np) * stride);
    }
    const __m512i column =
        _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                           _mm512_set1_epi32(TILE));
    configure(TILE);
    for (int qb = 0; qb < blocks; qb++) {
        const int nr = rows - qb * TILE < TILE ? rows - qb * TILE : TILE;
        for (int pb = 0; pb < pos_blocks; pb += 4) {
            const int nb = pos_blocks - pb < 4 ? pos_blocks - pb : 4;
            const uint16_t *a[4];
            for (int i = 0; i < nb; i++)
                a[i] =
                    (pb + i + 1) * TILE <= ns ? latent + (size_t)(pb + i) * TILE * cstride : s.tail;
            FOR_SUM_TILES(nb, ZERO);
            for (int k = 0; k < steps; k++) {
                const size_t at = ((size_t)qb * steps + k) * TILE_ELEMS;
                _tile_loadd(5, packed + at, 64);
                _tile_loadd(6, lo_part + at, 64);
#define DOT(t)                                                                                     \
    do {                                                                                           \
        _tile_loadd(4, a[t] + (size_t)k * K_STEP, stride);                                         \
        _tile_dpbf16ps(t, 4, 5);                                                                   \
        _tile_dpbf16ps(t, 4, 6);                                                                   \
    } while (0)
                FOR_SUM_TILES(nb, DOT);
#undef DOT
            }
            /* a tile is [position][query row]; the scores are [query row][position] */
#define STORE(t)                                                                                   \
    do {                                                                                           \
        _tile_stored(t, s.tile, TILE * sizeof(float));                                             \
        const int p0_ = (pb + (t)) * TILE, np_ = ns - p0_ < TILE ? ns - p0_ : TILE;                \
        const __mmask16 m_ = np_ == TILE ? 0xffff : (__mmask16)((1u << np_) - 1);                  \
        for (int r_ = 0; r_ < nr; r_++) /* column r_ of the tile */                                \
            _mm512_mask_storeu_ps(scores + (size_t)(qb * TILE + r_) * sstride + p0_, m_,           \
                                  _mm512_i32gather_ps(column, s.tile + r_, 4));                    \
    } while (0)
            FOR_SUM_TILES(nb, STORE);
#undef STORE
        }
    }
    _tile_release();
}

/* The B tiles for positions 32 g.. and values j0.. (four 16-value blocks, or two): tile t row
 * i holds (c[2i][j], c[2i+1][j]) for the 16 j of block t, positions counted from the group's
 * first; positions past ns read as zeros. */
TARGET static void shuffle_group(const uint16_t *group, size_t cstride, int np, int j0, int nb,
                                 uint16_t *tiles)
{
    const __m512i lo = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40,
                                        8, 39, 7, 38, 6, 37, 5, 36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
    const __m512i hi = _mm512_add_epi16(lo, _mm512_set1_epi16(16));
    for (int i = 0; i < TILE; i++)
        for (int t = 0; t < nb; t += 2) { /* 32 values of two positions make two tile rows */
            const uint16_t *c0 = group + (size_t)(2 * i) * cstride + j0 + t * TILE;
            const __m512i a = 2 * i < np ? _mm512_loadu_si512(c0) : _mm512_setzero_si512();
            const __m512i b =
                2 * i + 1 < np ? _mm512_loadu_si512(c0 + cstride) : _mm512_setzero_si512();
            _mm512_storeu_si512(tiles + t * TILE_ELEMS + i * K_STEP,
                                _mm512_permutex2var_epi16(a, lo, b));
            _mm512_storeu_si512(tiles + (t + 1) * TILE_ELEMS + i * K_STEP,
                                _mm512_permutex2var_epi16(a, hi, b));
        }
}

/* One set of B tiles: for each 32 positions of the piece, the shuffled latents of the value
 * blocks jb.. (nb of them). */
TARGET static void shuffle_set(const uint16_t *latent, size_t cstride, int ns, int jb, int nb,
                               uint16_t *set)
{
    for (int g = 0; g * K_STEP < ns; g++)
        shuffle_group(latent + (size_t)g * K_STEP * cstride, cstride, ns - g * K_STEP, jb * TILE,
                      nb, set + (size_t)g * B_TILES * TILE_ELEMS);
}

/* Weighted sums: for each 16-row block of probabilities, four blocks of 16 values at a time,
 * one sums tile each; per 32 positions, the probabilities' hi and lo tiles (4, 5) meet each
 * block's latents of those positions, shuffled into pairs (6). A tile load waits for earlier
 * vector stores to reach the cache, so the next blocks' latents are shuffled into the other
 * set after this block's tile products are issued, and are settled when they are read. */
TARGET void latent_amx_weighted_sum(const uint16_t *latent, int kvr, size_t cstride, int ns,
                                    const float *p, size_t pstride, int rows, float *out,
                                    void *scratch, const void *next, size_t next_bytes)
{
    scratch_parts s;
    parts_layout(rows, ns, cstride, scratch, &s);
    const int blocks = (rows + TILE - 1) / TILE, pos = (int)round_up((size_t)ns, K_STEP);
    for (int r = 0; r < rows; r++) /* the tiles take the rows there are (configure) */
        for (int i = 0; i < pos; i += 16) {
            const size_t at = (size_t)r * pos + i;
            const int n = i < ns ? ns - i : 0; /* zeros past ns */
            split16(n ? p + (size_t)r * pstride + i : p, n, s.p_hi + at, s.p_lo + at);
        }
    const size_t pstep = (size_t)pos * 2; /* bytes between the probabilities' tile rows */
    const size_t set_len = (size_t)(pos / K_STEP) * B_TILES * TILE_ELEMS;
    const int val_blocks = kvr / TILE; /* even: kvr is a multiple of 32 */
    int set = 0;
    shuffle_set(latent, cstride, ns, 0, val_blocks < B_TILES ? val_blocks : B_TILES, s.b_tiles);
    /* the next piece's lines, a share per step of the products below */
    const char *ahead = next;
    const size_t lines = next ? (next_bytes + 63) / 64 : 0;
    const size_t steps = (size_t)blocks * ((val_blocks + B_TILES - 1) / B_TILES) * (pos / K_STEP);
    const size_t per_step = (lines + steps - 1) / steps;
    size_t fetched = 0;
    for (int rb = 0; rb < blocks; rb++) {
        const int nr = rows - rb * TILE < TILE ? rows - rb * TILE : TILE;
        configure(nr); /* sums and probabilities of nr rows: a tile product's time goes with them */
        for (int jb = 0; jb < val_blocks; jb += B_TILES) {
            const int nb = val_blocks - jb < B_TILES ? val_blocks - jb : B_TILES;
            const uint16_t *b = s.b_tiles + set * set_len;
            FOR_SUM_TILES(nb, ZERO);
            for (int g = 0; g < pos / K_STEP; g++) {
                const size_t at = (size_t)rb * TILE * pos + (size_t)g * K_STEP;
                const uint16_t *bg = b + (size_t)g * B_TILES * TILE_ELEMS;
                for (size_t i = 0; i < per_step && fetched < lines; i++, fetched++)
                    _mm_prefetch(ahead + 64 * fetched, _MM_HINT_T1);
                _tile_loadd(4, s.p_hi + at, pstep);
                _tile_loadd(5, s.p_lo + at, pstep);
#define DOT(t)                                                                                     \
    do {                                                                                           \
        _tile_loadd(6, bg + (t)*TILE_ELEMS, 64);                                                   \
        _tile_dpbf16ps(t, 4, 6);                                                                   \
        _tile_dpbf16ps(t, 5, 6);                                                                   \
    } while (0)
                FOR_SUM_TILES(nb, DOT);
#undef DOT
            }
            /* the next value blocks (or the first again, for the next row block) */
            const int next_jb = jb + B_TILES < val_blocks ? jb + B_TILES : 0;
            if (next_jb || rb + 1 < blocks) {
                set ^= 1;
                shuffle_set(latent, cstride, ns, next_jb,
                            val_blocks - next_jb < B_TILES ? val_blocks - next_jb : B_TILES,
                            s.b_tiles + set * set_len);
            }
#define STORE(t)                                                                                   \
    _tile_stored(t, out + (size_t)rb * TILE * kvr + (size_t)(jb + (t)) * TILE,                     \
                 (size_t)kvr * sizeof(float))
            FOR_SUM_TILES(nb, STORE);
#undef STORE
        }
    }
    _tile_release();
}

#else

bool latent_amx_fits(int kvr)
{
    (void)kvr;
    return false;
}

void latent_amx_pack_queries(const float *q_lat, int rows, int kvr, uint16_t *packed)
{
    (void)q_lat, (void)rows, (void)kvr, (void)packed;
    abort(); /* unreachable: latent_amx_fits() is false here */
}

void latent_amx_scores(const uint16_t *latent, int kvr, size_t cstride, int ns,
                       const uint16_t *packed, int rows, float *scores, size_t sstride,
                       void *scratch)
{
    (void)latent, (void)kvr, (void)cstride, (void)ns, (void)packed, (void)rows, (void)scores,
        (void)sstride, (void)scratch;
    abort(); /* unreachable: latent_amx_fits() is false here */
}

void latent_amx_weighted_sum(const uint16_t *latent, int kvr, size_t cstride, int ns,
                             const float *p, size_t pstride, int rows, float *out, void *scratch,
                             const void *next, size_t next_bytes)
{
    (void)latent, (void)kvr, (void)cstride, (void)ns, (void)p, (void)pstride, (void)rows, (void)out,
        (void)scratch, (void)next, (void)next_bytes;
    abort(); /* unreachable: latent_amx_fits() is false here */
}

#endif
