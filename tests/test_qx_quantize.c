/* Activation rounding for the integer kernels (dsq_qx_quantize, quant/qdot.h): every path this
 * CPU runs gives the scalar reference's bits (codes, scales and code sums) in both code orders
 * (q8: element order; q4: the slot order of blocks of 32 or 64) for group sizes that are
 * multiples of 32, on random rows and on edge values: zeros and -0, exact ties at .5, values
 * just below a tie, the largest finite floats, tiny groups and subnormal elements. */
#include "test.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qdot.h"
#include "types.h"

#define TEST_RNG_SEED 0x9fb21c651e98df25ull
#include "test_rng.h"

typedef void (*quantize_fn)(uint32_t, const float *, uint64_t, uint32_t, dsq_qx);

typedef struct {
    const char *name;
    quantize_fn fn;
    int forced; /* dsq_qdot_force argument for the dispatcher, -1 for a direct call */
} path;

/* The paths this CPU runs: each fast function called directly, and the dispatcher under every
 * kernel path it can be forced to. */
static int paths(path *out)
{
    int n = 0;
#if defined(__x86_64__)
    if (dsq_qdot_have(DSQ_QDOT_AVX2))
        out[n++] = (path){"avx2", dsq_qx_quantize_avx2, -1};
    if (dsq_qx_have_avx512())
        out[n++] = (path){"avx512", dsq_qx_quantize_avx512, -1};
#endif
    for (int p = 0; p < DSQ_QDOT_N_PATHS; p++)
        if (dsq_qdot_have((dsq_qdot_path)p))
            out[n++] = (path){dsq_qdot_path_name((dsq_qdot_path)p), dsq_qx_quantize, p};
    return n;
}

static const uint32_t groups[] = {32, 64, 96, 128, 192, 256};
static const uint32_t types[] = {DSQ_TYPE_Q8, DSQ_TYPE_Q4};

/* Rounds x with the reference and with every path; returns the number of differing rows. */
static int compare_paths(const float *x, uint64_t cols, uint32_t group, const char *what)
{
    path ps[DSQ_QDOT_N_PATHS + 2];
    const int np = paths(ps);
    const size_t bytes = dsq_qx_bytes(cols, group);
    uint8_t *want = malloc(bytes), *got = malloc(bytes);
    int bad = 0;
    for (size_t ti = 0; ti < 2; ti++) {
        memset(want, 0x5a, bytes);
        dsq_qx_quantize_ref(types[ti], x, cols, group, dsq_qx_at(want, cols, group));
        for (int i = 0; i < np; i++) {
            memset(got, 0xa5, bytes); /* the other fill: an unwritten byte cannot match */
            if (ps[i].forced >= 0)
                dsq_qdot_force(ps[i].forced);
            ps[i].fn(types[ti], x, cols, group, dsq_qx_at(got, cols, group));
            dsq_qdot_force(-1);
            /* the padding after the codes (cols % 4 == 0 here: none) is the whole buffer */
            const int differ = memcmp(want, got, bytes) != 0;
            bad += differ;
            CHECK_MSG(!differ, "%s, %s order, group %u: path %s%s differs from the reference",
                      what, dsq_type_info(types[ti])->name, group, ps[i].name,
                      ps[i].forced >= 0 ? " (dispatched)" : "");
        }
    }
    free(want);
    free(got);
    return bad;
}

TEST(reference_rounds_ties_away_from_zero_with_fp32_arithmetic)
{
    /* amax 127: inv is exactly 1, so v = x and the rounding shows directly */
    float x[32] = {127, 2.5f, -2.5f, 0.5f, -0.5f, 1.4999999f, -0.0f, 0, 126.5f, -126.5f};
    x[10] = 0.49999997f; /* v + 0.5f rounds (to even) up to 1.0f: the reference gives 1 */
    const int8_t want[11] = {127, 3, -3, 1, -1, 1, 0, 0, 127, -127, 1};
    uint8_t buf[64];
    CHECK(dsq_qx_bytes(32, 32) <= sizeof buf);
    dsq_qx q = dsq_qx_at(buf, 32, 32);
    dsq_qx_quantize_ref(DSQ_TYPE_Q8, x, 32, 32, q);
    int sum = 0;
    for (int k = 0; k < 11; k++) {
        CHECK_EQ_INT(q.q[k], want[k]);
        sum += want[k];
    }
    CHECK(q.d[0] == 1.0f);
    CHECK_EQ_INT(q.s[0], sum);
    CHECK(compare_paths(x, 32, 32, "ties") == 0);
}

TEST(every_path_matches_reference_on_random_rows)
{
    for (size_t gi = 0; gi < sizeof groups / sizeof *groups; gi++) {
        const uint32_t group = groups[gi];
        const uint64_t cols = 3 * (uint64_t)group;
        float *x = malloc(cols * sizeof *x);
        for (int rep = 0; rep < 20; rep++) {
            const float scale = ldexpf(1, (int)(rng_next() % 40) - 20);
            for (uint64_t k = 0; k < cols; k++) {
                const uint64_t c = rng_next() % 50;
                const float v = scale * (rng_uniform(-1, 1) + rng_uniform(-1, 1));
                x[k] = c == 0 ? 40 * v : c == 1 ? 0 : v;
            }
            CHECK(compare_paths(x, cols, group, "random") == 0);
        }
        free(x);
    }
}

/* x = (code + 0.5) * amax / 127 and its neighbours: products that land on or next to a tie. */
TEST(every_path_matches_reference_at_ties_and_extremes)
{
    const uint32_t group = 64;
    const uint64_t cols = 6 * (uint64_t)group;
    float *x = malloc(cols * sizeof *x);
    const float amaxes[] = {127, 1, 3.0e38f, FLT_MAX, 1e-30f, 4e-37f, 0.3f};
    for (size_t a = 0; a < sizeof amaxes / sizeof *amaxes; a++) {
        const float amax = amaxes[a];
        for (uint64_t g = 0; g < cols / group; g++) {
            float *xg = x + g * group;
            for (uint32_t k = 0; k < group; k++) {
                /* ties -126.5..126.5: within amax, so finite even at FLT_MAX */
                const float tie = ((float)(int)(rng_next() % 254) - 127 + 0.5f) / 127 * amax;
                const int step = (int)(rng_next() % 3) - 1; /* one ulp either side, or none */
                xg[k] = step ? nextafterf(tie, step * INFINITY) : tie;
                if (fabsf(xg[k]) > amax)
                    xg[k] = tie;
            }
            xg[rng_next() % group] = (g & 1) ? -amax : amax; /* the group's maximum */
            if (g == 1)
                memset(xg, 0, group * sizeof *xg); /* an all-zero group */
            if (g == 2)
                for (uint32_t k = 0; k < group; k += 3)
                    xg[k] = -0.0f;
            if (g == 3)
                for (uint32_t k = 1; k < group; k += 5)
                    xg[k] = (k & 2) ? 1e-40f : -FLT_MIN; /* subnormal and tiny elements */
        }
        char what[64];
        snprintf(what, sizeof what, "ties at amax %g", (double)amax);
        CHECK(compare_paths(x, cols, group, what) == 0);
    }
    free(x);
}

/* Prints (asserts nothing) the time to round one row of 2048 with each path: best of 5 runs of
 * 2000 rows. */
TEST(timing_2048)
{
    const uint64_t cols = 2048;
    const uint32_t group = 128;
    float *x = malloc(cols * sizeof *x);
    void *buf = malloc(dsq_qx_bytes(cols, group));
    for (uint64_t k = 0; k < cols; k++)
        x[k] = rng_uniform(-1, 1);
    path ps[DSQ_QDOT_N_PATHS + 3];
    ps[0] = (path){"scalar ref", dsq_qx_quantize_ref, -1};
    const int np = 1 + paths(ps + 1);
    printf("ns to round one row of %llu (group %u):\n", (unsigned long long)cols, group);
    for (size_t ti = 0; ti < 2; ti++)
        for (int i = 0; i < np; i++) {
            double best = 1e30;
            for (int run = 0; run < 5; run++) {
                struct timespec a, b;
                if (ps[i].forced >= 0)
                    dsq_qdot_force(ps[i].forced);
                clock_gettime(CLOCK_MONOTONIC, &a);
                for (int r = 0; r < 2000; r++)
                    ps[i].fn(types[ti], x, cols, group, dsq_qx_at(buf, cols, group));
                clock_gettime(CLOCK_MONOTONIC, &b);
                dsq_qdot_force(-1);
                const double dt =
                    (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
                best = dt < best ? dt : best;
            }
            printf("  %s %-12s%s %8.0f\n", dsq_type_info(types[ti])->name, ps[i].name,
                   ps[i].forced >= 0 ? " (dispatched)" : "             ", best / 2000 * 1e9);
        }
    free(x);
    free(buf);
}
