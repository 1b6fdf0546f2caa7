/* Scalar reference dot kernels (the definition in dot.h) and the run-time choice of path. */
#include "dot.h"

#include <stdatomic.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include "dequant.h"
#include "float16.h"
#include "q4.h"
#include "q6.h"
#include "q8.h"
#include "types.h"

uint64_t dsq_dot_xsum_len(uint32_t type, uint64_t cols, uint32_t group)
{
    return type == DSQ_TYPE_Q4 && group ? cols / group : 0;
}

void dsq_dot_xsums(uint32_t type, const float *x, uint64_t cols, uint32_t group, float *xsum)
{
    const uint64_t ng = dsq_dot_xsum_len(type, cols, group);
    for (uint64_t g = 0; g < ng; g++) {
        float s = 0;
        for (uint32_t k = 0; k < group; k++)
            s += x[g * group + k];
        xsum[g] = s;
    }
}

float dsq_dot_row_ref(uint32_t type, const void *base, uint64_t rows, uint64_t cols, uint32_t group,
                      uint64_t r, const float *x, const float *xsum)
{
    float sum = 0;
    switch (type) {
    case DSQ_TYPE_F32: {
        const float *w = (const float *)base + r * cols;
        for (uint64_t k = 0; k < cols; k++)
            sum += w[k] * x[k];
        break;
    }
    case DSQ_TYPE_BF16: {
        const uint16_t *w = (const uint16_t *)base + r * cols;
        for (uint64_t k = 0; k < cols; k++)
            sum += dsq_bf16_to_f32(w[k]) * x[k];
        break;
    }
    case DSQ_TYPE_F16: {
        const uint16_t *w = (const uint16_t *)base + r * cols;
        for (uint64_t k = 0; k < cols; k++)
            sum += dsq_f16_to_f32(w[k]) * x[k];
        break;
    }
    case DSQ_TYPE_Q8: {
        const int8_t *q = (const int8_t *)base + r * cols;
        const uint16_t *d = dsq_q8_scales(base, rows, cols) + r * (cols / group);
        for (uint64_t g = 0; g < cols / group; g++) {
            float s = 0;
            for (uint32_t k = 0; k < group; k++)
                s += (float)q[g * group + k] * x[g * group + k];
            sum += dsq_f16_to_f32(d[g]) * s;
        }
        break;
    }
    case DSQ_TYPE_Q4: {
        const uint8_t *q = (const uint8_t *)base + r * cols / 2;
        const uint16_t *dm = dsq_q4_scales(base, rows, cols) + 2 * r * (cols / group);
        for (uint64_t g = 0; g < cols / group; g++) {
            const float *xg = x + g * group;
            const uint8_t *qg = q + g * group / 2;
            float s = 0;
            for (uint32_t k = 0; k < group; k += 2) { /* low nibble: even element */
                s += (float)(qg[k / 2] & 15) * xg[k];
                s += (float)(qg[k / 2] >> 4) * xg[k + 1];
            }
            float xs = 0;
            if (xsum)
                xs = xsum[g];
            else
                for (uint32_t k = 0; k < group; k++)
                    xs += xg[k];
            sum += dsq_f16_to_f32(dm[2 * g]) * s + dsq_f16_to_f32(dm[2 * g + 1]) * xs;
        }
        break;
    }
    case DSQ_TYPE_Q6: {
        const uint16_t *d = dsq_q6_scales(base, rows, cols) + r * (cols / group);
        for (uint64_t g = 0; g < cols / group; g++) {
            float s = 0;
            for (uint32_t k = 0; k < group; k++)
                s += (float)(dsq_q6_code(base, rows, cols, r, g * group + k) - 32) *
                     x[g * group + k];
            sum += dsq_f16_to_f32(d[g]) * s;
        }
        break;
    }
    default: /* unreachable: the reader refuses unknown types */
        break;
    }
    return sum;
}

enum { PATH_UNSET, PATH_SCALAR, PATH_AVX2 };
static atomic_int best_path = PATH_UNSET;
static atomic_bool force_ref;

bool dsq_dot_have_avx2(void)
{
#if defined(__x86_64__)
    /* asked once: CPUID traps to the hypervisor in a virtual machine, which made this check
     * cost more than a small model's matmul */
    static atomic_int known = -1;
    int have = atomic_load_explicit(&known, memory_order_relaxed);
    if (have < 0) {
        /* __builtin_cpu_supports checks that the OS saves the ymm registers; clang 14 knows no
         * "f16c" there, so that bit (CPUID leaf 1, ecx bit 29) is read directly */
        unsigned a, b, c, d;
        __builtin_cpu_init();
        have = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
               __get_cpuid(1, &a, &b, &c, &d) && (c >> 29 & 1);
        atomic_store_explicit(&known, have, memory_order_relaxed);
    }
    return have;
#else
    return false;
#endif
}

/* Racing first callers compute the same answer, so a relaxed store is enough. */
static int path(void)
{
    if (atomic_load_explicit(&force_ref, memory_order_relaxed))
        return PATH_SCALAR;
    int p = atomic_load_explicit(&best_path, memory_order_relaxed);
    if (p == PATH_UNSET) {
        p = dsq_dot_have_avx2() ? PATH_AVX2 : PATH_SCALAR;
        atomic_store_explicit(&best_path, p, memory_order_relaxed);
    }
    return p;
}

float dsq_dot_row(uint32_t type, const void *base, uint64_t rows, uint64_t cols, uint32_t group,
                  uint64_t r, const float *x, const float *xsum)
{
#if defined(__x86_64__)
    if (path() == PATH_AVX2)
        return dsq_dot_row_avx2(type, base, rows, cols, group, r, x, xsum);
#endif
    return dsq_dot_row_ref(type, base, rows, cols, group, r, x, xsum);
}

/* Here rather than in dequant.c: it takes the dot kernels' path (and their forced reference). */
void dsq_dequant_row_fast(uint32_t type, const void *base, uint64_t rows, uint64_t cols,
                          uint32_t group, uint64_t r, float *out)
{
#if defined(__x86_64__)
    if (path() == PATH_AVX2) {
        dsq_dequant_row_avx2(type, base, rows, cols, group, r, out);
        return;
    }
#endif
    dsq_dequant_row(type, base, rows, cols, group, r, out);
}

void dsq_dequant_rows_sum(uint32_t type, const void *base, uint64_t rows, uint64_t cols,
                          uint32_t group, uint64_t r0, int n, const float *x, float *y, float *row)
{
#if defined(__x86_64__)
    if (path() == PATH_AVX2) {
        dsq_dequant_rows_sum_avx2(type, base, rows, cols, group, r0, n, x, y);
        return;
    }
#endif
    memset(y, 0, cols * sizeof(float));
    for (int i = 0; i < n; i++) {
        dsq_dequant_row(type, base, rows, cols, group, r0 + (uint64_t)i, row);
        for (uint64_t k = 0; k < cols; k++)
            y[k] += x[i] * row[k];
    }
}

void dsq_dot_force_reference(bool on)
{
    atomic_store_explicit(&force_ref, on, memory_order_relaxed);
}

bool dsq_dot_use_avx2(void)
{
    return path() == PATH_AVX2;
}

const char *dsq_dot_path(void)
{
    return path() == PATH_AVX2 ? "avx2" : "scalar";
}
