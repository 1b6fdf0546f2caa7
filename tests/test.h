/* Minimal test harness: each tests/test_*.c is one program of TEST() cases. Failures print the
 * file, line and expression; main() prints "N passed, N failed" and exits non-zero on failure.
 * tests/run.sh sums the programs' counts into one closing line. */
#ifndef DSQ_TEST_H
#define DSQ_TEST_H

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef void (*test_fn)(void);
struct test_case {
    const char *name;
    test_fn fn;
};

extern int test_failed_checks;

#define TEST_MAX 256
extern struct test_case test_cases[TEST_MAX];
extern int test_count;

#define TEST(name)                                                                            \
    static void name(void);                                                                   \
    __attribute__((constructor)) static void register_##name(void)                            \
    {                                                                                         \
        if (test_count < TEST_MAX)                                                            \
            test_cases[test_count++] = (struct test_case){#name, name};                       \
    }                                                                                         \
    static void name(void)

#define CHECK(cond)                                                                           \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            fprintf(stderr, "  %s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);       \
            test_failed_checks++;                                                             \
        }                                                                                     \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                  \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            fprintf(stderr, "  %s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);       \
            fprintf(stderr, __VA_ARGS__);                                                     \
            fputc('\n', stderr);                                                              \
            test_failed_checks++;                                                             \
        }                                                                                     \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                    \
    CHECK_MSG((long long)(a) == (long long)(b), "%lld != %lld", (long long)(a), (long long)(b))

#define CHECK_STR_CONTAINS(haystack, needle)                                                  \
    CHECK_MSG(strstr((haystack), (needle)) != NULL, "\"%s\" does not contain \"%s\"",         \
              (haystack), (needle))

#define CHECK_NEAR(a, b, tol)                                                                 \
    CHECK_MSG(fabs((double)(a) - (double)(b)) <= (tol), "%.9g vs %.9g (tol %.3g)", (double)(a), \
              (double)(b), (double)(tol))

/* Directory holding committed fixtures; overridable with DSQ_TEST_DATA. */
const char *test_data_dir(void);
/* A fresh empty scratch directory for this test program (removed at exit unless a test failed). */
const char *test_tmp_dir(void);

#endif
