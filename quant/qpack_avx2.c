/* quant/qpack_x86_256.h built for AVX2: maddubs into int16, madd into int32 (the header says
 * why neither saturates). */
#if defined(__x86_64__)
#define TARGET __attribute__((target("avx2,fma,f16c")))
#define QPACK_NAME dsq_qpack_tile_avx2
#include "qpack_x86_256.h"
#endif
