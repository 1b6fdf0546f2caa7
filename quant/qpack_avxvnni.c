/* quant/qpack_x86_256.h built for AVX-VNNI (VEX-encoded vpdpbusd on 256-bit registers). */
#if defined(__x86_64__)
#define TARGET __attribute__((target("avxvnni,avx2,fma,f16c")))
#define QPACK_NAME dsq_qpack_tile_avxvnni
#define QPACK_DPBUSD
#include "qpack_x86_256.h"
#endif
