/* quant/qdot_x86.h built for AVX-512 VNNI with VL (EVEX vpdpbusd on 256-bit registers, of which
 * there are 32: q8 tiles of four tokens). */
#if defined(__x86_64__)
#define TARGET __attribute__((target("avx512vnni,avx512vl,avx2,fma,f16c")))
#define QDOT_NAME dsq_qdot_tile_avx512vnni
#define DOT_U8S8(acc, u, s) _mm256_dpbusd_epi32(acc, u, s)
#define QDOT_NO_SATURATION
#define QDOT_MAX_NT 4 /* q8: 16 integer sums, 4 weight sums, the weights and activations */
#include "qdot_x86.h"
#endif
