/* Integer dot kernels (quant/qdot.h) and the CPU matmul's int8-activation path: activation
 * rounding, every ISA path this CPU runs against the scalar reference, the reference against an
 * independent double evaluation of the definition, and the int8 result against the exact dot of
 * the float activations within the bound derived in qdot.h.
 *
 * fp32 bound. The integer sums are exact; what differs between paths is fp32 rounding of the
 * per-group products and their sum. With u = 2^-24 and T = sum over groups of
 * |d_g xd_g| * sum |q qx| + |m_g xd_g xs_g| (every term in absolute value), any order of the
 * ng * 8 lane partials plus the two roundings of each scale product stays within
 * (8 ng + 16) u T. A wrong nibble or element order, or a dropped group, moves the sum by a
 * sizeable part of T / sqrt(K), far above that. */
#include "test.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "backend_cpu.h"
#include "dequant.h"
#include "float16.h"
#include "q4.h"
#include "q6.h"
#include "q8.h"
#include "qdot.h"
#include "qpack.h"
#include "types.h"

#define TEST_RNG_SEED 0x2545f4914f6cdd1dull
#include "test_rng.h"

static const uint32_t groups[] = {32, 64, 128};
static const uint32_t types[] = {DSQ_TYPE_Q8, DSQ_TYPE_Q4, DSQ_TYPE_Q6};
#define N_TYPES 3

/* Activations of order 1 with some zeros, a few 50x outliers, and an all-zero first group. */
static void random_x(float *x, uint64_t n)
{
    for (uint64_t k = 0; k < n; k++) {
        const float v = rng_uniform(-1, 1) + rng_uniform(-1, 1);
        const uint64_t c = rng_next() % 100;
        x[k] = c == 0 ? 50 * v : c == 1 ? 0 : v;
    }
    for (uint64_t k = 0; k < 128 && k < n; k++)
        x[k] = 0;
}

static void *random_matrix(uint32_t type, uint64_t rows, uint64_t cols, uint32_t group)
{
    const uint64_t n = rows * cols;
    uint8_t *m;
    if (type == DSQ_TYPE_Q8) {
        m = malloc(dsq_q8_bytes(rows, cols, group));
        for (uint64_t i = 0; i < n; i++)
            ((int8_t *)m)[i] = (int8_t)((int)(rng_next() % 255) - 127);
        uint16_t *d = (uint16_t *)(void *)(m + n);
        for (uint64_t g = 0; g < n / group; g++)
            d[g] = dsq_f32_to_f16(rng_uniform(-0.002f, 0.002f));
    } else if (type == DSQ_TYPE_Q6) {
        m = malloc(dsq_q6_bytes(rows, cols, group));
        for (uint64_t i = 0; i < 3 * n / 4; i++)
            m[i] = (uint8_t)rng_next();
        uint16_t *d = (uint16_t *)(void *)(m + 3 * n / 4);
        for (uint64_t g = 0; g < n / group; g++)
            d[g] = dsq_f32_to_f16(rng_uniform(-0.004f, 0.004f));
    } else {
        m = malloc(dsq_q4_bytes(rows, cols, group));
        for (uint64_t i = 0; i < n / 2; i++)
            m[i] = (uint8_t)rng_next();
        uint16_t *dm = (uint16_t *)(void *)(m + n / 2);
        for (uint64_t g = 0; g < n / group; g++) {
            const float d = rng_uniform(0.0005f, 0.02f);
            dm[2 * g] = dsq_f32_to_f16(d);
            dm[2 * g + 1] = dsq_f32_to_f16(d * rng_uniform(-15, 5));
        }
    }
    return m;
}

/* Weight code (r, k) and its group's d and m (m = 0 for q8). */
static int code(uint32_t type, const void *w, uint64_t rows, uint64_t cols, uint32_t group,
                uint64_t r, uint64_t k, double *d, double *m)
{
    const uint64_t g = r * (cols / group) + k / group;
    if (type == DSQ_TYPE_Q8) {
        *d = dsq_f16_to_f32(dsq_q8_scales(w, rows, cols)[g]);
        *m = 0;
        return ((const int8_t *)w)[r * cols + k];
    }
    if (type == DSQ_TYPE_Q6) { /* quant/q6.h's layout, written out: u = nibble | top bits << 4 */
        *d = dsq_f16_to_f32(dsq_q6_scales(w, rows, cols)[g]);
        *m = 0;
        const uint8_t b = ((const uint8_t *)w)[(r * cols + k) / 2];
        const uint64_t j = k % 32, run = (r * cols + k) / 32;
        const uint8_t *top = (const uint8_t *)w + rows * cols / 2 + run * 8;
        const int pair = j % 2 == 0 ? (j < 16 ? 0 : 1) : (j < 16 ? 2 : 3);
        const int u = (k & 1 ? b >> 4 : b & 15) | (top[j / 2 % 8] >> (2 * pair) & 3) << 4;
        return u - 32;
    }
    const uint16_t *dm = dsq_q4_scales(w, rows, cols) + 2 * g;
    *d = dsq_f16_to_f32(dm[0]);
    *m = dsq_f16_to_f32(dm[1]);
    const uint8_t b = ((const uint8_t *)w)[(r * cols + k) / 2];
    return k & 1 ? b >> 4 : b & 15;
}

/* Code of element k in a rounded row (undoing the q4 order of q4 and q6, written out here: in
 * blocks of 64, or 32 when the group is not a multiple of 64, evens first). */
static int xcode(uint32_t type, uint32_t group, dsq_qx x, uint64_t k)
{
    const uint64_t b = group % 64 ? 32 : 64;
    return x.q[type != DSQ_TYPE_Q8 ? k / b * b + (k % 2) * (b / 2) + (k % b) / 2 : k];
}

/* The definition evaluated in double from the codes, and T of the bound above. */
static void defined_dot(uint32_t type, const void *w, uint64_t rows, uint64_t cols,
                        uint32_t group, uint64_t r, dsq_qx x, double *value, double *mag)
{
    double v = 0, t = 0;
    for (uint64_t g = 0; g < cols / group; g++) {
        double d = 0, m = 0, s = 0, sa = 0;
        for (uint64_t k = g * group; k < (g + 1) * group; k++) {
            const int p = code(type, w, rows, cols, group, r, k, &d, &m) * xcode(type, group, x, k);
            s += p;
            sa += abs(p);
        }
        v += d * x.d[g] * s + m * x.d[g] * x.s[g];
        t += fabs(d * x.d[g]) * sa + fabs(m * x.d[g] * x.s[g]);
    }
    *value = v;
    *mag = t;
}

static double fp_bound(uint64_t cols, uint32_t group, double mag)
{
    return (double)(8 * (cols / group) + 16) * ldexp(1, -24) * mag;
}

static dsq_qx new_qx(uint64_t cols, uint32_t group, void **buf)
{
    *buf = malloc(dsq_qx_bytes(cols, group));
    return dsq_qx_at(*buf, cols, group);
}

TEST(activation_rounding_is_within_half_a_step_in_the_kernel_order)
{
    const uint64_t cols = 384;
    float x[384];
    random_x(x, cols);
    for (size_t ti = 0; ti < N_TYPES; ti++)
        for (size_t gi = 0; gi < 3; gi++) {
            const uint32_t type = types[ti], group = groups[gi];
            void *buf;
            dsq_qx q = new_qx(cols, group, &buf);
            dsq_qx_quantize(type, x, cols, group, q);
            int bad = 0;
            for (uint64_t g = 0; g < cols / group; g++) {
                float amax = 0;
                int32_t sum = 0;
                for (uint64_t k = g * group; k < (g + 1) * group; k++)
                    amax = fmaxf(amax, fabsf(x[k]));
                bad += q.d[g] != amax / 127;
                for (uint64_t k = g * group; k < (g + 1) * group; k++) {
                    const int c = xcode(type, group, q, k);
                    sum += c;
                    /* half a step, plus the rounding of x / d */
                    bad += !(c >= -127 && c <= 127 &&
                             fabs(x[k] - (double)q.d[g] * c) <= q.d[g] * (0.5 + 1e-6));
                }
                bad += sum != q.s[g];
            }
            CHECK_MSG(bad == 0, "type %u group %u: %d wrong", type, group, bad);
            CHECK(q.d[0] == 0 && q.s[0] == 0); /* the all-zero group */
            free(buf);
        }
}

/* The reference against the double evaluation; every path this CPU runs against the reference,
 * at odd row counts, every tile shape (1-4 rows by 1-2 tokens) and every group size. The second
 * token of a tile is the first negated and halved, so its reference values are known exactly:
 * codes negate, scales halve, sums negate. */
TEST(every_path_matches_the_reference)
{
    const uint64_t rows = 13, cols = 1408; /* 1408 = 11 * 128 */
    float x[1408];
    random_x(x, cols);
    int paths_run = 0;
    for (size_t ti = 0; ti < N_TYPES; ti++)
        for (size_t gi = 0; gi < 3; gi++) {
            const uint32_t type = types[ti], group = groups[gi];
            void *w = random_matrix(type, rows, cols, group), *buf;
            dsq_qx q = new_qx(cols, group, &buf);
            dsq_qx_quantize(type, x, cols, group, q);
            void *nbuf;
            dsq_qx neg = new_qx(cols, group, &nbuf);
            for (uint64_t k = 0; k < cols; k++)
                neg.q[k] = (int8_t)-q.q[k];
            for (uint64_t g = 0; g < cols / group; g++) {
                neg.d[g] = q.d[g] / 2;
                neg.s[g] = -q.s[g];
            }
            /* the codes of q and neg with doubled scales (exact in fp32: a power of two) */
            void *dbuf, *dnbuf;
            dsq_qx dq = new_qx(cols, group, &dbuf), dneg = new_qx(cols, group, &dnbuf);
            for (uint64_t k = 0; k < cols; k++) {
                dq.q[k] = q.q[k];
                dneg.q[k] = neg.q[k];
            }
            for (uint64_t g = 0; g < cols / group; g++) {
                dq.d[g] = 2 * q.d[g];
                dneg.d[g] = 2 * neg.d[g];
                dq.s[g] = q.s[g];
                dneg.s[g] = neg.s[g];
            }
            float ref[13];
            dsq_qdot_tile_ref(type, w, rows, cols, group, 0, (int)rows, &q, 1, ref, 0);
            int bad = 0;
            for (uint64_t r = 0; r < rows; r++) {
                double v, t;
                defined_dot(type, w, rows, cols, group, r, q, &v, &t);
                bad += !(fabs(ref[r] - v) <= fp_bound(cols, group, t));
            }
            CHECK_MSG(bad == 0, "reference, type %u group %u: %d rows off", type, group, bad);
            for (int p = 0; p < DSQ_QDOT_N_PATHS; p++) {
                if (!dsq_qdot_have((dsq_qdot_path)p))
                    continue;
                paths_run |= 1 << p;
                dsq_qdot_force(p);
                CHECK(dsq_qdot_current() == (dsq_qdot_path)p);
                bad = 0;
                /* token t is x scaled by scale[t]: x, -x/2, then the same with doubled scales */
                static const double scale[DSQ_QDOT_MAX_TOKENS] = {1, -0.5, 2, -1};
                const dsq_qx tile[DSQ_QDOT_MAX_TOKENS] = {q, neg, dq, dneg};
                for (int nt = 1; nt <= DSQ_QDOT_MAX_TOKENS; nt++)
                    for (int nr = 1; nr <= 4; nr++)
                        for (uint64_t r0 = 0; r0 + (uint64_t)nr <= rows; r0 += (uint64_t)nr + 2) {
                            float got[DSQ_QDOT_MAX_TOKENS][4];
                            dsq_qdot_tile(type, w, rows, cols, group, r0, nr, tile, nt, got[0], 4);
                            for (int t = 0; t < nt; t++)
                                for (int i = 0; i < nr; i++) {
                                    double v, mag;
                                    defined_dot(type, w, rows, cols, group, r0 + (uint64_t)i, q,
                                                &v, &mag);
                                    const double want = ref[r0 + (uint64_t)i] * scale[t];
                                    bad += !(fabs(got[t][i] - want) <=
                                             2 * fp_bound(cols, group, mag) * fabs(scale[t]));
                                }
                        }
                CHECK_MSG(bad == 0, "%s, type %u group %u: %d rows off", dsq_qdot_path_name(p),
                          type, group, bad);
            }
            dsq_qdot_force(-1);
            free(w);
            free(buf);
            free(nbuf);
            free(dbuf);
            free(dnbuf);
        }
    printf("  paths run:");
    for (int p = 0; p < DSQ_QDOT_N_PATHS; p++)
        if (paths_run >> p & 1)
            printf(" %s", dsq_qdot_path_name(p));
    printf("\n");
    CHECK(paths_run >> DSQ_QDOT_SCALAR & 1);
}

/* The derived int8-activation bound: |int8 dot - exact float dot| <= sum over groups of
 * xd_g / 2 * sum |w| over the group, plus fp32 rounding. The matmul's int8 path (four-row tiles,
 * several tokens, odd rows) is held to it against the widened weights in double; with int8
 * activations off it matches the float kernels as before. */
TEST(int8_matmul_within_the_derived_bound_of_the_exact_dot)
{
    const int rows = 37, cols = 640, n = 3;
    float *x = malloc((size_t)n * cols * sizeof(float));
    float *y = malloc((size_t)n * rows * sizeof(float));
    float *wr = malloc((size_t)cols * sizeof(float));
    random_x(x, (uint64_t)n * cols);
    for (size_t ti = 0; ti < N_TYPES; ti++)
        for (size_t gi = 0; gi < 3; gi++) {
            const uint32_t type = types[ti], group = groups[gi];
            dsq_matrix w = {random_matrix(type, rows, cols, group), type, rows, cols, group, NULL};
            dsq_cpu_set_int8_activations(true);
            dsq_backend_cpu.matmul(&w, x, y, n);
            int bad = 0;
            double worst = 0;
            for (int t = 0; t < n; t++)
                for (int r = 0; r < rows; r++) {
                    const float *xt = x + (size_t)t * cols;
                    dsq_dequant_row(type, w.data, rows, cols, group, (uint64_t)r, wr);
                    double exact = 0, lim = 0, mag = 0;
                    for (int g = 0; g < cols / (int)group; g++) {
                        double amax = 0, wsum = 0;
                        for (int k = g * (int)group; k < (g + 1) * (int)group; k++) {
                            exact += (double)wr[k] * xt[k];
                            amax = fmax(amax, fabs(xt[k]));
                            wsum += fabs(wr[k]);
                            mag += fabs((double)wr[k] * xt[k]);
                        }
                        lim += amax / 127 / 2 * wsum;
                    }
                    const double diff = fabs(y[(size_t)t * rows + r] - exact);
                    /* fp32: (K + 8) u over the magnitudes, with the rounded x up to 1 + 1/254 */
                    bad += !(diff <= lim + (cols + 8) * ldexp(1, -24) * (mag + lim) * 2);
                    worst = fmax(worst, diff / lim);
                }
            CHECK_MSG(bad == 0, "type %u group %u: %d outside the bound", type, group, bad);
            /* the rounding shows: a path that ignored it would sit far below the bound */
            CHECK_MSG(worst > 0.01, "type %u group %u: largest error %.3g of the bound", type,
                      group, worst);
            free((void *)w.data);
        }
    dsq_cpu_set_int8_activations(true);
    free(x);
    free(y);
    free(wr);
}

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Prints (asserts nothing): one thread, one token, GB/s of weight bytes per path, best of 5. */
TEST(timing_paths_2048x1408)
{
    const uint64_t rows = 2048, cols = 1408;
    const uint32_t group = 64;
    float x[1408];
    random_x(x, cols);
    float *y = malloc((4 * rows + 16) * sizeof(float));
    printf("  GB/s of weights, %llux%llu, group %u, one thread, one token\n"
           "  (x2, x4 tokens: tiles of 4 rows by 2 or 4 tokens, weight bytes times tokens per\n"
           "  second):\n",
           (unsigned long long)rows, (unsigned long long)cols, group);
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        const uint32_t type = types[ti];
        void *w = random_matrix(type, rows, cols, group), *buf;
        uint64_t nbytes;
        dsq_type_nbytes(type, rows, cols, group, &nbytes);
        const double bytes = (double)nbytes;
        dsq_qx q = new_qx(cols, group, &buf);
        dsq_qx_quantize(type, x, cols, group, q);
        printf("    %s:", dsq_type_info(type)->name);
        for (int p = 0; p < DSQ_QDOT_N_PATHS; p++) {
            if (!dsq_qdot_have((dsq_qdot_path)p))
                continue;
            dsq_qdot_force(p);
            double best = 1e30, best2 = 1e30, best4 = 1e30;
            const dsq_qx four[4] = {q, q, q, q};
            for (int rep = 0; rep < 5; rep++) {
                double t0 = seconds();
                for (uint64_t r = 0; r < rows; r += 4)
                    dsq_qdot_rows(type, w, rows, cols, group, r, 4, q, y + r);
                best = fmin(best, seconds() - t0);
                t0 = seconds();
                for (uint64_t r = 0; r < rows; r += 4)
                    dsq_qdot_tile(type, w, rows, cols, group, r, 4, four, 2, y + 2 * r, 4);
                best2 = fmin(best2, seconds() - t0);
                t0 = seconds();
                for (uint64_t r = 0; r < rows; r += 4)
                    dsq_qdot_tile(type, w, rows, cols, group, r, 4, four, 4, y + 4 * r, 4);
                best4 = fmin(best4, seconds() - t0);
            }
            printf(" %s %.1f (x2: %.1f, x4: %.1f)", dsq_qdot_path_name(p), bytes / best / 1e9,
                   2 * bytes / best2 / 1e9, 4 * bytes / best4 / 1e9);
        }
        printf("\n");
        dsq_qdot_force(-1);
        free(w);
        free(buf);
    }
    free(y);
}

/* A batch of matmuls in one parallel region gives, for every job, the bits that job gives alone
 * (the same row blocks and tiles run the same kernels), and large enough to use the threads.
 * Jobs 0 and 1 take the same input, as gate and up do, so the batch rounds it once for both;
 * job 5 reads rows 2, 0, 2 of that input by index, as an expert reads its tokens' rows, and
 * must give what it gives on those rows gathered. */
TEST(batched_matmuls_match_single_ones)
{
    const struct { uint32_t type; int rows, cols, n; } shapes[] = {
        {DSQ_TYPE_Q8, 37, 640, 3}, {DSQ_TYPE_Q8, 19, 640, 3}, {DSQ_TYPE_Q4, 300, 1408, 2},
        {DSQ_TYPE_Q8, 1, 64, 1}, {DSQ_TYPE_Q4, 515, 1024, 5}, {DSQ_TYPE_Q8, 21, 640, 3}};
    enum { N = 6 };
    static const int picked[3] = {2, 0, 2};
    dsq_matrix w[N];
    dsq_matmul_job jobs[N];
    float *solo[N];
    float *gathered = malloc(3 * 640 * sizeof(float));
    for (int i = 0; i < N; i++) {
        const uint32_t group = shapes[i].cols % 128 ? 64 : 128;
        w[i] = (dsq_matrix){random_matrix(shapes[i].type, (uint64_t)shapes[i].rows,
                                          (uint64_t)shapes[i].cols, group),
                            shapes[i].type, shapes[i].rows, shapes[i].cols, group, NULL};
        float *x = (float *)jobs[0].x;
        if (i != 1 && i != 5) {
            x = malloc((size_t)shapes[i].n * shapes[i].cols * sizeof(float));
            random_x(x, (uint64_t)shapes[i].n * shapes[i].cols);
        }
        const size_t ny = (size_t)shapes[i].n * shapes[i].rows;
        jobs[i] = (dsq_matmul_job){&w[i], x, malloc(ny * sizeof(float)), shapes[i].n,
                                   i == 5 ? picked : NULL};
        solo[i] = malloc(ny * sizeof(float));
        if (i == 5)
            for (int t = 0; t < 3; t++)
                memcpy(gathered + t * 640, x + picked[t] * 640, 640 * sizeof(float));
        dsq_backend_cpu.matmul(&w[i], i == 5 ? gathered : x, solo[i], shapes[i].n);
    }
    CHECK(dsq_cpu_matmul_many(jobs, N) == 0);
    for (int i = 0; i < N; i++) {
        const size_t ny = (size_t)shapes[i].n * shapes[i].rows;
        CHECK_MSG(memcmp(jobs[i].y, solo[i], ny * sizeof(float)) == 0, "job %d differs", i);
        free((void *)w[i].data);
        if (i != 1 && i != 5)
            free((void *)jobs[i].x);
        free(jobs[i].y);
        free(solo[i]);
    }
    free(gathered);
}

/* The packed copy of quant/qpack.h, from every block of a planar tensor. */
static void *packed_copy(uint32_t type, const void *w, uint64_t rows, uint64_t cols,
                         uint32_t group)
{
    void *p = malloc(dsq_qpack_bytes(type, rows, cols, group));
    for (uint64_t b = 0; b < rows / DSQ_QPACK_ROWS; b++)
        dsq_qpack_block(type, w, rows, cols, group, b, p);
    return p;
}

/* Packing moves every code and scale to its documented place: each element of the packed
 * copy reads back as the planar one, bit for bit, with the same total size. */
TEST(packed_layout_holds_every_element_of_the_planar_tensor)
{
    const uint64_t rows = 48, cols = 384;
    for (size_t ti = 0; ti < N_TYPES; ti++)
        for (size_t gi = 0; gi < 3; gi++) {
            const uint32_t type = types[ti], group = groups[gi];
            CHECK(dsq_qpack_fits(type, rows, cols, group));
            void *w = random_matrix(type, rows, cols, group);
            void *p = packed_copy(type, w, rows, cols, group);
            int bad = 0;
            float want[384];
            for (uint64_t r = 0; r < rows; r++) {
                dsq_dequant_row(type, w, rows, cols, group, r, want);
                for (uint64_t k = 0; k < cols; k++)
                    bad += dsq_qpack_get(type, p, rows, cols, group, r, k) != want[k];
            }
            CHECK_MSG(bad == 0, "type %u group %u: %d elements moved", type, group, bad);
            free(w);
            free(p);
        }
    CHECK(!dsq_qpack_fits(DSQ_TYPE_Q8, 40, 384, 64)); /* not a whole number of blocks */
    CHECK(!dsq_qpack_fits(DSQ_TYPE_BF16, 48, 384, 0));
}

/* Tokens of the packed tests: more than one tile holds. */
#define SET_TOKENS 11

/* Eleven different tokens, rounded both ways: in the weights' own order (the definition's, for
 * defined_dot) and in the plain order the packed kernels take. */
typedef struct {
    dsq_qx own[SET_TOKENS], plain[SET_TOKENS];
    void *buf[2 * SET_TOKENS];
    float *x;
} token_set;

static void token_set_init(token_set *s, uint32_t type, uint64_t cols, uint32_t group)
{
    s->x = malloc(SET_TOKENS * cols * sizeof(float));
    random_x(s->x, SET_TOKENS * cols);
    for (int t = 0; t < SET_TOKENS; t++) {
        s->own[t] = new_qx(cols, group, &s->buf[2 * t]);
        s->plain[t] = new_qx(cols, group, &s->buf[2 * t + 1]);
        dsq_qx_quantize(type, s->x + t * cols, cols, group, s->own[t]);
        dsq_qx_quantize(DSQ_TYPE_Q8, s->x + t * cols, cols, group, s->plain[t]);
    }
}

static void token_set_free(token_set *s)
{
    for (int i = 0; i < 2 * SET_TOKENS; i++)
        free(s->buf[i]);
    free(s->x);
}

/* Every packed kernel this CPU runs against the definition at every token count 1..8, every
 * group size, and every block of a 3-block tensor, within twice the fp32 bound of the file
 * header (the integer sums are exact; only the fp32 order differs). A saturating int16 sum on
 * AVX2 (q8 codes w + 128 up to 255 times activations up to 127) moves a value by thousands of
 * units of d xd, far beyond that. */
TEST(packed_tiles_match_the_definition)
{
    if (!dsq_qpack_have()) {
        printf("  skipped: this CPU has no AVX2 (the packed kernels do not run here)\n");
        return;
    }
    const uint64_t rows = 48, cols = 1408;
    for (int path = 0; path < DSQ_QDOT_N_PATHS; path++) {
        if (!dsq_qpack_have_path((dsq_qdot_path)path))
            continue;
        dsq_qpack_force(path);
        CHECK(dsq_qpack_current() == (dsq_qdot_path)path);
        printf("  packed path %s\n", dsq_qdot_path_name((dsq_qdot_path)path));
        for (size_t ti = 0; ti < N_TYPES; ti++)
            for (size_t gi = 0; gi < 3; gi++) {
                const uint32_t type = types[ti], group = groups[gi];
                void *w = random_matrix(type, rows, cols, group);
                void *p = packed_copy(type, w, rows, cols, group);
                token_set s;
                token_set_init(&s, type, cols, group);
                int bad = 0;
                for (int nt = 1; nt <= DSQ_QPACK_MAX_TOKENS; nt++)
                    for (uint64_t b = 0; b < rows / DSQ_QPACK_ROWS; b++) {
                        float got[DSQ_QPACK_MAX_TOKENS][48];
                        dsq_qpack_tile(type, p, rows, cols, group, b, s.plain, nt, got[0], rows);
                        for (int t = 0; t < nt; t++)
                            for (uint64_t i = 0; i < DSQ_QPACK_ROWS; i++) {
                                const uint64_t r = b * DSQ_QPACK_ROWS + i;
                                double v, mag;
                                defined_dot(type, w, rows, cols, group, r, s.own[t], &v, &mag);
                                bad += !(fabs(got[t][r] - v) <= 2 * fp_bound(cols, group, mag));
                            }
                    }
                CHECK_MSG(bad == 0, "%s, type %u group %u: %d values off",
                          dsq_qdot_path_name((dsq_qdot_path)path), type, group, bad);
                token_set_free(&s);
                free(w);
                free(p);
            }
    }
    dsq_qpack_force(-1);
}

/* The matmul takes the packed copy where a matrix has one (more tokens than a tile holds, so
 * tiles of 8 and a remainder), and a batch that mixes packed and planar matrices on one input
 * must round it for each layout separately; on every packed path this CPU runs, with the
 * planar path of the same ISA (the matmul takes the packed kernels only then). */
TEST(matmul_on_packed_weights_matches_the_definition)
{
    if (!dsq_qpack_have()) {
        printf("  skipped: this CPU has no AVX2 (the packed kernels do not run here)\n");
        return;
    }
    const int rows = 64, cols = 640, n = SET_TOKENS;
    const uint32_t group = 64;
    for (int path = 0; path < DSQ_QDOT_N_PATHS; path++) {
        if (!dsq_qpack_have_path((dsq_qdot_path)path))
            continue;
        dsq_qpack_force(path);
        dsq_qdot_force(path);
        CHECK(dsq_qpack_replaces_qdot());
        for (size_t ti = 0; ti < N_TYPES; ti++) {
            const uint32_t type = types[ti];
            void *data = random_matrix(type, rows, cols, group);
            const dsq_matrix planar = {data, type, rows, cols, group, NULL};
            const dsq_matrix packed = {data, type, rows, cols, group,
                                       packed_copy(type, data, rows, cols, group)};
            token_set s;
            token_set_init(&s, type, cols, group);
            float *y = malloc(2 * (size_t)n * rows * sizeof(float));
            const dsq_matmul_job jobs[2] = {{.w = &packed, .x = s.x, .y = y, .n = n},
                                            {.w = &planar, .x = s.x, .y = y + n * rows, .n = n}};
            CHECK(dsq_cpu_matmul_many(jobs, 2) == 0);
            int bad = 0;
            for (int j = 0; j < 2; j++)
                for (int t = 0; t < n; t++)
                    for (int r = 0; r < rows; r++) {
                        double v, mag;
                        defined_dot(type, data, rows, cols, group, (uint64_t)r, s.own[t], &v,
                                    &mag);
                        bad += !(fabs(y[((size_t)j * n + t) * rows + r] - v) <=
                                 2 * fp_bound(cols, group, mag));
                    }
            CHECK_MSG(bad == 0, "%s, type %u: %d values off",
                      dsq_qdot_path_name((dsq_qdot_path)path), type, bad);
            token_set_free(&s);
            free(y);
            free((void *)packed.packed);
            free(data);
        }
    }
    dsq_qpack_force(-1);
    dsq_qdot_force(-1);
}

/* The packed kernels stand in for the planar ones only at the same ISA: forcing one side alone
 * to another path keeps the planar kernels, as the planar tests ask. */
TEST(packed_kernels_replace_only_the_planar_path_of_their_isa)
{
    if (!dsq_qpack_have()) {
        printf("  skipped: this CPU has no AVX2 (the packed kernels do not run here)\n");
        return;
    }
    CHECK(dsq_qpack_replaces_qdot()); /* unforced: the fastest of each, the same ISA */
    CHECK(dsq_qpack_current() == dsq_qdot_current());
    for (int p = 0; p < DSQ_QDOT_N_PATHS; p++) {
        if (!dsq_qdot_have((dsq_qdot_path)p))
            continue;
        dsq_qdot_force(p);
        CHECK(dsq_qpack_replaces_qdot() == (p == (int)dsq_qpack_current()));
        dsq_qdot_force(-1);
        if (!dsq_qpack_have_path((dsq_qdot_path)p))
            continue;
        dsq_qpack_force(p);
        CHECK(dsq_qpack_replaces_qdot() == (p == (int)dsq_qdot_current()));
        dsq_qpack_force(-1);
    }
    CHECK(!dsq_qpack_have_path(DSQ_QDOT_SCALAR));
}

/* DSQ_INT8_KERNELS's names force the planar path and the packed one of its ISA, or with
 * -planar the planar path alone; anything else forces nothing. */
TEST(int8_kernels_are_chosen_by_name)
{
    for (int p = 0; p < DSQ_QDOT_SCALAR; p++) {
        const char *name = dsq_qdot_path_name((dsq_qdot_path)p);
        char planar[32];
        snprintf(planar, sizeof planar, "%s-planar", name);
        if (!dsq_qdot_have((dsq_qdot_path)p)) {
            CHECK(!dsq_int8_kernels_select(name) && !dsq_int8_kernels_select(planar));
            continue;
        }
        CHECK(dsq_int8_kernels_select(name) == dsq_qpack_have_path((dsq_qdot_path)p));
        if (dsq_qpack_have_path((dsq_qdot_path)p))
            CHECK(dsq_qdot_current() == (dsq_qdot_path)p &&
                  dsq_qpack_current() == (dsq_qdot_path)p && dsq_qpack_replaces_qdot());
        CHECK(dsq_int8_kernels_select(planar));
        CHECK(dsq_qdot_current() == (dsq_qdot_path)p && !dsq_qpack_have() &&
              !dsq_qpack_replaces_qdot());
    }
    CHECK(dsq_int8_kernels_select("scalar"));
    CHECK(dsq_qdot_current() == DSQ_QDOT_SCALAR && !dsq_qpack_replaces_qdot());
    dsq_qdot_force(-1);
    dsq_qpack_force(-1);
    const dsq_qdot_path planar_best = dsq_qdot_current(), packed_best = dsq_qpack_current();
    CHECK(!dsq_int8_kernels_select("avx3") && !dsq_int8_kernels_select("avx2-fast") &&
          !dsq_int8_kernels_select(""));
    CHECK(dsq_qdot_current() == planar_best && dsq_qpack_current() == packed_best);
}
