/* The vector helpers of attention (runtime/ops.h) against double-precision loops, at lengths
 * that are not multiples of the vector width.
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
