/* The run-time choice of packed kernel (quant/qpack.h): which paths this CPU runs, asked once,
 * the one dsq_qpack_tile takes, and whether it stands in for the planar path. */
#include "qpack.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_once.h"

static bool cpu_has(dsq_qdot_path p)
{
#if defined(__x86_64__)
    switch (p) {
    case DSQ_QDOT_AVX512VNNI: /* the planar kernel's features, plus the byte ops of BW */
        __builtin_cpu_init();
        return dsq_qdot_have(p) && __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("avx512bw");
    case DSQ_QDOT_AVXVNNI:
    case DSQ_QDOT_AVX2: /* the same features as the planar kernels of these ISAs */
        return dsq_qdot_have(p);
    default:
        return false;
    }
#else
    (void)p;
    return false;
#endif
}

bool dsq_qpack_have_path(dsq_qdot_path p)
{
    static atomic_int known[DSQ_QDOT_N_PATHS];
    return dsq_cpu_once(known, cpu_has, p);
}

static atomic_int best = -1, forced = -1;

dsq_qdot_path dsq_qpack_current(void)
{
    const int f = atomic_load_explicit(&forced, memory_order_relaxed);
    if (f >= 0)
        return (dsq_qdot_path)f;
    int p = atomic_load_explicit(&best, memory_order_relaxed);
    if (p < 0) { /* racing first callers compute the same answer; the scalar path ends it */
        for (p = 0; p < DSQ_QDOT_SCALAR && !dsq_qpack_have_path((dsq_qdot_path)p); p++)
            ;
        atomic_store_explicit(&best, p, memory_order_relaxed);
    }
    return (dsq_qdot_path)p;
}

bool dsq_qpack_have(void)
{
    return dsq_qpack_current() != DSQ_QDOT_SCALAR;
}

void dsq_qpack_force(int p)
{
    atomic_store_explicit(&forced, p, memory_order_relaxed);
}

bool dsq_qpack_replaces_qdot(void)
{
    return dsq_qpack_have() && dsq_qpack_current() == dsq_qdot_current();
}

bool dsq_int8_kernels_select(const char *name)
{
    for (int p = 0; p < DSQ_QDOT_N_PATHS; p++) {
        const char *path = dsq_qdot_path_name((dsq_qdot_path)p);
        const size_t n = strlen(path);
        if (strncmp(name, path, n) != 0 || !dsq_qdot_have((dsq_qdot_path)p))
            continue;
        const bool planar_only = !strcmp(name + n, "-planar");
        if (name[n] && !planar_only)
            continue;
        if (!planar_only && p != DSQ_QDOT_SCALAR && !dsq_qpack_have_path((dsq_qdot_path)p))
            return false;
        dsq_qdot_force(p);
        dsq_qpack_force(planar_only || p == DSQ_QDOT_SCALAR ? DSQ_QDOT_SCALAR : p);
        return true;
    }
    return false;
}

void dsq_qpack_tile(uint32_t type, const void *packed, uint64_t rows, uint64_t cols,
                    uint32_t group, uint64_t b, const dsq_qx *x, int nt, float *out,
                    size_t ostride)
{
    switch (dsq_qpack_current()) {
#if defined(__x86_64__)
    case DSQ_QDOT_AVX512VNNI:
        dsq_qpack_tile_avx512vnni(type, packed, rows, cols, group, b, x, nt, out, ostride);
        return;
    case DSQ_QDOT_AVXVNNI:
        dsq_qpack_tile_avxvnni(type, packed, rows, cols, group, b, x, nt, out, ostride);
        return;
    case DSQ_QDOT_AVX2:
        dsq_qpack_tile_avx2(type, packed, rows, cols, group, b, x, nt, out, ostride);
        return;
#endif
    default:
        abort(); /* unreachable: callers check dsq_qpack_have() */
    }
}
