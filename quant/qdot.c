/* Activation rounding, the scalar reference integer dot (quant/qdot.h) and the run-time choice
 * of path. */
#include "qdot.h"

#include <stdatomic.h>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include "cpu_once.h"
#include "float16.h"
#include "q4.h"
#include "q6.h"
#include "q8.h"
#include "types.h"

uint64_t dsq_qx_bytes(uint64_t cols, uint32_t group)
{
    const uint64_t ng = cols / group;
    return (cols + 3) / 4 * 4 + ng * (sizeof(float) + sizeof(int32_t));
}

void dsq_qx_quantize_ref(uint32_t type, const float *x, uint64_t cols, uint32_t group,
                         dsq_qx out)
{
    for (uint64_t g = 0; g < cols / group; g++) {
        const float *xg = x + g * group;
        float amax = 0;
        for (uint32_t k = 0; k < group; k++) { /* no libm calls: this loop vectorizes */
            const float a = xg[k] < 0 ? -xg[k] : xg[k];
            amax = a > amax ? a : amax;
        }
        const float d = amax / 127, inv = amax > 0 ? 127 / amax : 0;
        int8_t *q = out.q + g * group;
        int32_t sum = 0;
        for (uint32_t k = 0; k < group; k++) {
            const uint64_t at = dsq_qx_nibble_order(type) ? dsq_qx_q4_slot(k, group) : k;
            /* round half away from zero; |v| <= 127 since |x| <= amax */
            const float v = xg[k] * inv;
            const int c = (int)(v < 0 ? v - 0.5f : v + 0.5f);
            q[at] = (int8_t)c;
            sum += c;
        }
        out.d[g] = d;
        out.s[g] = sum;
    }
}

static float ref_row(uint32_t type, const void *base, uint64_t rows, uint64_t cols,
                     uint32_t group, uint64_t r, dsq_qx x)
{
    const uint64_t ng = cols / group;
    float sum = 0;
    if (type == DSQ_TYPE_Q8) {
        const int8_t *q = (const int8_t *)base + r * cols;
        const uint16_t *d = dsq_q8_scales(base, rows, cols) + r * ng;
        for (uint64_t g = 0; g < ng; g++) {
            int32_t s = 0;
            for (uint32_t k = 0; k < group; k++)
                s += q[g * group + k] * x.q[g * group + k];
            sum += dsq_f16_to_f32(d[g]) * x.d[g] * (float)s;
        }
    } else if (type == DSQ_TYPE_Q6) {
        const uint16_t *d = dsq_q6_scales(base, rows, cols) + r * ng;
        for (uint64_t g = 0; g < ng; g++) {
            int32_t s = 0;
            for (uint32_t k = 0; k < group; k++) /* code of element k at its q4-order slot */
                s += (dsq_q6_code(base, rows, cols, r, g * group + k) - 32) *
                     x.q[g * group + dsq_qx_q4_slot(k, group)];
            sum += dsq_f16_to_f32(d[g]) * x.d[g] * (float)s;
        }
    } else {
        const uint8_t *q = (const uint8_t *)base + r * cols / 2;
        const uint16_t *dm = dsq_q4_scales(base, rows, cols) + 2 * r * ng;
        const uint32_t block = group % 64 ? 32 : 64;
        for (uint64_t g = 0; g < ng; g++) {
            int32_t s = 0;
            for (uint32_t k = 0; k < group; k += block) { /* evens low, odds high */
                const uint8_t *b = q + (g * group + k) / 2;
                const int8_t *xq = x.q + g * group + k;
                for (uint32_t j = 0; j < block / 2; j++)
                    s += (b[j] & 15) * xq[j] + (b[j] >> 4) * xq[block / 2 + j];
            }
            sum += dsq_f16_to_f32(dm[2 * g]) * x.d[g] * (float)s +
                   dsq_f16_to_f32(dm[2 * g + 1]) * x.d[g] * (float)x.s[g];
        }
    }
    return sum;
}

void dsq_qdot_tile_ref(uint32_t type, const void *base, uint64_t rows, uint64_t cols,
                       uint32_t group, uint64_t r0, int nr, const dsq_qx *x, int nt, float *out,
                       size_t ostride)
{
    for (int t = 0; t < nt; t++)
        for (int i = 0; i < nr; i++)
            out[(size_t)t * ostride + (size_t)i] =
                ref_row(type, base, rows, cols, group, r0 + (uint64_t)i, x[t]);
}

static bool cpu_has(dsq_qdot_path p);

bool dsq_qdot_have(dsq_qdot_path p)
{
    static atomic_int known[DSQ_QDOT_N_PATHS];
    return dsq_cpu_once(known, cpu_has, p);
}

static bool cpu_has(dsq_qdot_path p)
{
#if defined(__x86_64__)
    unsigned a, b, c, d;
    __builtin_cpu_init();
    /* F16C: CPUID leaf 1, ecx bit 29 (clang 14 has no "f16c" in __builtin_cpu_supports) */
    const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                      __get_cpuid(1, &a, &b, &c, &d) && (c >> 29 & 1);
    switch (p) {
    case DSQ_QDOT_AVX512VNNI:
        return avx2 && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512vnni");
    case DSQ_QDOT_AVXVNNI: /* CPUID leaf 7 subleaf 1, eax bit 4; the OS state is AVX2's */
        return avx2 && __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a >> 4 & 1);
    case DSQ_QDOT_AVX2:
        return avx2;
    default:
        return p == DSQ_QDOT_SCALAR;
    }
#else
    return p == DSQ_QDOT_SCALAR;
#endif
}

const char *dsq_qdot_path_name(dsq_qdot_path p)
{
    static const char *names[] = {"avx512vnni", "avxvnni", "avx2", "scalar"};
    return p < DSQ_QDOT_N_PATHS ? names[p] : "?";
}

static atomic_int best = -1, forced = -1;

dsq_qdot_path dsq_qdot_current(void)
{
    const int f = atomic_load_explicit(&forced, memory_order_relaxed);
    if (f >= 0)
        return (dsq_qdot_path)f;
    int p = atomic_load_explicit(&best, memory_order_relaxed);
    if (p < 0) { /* racing first callers compute the same answer */
        for (p = 0; !dsq_qdot_have((dsq_qdot_path)p); p++)
            ;
        atomic_store_explicit(&best, p, memory_order_relaxed);
    }
    return (dsq_qdot_path)p;
}

void dsq_qdot_force(int p)
{
    atomic_store_explicit(&forced, p, memory_order_relaxed);
}

void dsq_qdot_tile(uint32_t type, const void *base, uint64_t rows, uint64_t cols, uint32_t group,
                   uint64_t r0, int nr, const dsq_qx *x, int nt, float *out, size_t ostride)
{
    switch (dsq_qdot_current()) {
#if defined(__x86_64__)
    case DSQ_QDOT_AVX512VNNI:
        dsq_qdot_tile_avx512vnni(type, base, rows, cols, group, r0, nr, x, nt, out, ostride);
        return;
    case DSQ_QDOT_AVXVNNI:
        dsq_qdot_tile_avxvnni(type, base, rows, cols, group, r0, nr, x, nt, out, ostride);
        return;
    case DSQ_QDOT_AVX2:
        dsq_qdot_tile_avx2(type, base, rows, cols, group, r0, nr, x, nt, out, ostride);
        return;
#endif
    default:
        dsq_qdot_tile_ref(type, base, rows, cols, group, r0, nr, x, nt, out, ostride);
    }
}

bool dsq_qx_have_avx512(void)
{
#if defined(__x86_64__)
    __builtin_cpu_init();
    return dsq_qdot_have(DSQ_QDOT_AVX2) && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
#else
    return false;
#endif
}

/* The rounding follows the kernel path (so forcing the scalar kernels gives the whole scalar
 * reference); AVX-512 rounding where the 512-bit kernel runs and the CPU has it. */
void dsq_qx_quantize(uint32_t type, const float *x, uint64_t cols, uint32_t group, dsq_qx out)
{
#if defined(__x86_64__)
    static atomic_int have512 = -1; /* CPUID can trap in a VM: asked once */
    const dsq_qdot_path p = dsq_qdot_current();
    if (p != DSQ_QDOT_SCALAR) {
        int h = atomic_load_explicit(&have512, memory_order_relaxed);
        if (h < 0) {
            h = dsq_qx_have_avx512();
            atomic_store_explicit(&have512, h, memory_order_relaxed);
        }
        if (p == DSQ_QDOT_AVX512VNNI && h)
            dsq_qx_quantize_avx512(type, x, cols, group, out);
        else
            dsq_qx_quantize_avx2(type, x, cols, group, out);
        return;
    }
#endif
    dsq_qx_quantize_ref(type, x, cols, group, out);
}

void dsq_qdot_rows(uint32_t type, const void *base, uint64_t rows, uint64_t cols, uint32_t group,
                   uint64_t r0, int nr, dsq_qx x, float *out)
{
    dsq_qdot_tile(type, base, rows, cols, group, r0, nr, &x, 1, out, 0);
}
