/* Small fp32 operations of the forward pass that do not touch weights. */
#ifndef DSQ_OPS_H
#define DSQ_OPS_H

/* out = x / sqrt(mean(x^2) + eps) * weight, over n elements (out may alias x). */
void ops_rmsnorm(float *out, const float *x, const float *weight, int n, float eps);

/* In-place softmax over n elements. */
void ops_softmax(float *x, int n);

/* In-place softmax of scale * x over n elements (scale > 0), for attention scores: where the
 * CPU has AVX2, e^x comes from a polynomial in 8 lanes, within 3 fp32 steps of expf down to
 * x = -87 and 0 below (terms under 2^-125 of the largest, which is 1). The router keeps
 * ops_softmax, whose libm expf decides near-ties exactly as before. */
void ops_scaled_softmax(float *x, int n, float scale);

/* The softmax above before its division, for attention taken in pieces: x[i] = e^(scale x[i] -
 * max), max the largest scale x[i] (-inf when n is 0), stored in *max; returns the sum of the
 * x[i] (0 when n is 0). Same exponential as ops_scaled_softmax. */
float ops_scaled_exp(float *x, int n, float scale, float *max);

/* x[i] *= by over n elements */
void ops_scale(float *x, int n, float by);

/* gate[i] = silu(gate[i]) * up[i] */
void ops_swiglu(float *gate, const float *up, int n);

/* sum of a[i] * b[i] over n elements, in fp32 (eight-lane partial sums where the CPU has AVX2,
 * so the order differs from a loop's) */
float ops_dot(const float *a, const float *b, int n);

/* y[i] += a * x[i] over n elements */
void ops_axpy(float *y, float a, const float *x, int n);

#endif
