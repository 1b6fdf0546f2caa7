/* The packed bf16 kernel (quant/bf16pack.h) on 256-bit registers, for CPUs without AVX-512: a
 * 64-byte chunk is two halves, rows 0-7 and rows 8-15 of the block, one register each. */
#include "bf16pack.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define TARGET __attribute__((target("avx2,fma")))

enum { ROWS = 16 };

/* Tokens one pass over a block holds: two accumulators each (the block's two halves), plus two
 * widened lines and a broadcast, in 16 registers. */
#define PASS_TOKENS 6
#define EACH_TOKEN(X) X(0) X(1) X(2) X(3) X(4) X(5)

/* One block (16 rows) by nt tokens, nt <= PASS_TOKENS (a constant once inlined, so the tests
 * t < nt fold away). Each line is widened once for every token and each broadcast feeds two
 * fmas; each lane keeps one sum in k order, as the AVX-512 kernel does. The accumulators are
 * named variables: as an array, gcc kept some in memory with six tokens, and the store-reload
 * in every fma chain halved the speed (Zen 3, one thread, in cache: 29 against 39-41
 * GMAC/s). */
TARGET static inline __attribute__((always_inline)) void pass(const uint8_t *chunks,
                                                              uint64_t cols,
                                                              const float *const *x, float *out,
                                                              size_t ostride, const int nt)
{
#define DECLARE(t)                                                                                 \
    __m256 lo##t = _mm256_setzero_ps(), hi##t = _mm256_setzero_ps();                              \
    const float *x##t = x[(t) < nt ? (t) : 0];
    EACH_TOKEN(DECLARE)
    for (uint64_t c = 0; c < cols / 2; c++) {
        const __m256i v0 = _mm256_loadu_si256((const void *)(chunks + 64 * c));
        const __m256i v1 = _mm256_loadu_si256((const void *)(chunks + 64 * c + 32));
        /* a bf16 is the top half of its f32: element 2c (low) moves up, 2c + 1 is masked */
        const __m256 e0 = _mm256_castsi256_ps(_mm256_slli_epi32(v0, 16));
        const __m256 e1 = _mm256_castsi256_ps(_mm256_slli_epi32(v1, 16));
#define STEP(t, w0, w1, k)                                                                         \
    if ((t) < nt) {                                                                                \
        const __m256 xv = _mm256_broadcast_ss(x##t + (k));                                         \
        lo##t = _mm256_fmadd_ps(w0, xv, lo##t);                                                    \
        hi##t = _mm256_fmadd_ps(w1, xv, hi##t);                                                    \
    }
#define STEP_EVEN(t) STEP(t, e0, e1, 2 * c)
        EACH_TOKEN(STEP_EVEN)
        /* the high element with its low half cleared by two shifts rather than a mask, which
         * would hold the register the sixth token's accumulators need */
        const __m256 o0 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_srli_epi32(v0, 16), 16));
        const __m256 o1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_srli_epi32(v1, 16), 16));
#define STEP_ODD(t) STEP(t, o0, o1, 2 * c + 1)
        EACH_TOKEN(STEP_ODD)
    }
#define STORE(t)                                                                                   \
    if ((t) < nt) {                                                                                \
        _mm256_storeu_ps(out + (size_t)(t) * ostride, lo##t);                                      \
        _mm256_storeu_ps(out + (size_t)(t) * ostride + 8, hi##t);                                  \
    }
    EACH_TOKEN(STORE)
}

/* Each block by the tokens in passes of up to six: the block (32 KB at 1,024 columns) is read
 * from memory once and from L2 by the later passes. */
TARGET void dsq_bf16pack_tile_avx2(const void *packed, uint64_t cols, uint64_t b, int nb,
                                   const float *const *x, int nt, float *out, size_t ostride)
{
    for (int k = 0; k < nb; k++) {
        const uint8_t *chunks = (const uint8_t *)packed + (b + (uint64_t)k) * ROWS * cols * 2;
        float *o = out + (b + (uint64_t)k) * ROWS;
        for (int t = 0; t < nt; t += PASS_TOKENS) {
            const float *const *xt = x + t;
            float *ot = o + (size_t)t * ostride;
            switch (nt - t < PASS_TOKENS ? nt - t : PASS_TOKENS) {
            case 6: pass(chunks, cols, xt, ot, ostride, 6); break;
            case 5: pass(chunks, cols, xt, ot, ostride, 5); break;
            case 4: pass(chunks, cols, xt, ot, ostride, 4); break;
            case 3: pass(chunks, cols, xt, ot, ostride, 3); break;
            case 2: pass(chunks, cols, xt, ot, ostride, 2); break;
            default: pass(chunks, cols, xt, ot, ostride, 1); break;
            }
        }
    }
}
#endif
