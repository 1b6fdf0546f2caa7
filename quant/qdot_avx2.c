/* quant/qdot_x86.h built for AVX2: u8 * s8 pairs by maddubs into int16 (at most
 * 2 * 127 * 127, no saturation), pairs of those by madd into int32. */
#if defined(__x86_64__)
#define TARGET __attribute__((target("avx2,fma,f16c")))
#define QDOT_NAME dsq_qdot_tile_avx2
#define DOT_U8S8(acc, u, s)                                                                        \
    _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)))
#include "qdot_x86.h"
#endif
