/* Reference q8/q6/q4 quantizers (quantize.h): the plain choice, and a per-group search that
 * scores candidate scales (q8, q6) or (scale, minimum) pairs (q4), each with its least-squares
 * refit, by the importance-weighted squared error of the values exactly as dsq_dequant_row
 * rebuilds them (f16 scales), and keeps absmax unless a candidate is strictly better.
 *
 * Inputs must be finite: the converter (convert/tensor_sink.c) refuses NaN and infinity before
 * quantizing. Non-finite input is a caller error; it gives codes in range and no undefined
 * behaviour, but meaningless scales. Scales beyond the f16 range saturate to +-65504.
 * Importance weights must be >= 0; columns of weight 0 may be sacrificed.
 *
 * Determinism: partial sums are kept in LANES fixed lanes and combined in a fixed order, so
 * vectorization cannot change a result, and FMA contraction is off (below), so the bytes are
 * the same at any optimization level and instruction set (not under -ffast-math, or clang's
 * -ffp-contract=fast, which overrides the pragma). */
#include "quantize.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "float16.h"
#include "q6.h"
#include "types.h"

/* a * b + c must round twice, as dsq_dequant_row computes it, whatever -ffp-contract says */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#define LANES 4 /* one 128-bit vector; groups are multiples of 32 */

/* Search sizes, chosen by measurement (tests/test_quantize.c prints error and speed): finer
 * grids gain under 0.5% of the error at several times the cost. */
#define Q8_UP 2       /* q8 and q6: f16 scales from 2 steps above the plain one ... */
#define Q8_DOWN 12    /* ... to 12 below (about 1.2% smaller) */
#define Q8_REFITS 2   /* least-squares refits of the winner */
#define Q4_STEPS 6    /* q4: range ends moved in by 0, 2, ..., 10% of the range, 6 x 6 pairs */
#define Q4_CLIP 0.10f
#define Q4_REFITS 2

/* f16 bits of f, saturating at +-65504 instead of overflowing to infinity. */
static uint16_t f16_sat(float f)
{
    uint16_t h = dsq_f32_to_f16(f);
    if ((h & 0x7fffu) == 0x7c00u)
        h = (uint16_t)((h & 0x8000u) | 0x7bffu);
    return h;
}

/* The float an f16 scale stands for, as dsq_dequant_row reads it. */
static float f16r(float f)
{
    return dsq_f16_to_f32(f16_sat(f));
}

/* Nearest integer (ties to even) of v, clamped to [lo, hi], as a float. For |v| < 2^22 the
 * sum v + 1.5 * 2^23 holds round(v) in its low mantissa bits; larger |v|, infinities and NaN
 * land beyond the clamp (NaN per its sign). Integer clamping keeps the loops free of branches,
 * so they vectorize, and gives the same result on every machine. */
static inline float round_clamp(float v, int32_t lo, int32_t hi)
{
    const float t = v + 12582912.0f;
    int32_t i;
    memcpy(&i, &t, 4);
    const int32_t a = 0x4b400000 + lo, b = 0x4b400000 + hi;
    i = i < a ? a : i;
    i = i > b ? b : i;
    return (float)(i - 0x4b400000);
}

/* LANES floats processed together (GCC/Clang vector extensions: SIMD where the target has it,
 * else scalar code). Each lane is plain IEEE single arithmetic, the same as the scalar path. */
typedef float vf __attribute__((vector_size(4 * LANES)));
typedef int32_t vi __attribute__((vector_size(4 * LANES)));

static inline vf vload(const float *p)
{
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* round_clamp on every lane, bit for bit. */
static inline vf vround_clamp(vf v, int32_t lo, int32_t hi)
{
    const vf t = v + 12582912.0f;
    vi i;
    memcpy(&i, &t, sizeof i);
    const vi a = (vi){0} + (0x4b400000 + lo), b = (vi){0} + (0x4b400000 + hi);
    vi m = i < a;
    i = (a & m) | (i & ~m);
    m = i > b;
    i = (b & m) | (i & ~m);
    return __builtin_convertvector(i - 0x4b400000, vf);
}

/* The lanes summed in a fixed order. */
static inline double lane_sum(vf v)
{
    float a[LANES];
    memcpy(a, &v, sizeof a);
    return ((double)a[0] + a[1]) + ((double)a[2] + a[3]);
}

/* Weight block k of a group: importance or, for NULL, ones (exact, so NULL and all-ones give
 * the same bytes). */
static inline vf wblock(const float *w, uint32_t k)
{
    return w ? vload(w + k) : (vf){0} + 1.0f;
}

/* ---- q8 and q6: symmetric codes in [lo, hi] ---- */

static inline float sym_code(float x, float inv, int32_t lo, int32_t hi)
{
    return round_clamp(x * inv, lo, hi);
}

/* Weighted squared error of scale d (an f16 value) in double, exactly as dequantized. */
static double sym_error(const float *x, const float *w, uint32_t G, float d, int32_t lo, int32_t hi)
{
    const float inv = d != 0 ? 1.0f / d : 0.0f;
    double e = 0;
    for (uint32_t k = 0; k < G; k++) {
        const float xh = d * sym_code(x[k], inv, lo, hi);
        const double r = (double)x[k] - (double)xh;
        e += (double)(w ? w[k] : 1.0f) * r * r;
    }
    return e;
}

/* Scale d0 (an f16 value) with its codes: the error estimate of d0 and of the f16 least-squares
 * scale for the same codes. Returns that scale in *d_ls and its error estimate. */
static double sym_candidate(const float *x, const float *w, uint32_t G, float d0, int32_t lo,
                            int32_t hi, double *e0, float *d_ls)
{
    const float inv = 1.0f / d0;
    vf ee = {0}, er = {0}, qq = {0};
    for (uint32_t k = 0; k < G; k += LANES) {
        const vf xk = vload(x + k), wk = wblock(w, k);
        const vf q = vround_clamp(xk * inv, lo, hi);
        const vf e = xk - d0 * q;
        const vf we = wk * e;
        ee += we * e;
        er += we * q;
        qq += wk * q * q;
    }
    /* E(d0 + t) = E0 - 2 t sum(w e q) + t^2 sum(w q^2): no cancellation of large sums */
    const double E0 = lane_sum(ee), Ser = lane_sum(er), Sqq = lane_sum(qq);
    *e0 = E0;
    *d_ls = d0;
    if (!(Sqq > 0))
        return E0;
    const float d1 = f16r((float)(d0 + Ser / Sqq));
    if (!(d1 * d0 > 0)) /* the refit keeps the sign of the scale */
        return E0;
    const double t = (double)d1 - d0;
    *d_ls = d1;
    return E0 - 2 * t * Ser + t * t * Sqq;
}

/* One group's scale, and its codes in [lo, hi] when codes is not NULL; returns the scale as a
 * float. With lo = -hi (q8) the scale is positive, amax / hi.
 * With lo = -hi - 1 (q6) the element of largest magnitude goes to lo, the one code without a
 * mirror: the scale is that element / lo, negative when the element is positive. */
static float sym_group(const float *x, const float *w, uint32_t G, bool search, int32_t lo,
                       int32_t hi, int8_t *codes, uint16_t *scale)
{
    float amax = 0, amax_w = 0; /* over all elements; over those with weight > 0 */
    float xmax = 0, xmax_w = 0; /* the elements with those magnitudes, signed */
    for (uint32_t k = 0; k < G; k++) {
        const float a = fabsf(x[k]);
        if (a > amax) {
            amax = a;
            xmax = x[k];
        }
        if ((!w || w[k] > 0) && a > amax_w) {
            amax_w = a;
            xmax_w = x[k];
        }
    }
    const bool mirrored = lo == -hi;
    uint16_t h = f16_sat(mirrored ? amax / (float)hi : xmax / (float)lo);
    float d = dsq_f16_to_f32(h);
    if (search && d != 0) {
        /* At 6 and 8 bits clipping seldom pays; what does is a scale a few f16 steps off the
         * plain one that puts the codes nearer the values. Candidates: the f16 scales from
         * Q8_UP steps above to Q8_DOWN steps below that of the values that count (weight > 0),
         * each with its least-squares refit. */
        const uint16_t hb = f16_sat(mirrored ? (amax_w > 0 ? amax_w : amax) / (float)hi
                                             : (amax_w > 0 ? xmax_w : xmax) / (float)lo);
        const uint16_t sign = hb & 0x8000u;
        const int mag = hb & 0x7fff;
        float gd = 0, d_ls;
        double ge = INFINITY, e0;
        for (int i = -Q8_UP; i <= Q8_DOWN; i++) {
            if (mag - i <= 0 || mag - i >= 0x7c00)
                continue;
            const float di = dsq_f16_to_f32((uint16_t)(sign | (mag - i)));
            const double e1 = sym_candidate(x, w, G, di, lo, hi, &e0, &d_ls);
            if (e0 < ge) {
                ge = e0;
                gd = di;
            }
            if (e1 < ge) {
                ge = e1;
                gd = d_ls;
            }
        }
        /* the estimate kept the codes fixed: rescore exactly with fresh codes, then refit to
         * those codes and rescore, Q8_REFITS times or until the fit stops moving; a candidate
         * is kept only if strictly better than the plain scale and those before it */
        double best = sym_error(x, w, G, d, lo, hi);
        for (int r = 0; gd != 0; r++) {
            const double e = sym_error(x, w, G, gd, lo, hi);
            if (e < best) {
                best = e;
                d = gd;
            }
            if (r == Q8_REFITS)
                break;
            sym_candidate(x, w, G, gd, lo, hi, &e0, &d_ls);
            if (d_ls == gd)
                break;
            gd = d_ls;
        }
        h = f16_sat(d);
    }
    *scale = h;
    const float inv = d != 0 ? 1.0f / d : 0.0f;
    for (uint32_t k = 0; codes && k < G; k++)
        codes[k] = (int8_t)sym_code(x[k], inv, lo, hi);
    return d;
}

/* The q6 codes of G elements at scale d (q in [-32, 31], as sym_group rounds them) into the
 * row's planes as u = q + 32: nibbles at lo (G / 2 bytes), top bits at hi (G / 4 bytes, in
 * quant/q6.h's order). */
static void q6_store(const float *x, uint32_t G, float d, uint8_t *lo, uint8_t *hi)
{
    const float inv = d != 0 ? 1.0f / d : 0.0f;
    memset(hi, 0, G / 4);
    for (uint32_t k = 0; k < G; k++) {
        const int u = (int)sym_code(x[k], inv, -32, 31) + 32;
        lo[k / 2] = (uint8_t)((k & 1) ? (lo[k / 2] & 15) | (u & 15) << 4 : u & 15);
        uint64_t byte;
        int shift;
        dsq_q6_high_slot(k, &byte, &shift);
        hi[byte] |= (uint8_t)((u >> 4) << shift);
    }
}

/* ---- q4 ---- */

static inline float q4_code(float x, float m, float inv)
{
    return round_clamp((x - m) * inv, 0, 15);
}

static inline float q4_value(float d, float q, float m)
{
    const float t = d * q; /* two roundings, as dsq_dequant_row computes d * q + m */
    return t + m;
}

static double q4_error(const float *x, const float *w, uint32_t G, float d, float m)
{
    const float inv = d != 0 ? 1.0f / d : 0.0f;
    double e = 0;
    for (uint32_t k = 0; k < G; k++) {
        const double r = (double)x[k] - (double)q4_value(d, q4_code(x[k], m, inv), m);
        e += (double)(w ? w[k] : 1.0f) * r * r;
    }
    return e;
}

/* (d0, m0) (f16 values, d0 > 0) with their codes: returns the smaller error estimate of
 * (d0, m0) and of the f16-rounded least-squares (d, m) for the same codes, that pair in *d, *m. */
static double q4_candidate(const float *x, const float *w, uint32_t G, float S1, float d0,
                           float m0, float *d, float *m)
{
    const float inv = 1.0f / d0;
    vf ee = {0}, er = {0}, es = {0}, qq = {0}, q1 = {0};
    for (uint32_t k = 0; k < G; k += LANES) {
        const vf xk = vload(x + k), wk = wblock(w, k);
        const vf q = vround_clamp((xk - m0) * inv, 0, 15);
        const vf e = xk - (d0 * q + m0);
        const vf we = wk * e, wq = wk * q;
        ee += we * e;
        er += we * q;
        es += we;
        qq += wq * q;
        q1 += wq;
    }
    /* With residuals e at (d0, m0) and t = (d - d0, m - m0):
     * E(t) = E0 - 2 (t_d Ser + t_m Se) + t_d^2 Sqq + 2 t_d t_m Sq + t_m^2 S1. */
    const double E0 = lane_sum(ee), Ser = lane_sum(er), Se = lane_sum(es);
    const double Sqq = lane_sum(qq), Sq = lane_sum(q1);
    *d = d0;
    *m = m0;
    const double det = Sqq * S1 - Sq * Sq;
    if (!(det > 0))
        return E0;
    const float d1 = f16r((float)(d0 + (Ser * S1 - Sq * Se) / det));
    const float m1 = f16r((float)(m0 + (Sqq * Se - Sq * Ser) / det));
    if (!(d1 > 0))
        return E0;
    const double td = (double)d1 - d0, tm = (double)m1 - m0;
    const double E1 =
        E0 - 2 * (td * Ser + tm * Se) + td * td * Sqq + 2 * td * tm * Sq + tm * tm * S1;
    if (!(E1 < E0))
        return E0;
    *d = d1;
    *m = m1;
    return E1;
}

static void q4_group(const float *x, const float *w, uint32_t G, bool search, uint8_t *codes,
                     uint16_t *dm)
{
    float mn = x[0], mx = x[0], mn_w = INFINITY, mx_w = -INFINITY, S1 = 0;
    for (uint32_t k = 0; k < G; k++) {
        mn = x[k] < mn ? x[k] : mn;
        mx = x[k] > mx ? x[k] : mx;
        if (!w || w[k] > 0) {
            mn_w = x[k] < mn_w ? x[k] : mn_w;
            mx_w = x[k] > mx_w ? x[k] : mx_w;
        }
        S1 += w ? w[k] : 1.0f;
    }
    float d = f16r((mx - mn) / 15.0f), m = f16r(mn);
    if (!(d > 0)) /* constant group, or a range below the f16 step */
        d = 0;
    if (search && mx_w >= mn_w && S1 > 0) {
        /* candidates in order, a later one kept only if strictly better: absmax, the constant
         * group at the smallest value that counts, then the grid winner */
        double best = q4_error(x, w, G, d, m);
        const float mc = f16r(mn_w);
        const double e_const = q4_error(x, w, G, 0, mc);
        if (e_const < best) {
            best = e_const;
            d = 0;
            m = mc;
        }
        const float step = Q4_CLIP * (mx_w - mn_w) / (Q4_STEPS - 1);
        float gd = 0, gm = 0;
        double ge = INFINITY;
        for (int i = 0; i < Q4_STEPS && mx_w > mn_w; i++) {
            for (int j = 0; j < Q4_STEPS; j++) {
                const float lo = mn_w + step * (float)i, hi = mx_w - step * (float)j;
                const float d0 = f16r((hi - lo) / 15.0f), m0 = f16r(lo);
                if (!(d0 > 0))
                    continue;
                float d1, m1;
                const double e = q4_candidate(x, w, G, S1, d0, m0, &d1, &m1);
                if (e < ge) {
                    ge = e;
                    gd = d1;
                    gm = m1;
                }
            }
        }
        /* the estimate kept the codes fixed: rescore exactly with fresh codes, then refit to
         * those codes and rescore again, Q4_REFITS times or until the fit stops moving */
        for (int r = 0; gd > 0; r++) {
            const double e = q4_error(x, w, G, gd, gm);
            if (e < best) {
                best = e;
                d = gd;
                m = gm;
            }
            float d1, m1;
            if (r == Q4_REFITS)
                break;
            q4_candidate(x, w, G, S1, gd, gm, &d1, &m1);
            if (d1 == gd && m1 == gm)
                break;
            gd = d1;
            gm = m1;
        }
    }
    dm[0] = f16_sat(d);
    dm[1] = f16_sat(m);
    const float inv = d > 0 ? 1.0f / d : 0.0f;
    for (uint32_t k = 0; k < G; k += 2)
        codes[k / 2] = (uint8_t)((int)q4_code(x[k], m, inv) | (int)q4_code(x[k + 1], m, inv) << 4);
}

/* ---- rows ---- */

static void add_stats(uint32_t type, const float *x, uint64_t cols, uint32_t group,
                      const void *codes, const uint16_t *scales, quant_stats *stats)
{
    double se = 0, ss = 0, mx = stats->max_abs_err;
    for (uint64_t k = 0; k < cols; k++) {
        float xh;
        if (type == DSQ_TYPE_Q8) {
            xh = dsq_f16_to_f32(scales[k / group]) * (float)((const int8_t *)codes)[k];
        } else if (type == DSQ_TYPE_Q6) { /* codes: the row's nibbles, then its top bits */
            const int u = dsq_q6_code(codes, 1, cols, 0, k);
            xh = dsq_f16_to_f32(scales[k / group]) * (float)(u - 32);
        } else {
            const uint8_t b = ((const uint8_t *)codes)[k / 2];
            const uint16_t *g = scales + 2 * (k / group);
            xh = q4_value(dsq_f16_to_f32(g[0]), (float)((k & 1) ? b >> 4 : b & 15),
                          dsq_f16_to_f32(g[1]));
        }
        const double r = fabs((double)x[k] - (double)xh);
        se += r * r;
        ss += (double)x[k] * x[k];
        mx = r > mx ? r : mx;
    }
    stats->sum_sq_err += se;
    stats->sum_sq += ss;
    stats->max_abs_err = mx;
    stats->count += cols;
}

static void quantize_row(uint32_t type, const float *x, uint64_t cols, uint32_t group,
                         const float *importance, bool search, void *codes, uint16_t *scales,
                         quant_stats *stats)
{
    for (uint64_t g = 0; g < cols / group; g++) {
        const float *xg = x + g * group;
        const float *wg = importance ? importance + g * group : NULL;
        if (type == DSQ_TYPE_Q8) {
            sym_group(xg, wg, group, search, -127, 127, (int8_t *)codes + g * group, scales + g);
        } else if (type == DSQ_TYPE_Q6) {
            const float d = sym_group(xg, wg, group, search, -32, 31, NULL, scales + g);
            q6_store(xg, group, d, (uint8_t *)codes + g * group / 2,
                     (uint8_t *)codes + cols / 2 + g * group / 4);
        } else
            q4_group(xg, wg, group, search, (uint8_t *)codes + g * group / 2, scales + 2 * g);
    }
    if (stats)
        add_stats(type, x, cols, group, codes, scales, stats);
}

void dsq_quantize_row(uint32_t type, const float *x, uint64_t cols, uint32_t group,
                      const float *importance, void *codes, uint16_t *scales, quant_stats *stats)
{
    quantize_row(type, x, cols, group, importance, true, codes, scales, stats);
}

void dsq_quantize_row_absmax(uint32_t type, const float *x, uint64_t cols, uint32_t group,
                             void *codes, uint16_t *scales, quant_stats *stats)
{
    quantize_row(type, x, cols, group, NULL, false, codes, scales, stats);
}

void quant_stats_merge(quant_stats *into, const quant_stats *from)
{
    into->sum_sq_err += from->sum_sq_err;
    into->sum_sq += from->sum_sq;
    into->count += from->count;
    if (from->max_abs_err > into->max_abs_err)
        into->max_abs_err = from->max_abs_err;
}
