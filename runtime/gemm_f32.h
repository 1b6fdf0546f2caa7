/* A small fp32 matrix product for attention (scores = Q K^T, output = P V), where the
 * operands are activations and the cache rather than weights: row-major, any strides. */
#ifndef DSQ_GEMM_F32_H
#define DSQ_GEMM_F32_H

#include <stdbool.h>
#include <stddef.h>

/* C = A B (or C += A B with accumulate): A (m, k) with row stride lda, B (k, n) with row
 * stride ldb, C (m, n) with row stride ldc. Each C element is a sum over k in order of fp32
 * products, accumulated in fp32 (fma where the CPU has it): within k u sum |a b| of the exact
 * sum, u = 2^-24. Uses AVX-512 or AVX2 where the CPU has them. */
void gemm_f32(int m, int n, int k, const float *a, size_t lda, const float *b, size_t ldb,
              float *c, size_t ldc, bool accumulate);

/* C = A B^T (or C += A B^T): A (m, k) with row stride lda, B (n, k) with row stride ldb, so
 * C[i][j] is the dot product of row i of A and row j of B. Same bound as gemm_f32 (a different
 * order of the same sum). */
void gemm_f32_nt(int m, int n, int k, const float *a, size_t lda, const float *b, size_t ldb,
                 float *c, size_t ldc, bool accumulate);

/* The plain loops of the same; the reference tests hold the fast paths to. */
void gemm_f32_nt_ref(int m, int n, int k, const float *a, size_t lda, const float *b,
                     size_t ldb, float *c, size_t ldc, bool accumulate);
void gemm_f32_ref(int m, int n, int k, const float *a, size_t lda, const float *b, size_t ldb,
                  float *c, size_t ldc, bool accumulate);

#if defined(__x86_64__)
/* The two vector paths, for the tests; call only where dsq_dot_have_avx512() or
 * dsq_dot_have_avx2() says the CPU runs them. */
void gemm_f32_avx512(int m, int n, int k, const float *a, size_t lda, const float *b,
                     size_t ldb, float *c, size_t ldc, bool accumulate);
void gemm_f32_avx2(int m, int n, int k, const float *a, size_t lda, const float *b, size_t ldb,
                   float *c, size_t ldc, bool accumulate);
void gemm_f32_nt_avx512(int m, int n, int k, const float *a, size_t lda, const float *b,
                        size_t ldb, float *c, size_t ldc, bool accumulate);
void gemm_f32_nt_avx2(int m, int n, int k, const float *a, size_t lda, const float *b,
                      size_t ldb, float *c, size_t ldc, bool accumulate);
#endif

#endif
