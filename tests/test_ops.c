/* The vector helpers of attention (runtime/ops.h: dot, axpy, scaled softmax) against double
 * loops, at lengths that are not multiples of the vector width.
 * Bounds, u = 2^-24: an fp32 sum of n products in any order is within (n + 2) u sum |a b| of
 * the exact value; y + a x with or without a fused multiply-add is within 2 u (|y| + |a x|). */
#include "test.h"

#include <math.h>
#include <stdlib.h>

#include "ops.h"

static float value(int i, int salt)
{
    return (float)sin(0.37 * i + salt) * (i % 7 == 3 ? 40.0f : 1.0f);
}

TEST(dot_and_axpy_match_double_loops)
{
    static const int lengths[] = {1, 7, 8, 15, 17, 31, 64, 127, 513, 576};
    float a[576], b[576], y[576], y0[576];
    for (int i = 0; i < 576; i++) {
        a[i] = value(i, 1);
        b[i] = value(i, 2);
        y0[i] = value(i, 3);
    }
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
        const int n = lengths[li];
        double exact = 0, mag = 0;
        for (int i = 0; i < n; i++) {
            exact += (double)a[i] * b[i];
            mag += fabs((double)a[i] * b[i]);
        }
        CHECK_NEAR(ops_dot(a, b, n), exact, (n + 2) * ldexp(1, -24) * mag);
        for (int i = 0; i < 576; i++)
            y[i] = y0[i];
        ops_axpy(y, -0.75f, a, n);
        int bad = 0;
        for (int i = 0; i < 576; i++) {
            const double want = i < n ? y0[i] - 0.75 * a[i] : y0[i];
            const double tol = i < n ? 2 * ldexp(1, -24) * (fabs(y0[i]) + fabs(0.75 * a[i])) : 0;
            bad += !(fabs(y[i] - want) <= tol);
        }
        CHECK_MSG(bad == 0, "axpy n=%d: %d elements off (or written past n)", n, bad);
    }
}

/* softmax(scale x) in double, and M = max |scale x| + |max of scale x|, the size of the
 * arguments whose rounding the bound below carries. */
static void softmax_exact(const float *x, int n, float scale, double *p, double *m_out)
{
    double max = -INFINITY, big = 0, sum = 0;
    for (int i = 0; i < n; i++) {
        max = fmax(max, (double)scale * x[i]);
        big = fmax(big, fabs((double)scale * x[i]));
    }
    for (int i = 0; i < n; i++)
        sum += p[i] = exp((double)scale * x[i] - max);
    for (int i = 0; i < n; i++)
        p[i] /= sum;
    *m_out = big + fabs(max);
}

/* Bound, u = 2^-24: each argument fl(fl(s x) - max) is off by at most 2 u M, so its e^ by that
 * relative amount, plus 6 u for the exponential (3 fp32 steps); the sum of n such terms adds
 * n u, the division u; every element is within ((n + 7) u + 2 (6 u + 2 u M)) of its exact
 * value relative, and absolutely within 2^-120 where e^ underflows to 0. The element after n
 * must stay untouched. */
/* Elements of softmax(scale x) outside the bound below; x[n] must stay untouched. */
static int softmax_off(float *x, int n, float scale, double absolute)
{
    double p[514], m;
    const float after = x[n];
    softmax_exact(x, n, scale, p, &m);
    ops_scaled_softmax(x, n, scale);
    const double u = ldexp(1, -24);
    int bad = x[n] != after;
    for (int i = 0; i < n; i++)
        bad += !(fabs(x[i] - p[i]) <= ((n + 7) * u + 2 * (6 * u + 2 * u * m)) * p[i] + absolute);
    return bad;
}

TEST(scaled_softmax_matches_double)
{
    static const int lengths[] = {1, 2, 7, 8, 9, 17, 64, 513};
    float x[514];
    /* narrow arguments: the precision of the exponential shows */
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
        const int n = lengths[li];
        for (int i = 0; i <= n; i++)
            x[i] = value(i, 5) / 40;
        const int bad = softmax_off(x, n, 1.5f, 0);
        CHECK_MSG(bad == 0, "narrow, n=%d: %d elements off", n, bad);
    }
    /* wide arguments, down past e^-87 where the exponential gives 0 */
    for (int i = 0; i <= 77; i++)
        x[i] = -2.5f * (float)i + 0.01f * value(i, 6);
    const int bad = softmax_off(x, 77, 1.0f, ldexp(1, -120));
    CHECK_MSG(bad == 0, "wide: %d elements off", bad);
}
