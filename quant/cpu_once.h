/* A question about the CPU, per kernel path, asked once: CPUID traps to the hypervisor in a
 * virtual machine, and asking on every matmul once cost more than a small model's matmul. */
#ifndef DSQ_CPU_ONCE_H
#define DSQ_CPU_ONCE_H

#include <stdatomic.h>
#include <stdbool.h>

#include "qdot.h"

/* ask(p), remembered in known[p] (0 not yet asked, 1 no, 2 yes); racing first callers store
 * the same answer. */
static inline bool dsq_cpu_once(atomic_int known[DSQ_QDOT_N_PATHS], bool (*ask)(dsq_qdot_path),
                                dsq_qdot_path p)
{
    if ((unsigned)p >= DSQ_QDOT_N_PATHS)
        return false;
    int have = atomic_load_explicit(&known[p], memory_order_relaxed);
    if (!have) {
        have = ask(p) ? 2 : 1;
        atomic_store_explicit(&known[p], have, memory_order_relaxed);
    }
    return have == 2;
}

#endif
