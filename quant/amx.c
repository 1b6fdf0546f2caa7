/* The AMX checks of quant/amx.h. */
#include "amx.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "dot.h"
#include "qpack.h"

#if defined(__x86_64__) && defined(__linux__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

enum { AMX_BF16 = 1 << 0, AMX_INT8 = 1 << 1, AVX512_BF16 = 1 << 2 };

/* What CPUID offers and the kernel grants, as AMX_* bits (0 without the tile state). */
static int ask(void)
{
    const char *env = getenv("DSQ_AMX");
    if (env && strcmp(env, "0") == 0)
        return 0;
    unsigned a, b, c, d;
    /* CPUID 7.0 EDX: 22 AMX-BF16, 24 AMX-TILE, 25 AMX-INT8; 7.1 EAX 5: AVX512-BF16 */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d >> 24 & 1))
        return 0;
    int have = (d >> 22 & 1 ? AMX_BF16 : 0) | (d >> 25 & 1 ? AMX_INT8 : 0);
    if (__get_cpuid_count(7, 1, &a, &b, &c, &d) && (a >> 5 & 1))
        have |= AVX512_BF16;
    if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0)
        return 0;
    return have;
}

static int features(void)
{
    static atomic_int known = -1;
    int have = atomic_load_explicit(&known, memory_order_relaxed);
    if (have < 0) { /* racing first callers store the same answer */
        have = ask();
        atomic_store_explicit(&known, have, memory_order_relaxed);
    }
    return have;
}

bool dsq_amx_have_bf16(void)
{
    return (features() & (AMX_BF16 | AVX512_BF16)) == (AMX_BF16 | AVX512_BF16) &&
           dsq_dot_have_avx512();
}

bool dsq_amx_have_int8(void)
{
    return (features() & AMX_INT8) && dsq_qpack_have_path(DSQ_QDOT_AVX512VNNI);
}

#else

bool dsq_amx_have_bf16(void)
{
    return false;
}

bool dsq_amx_have_int8(void)
{
    return false;
}

#endif
