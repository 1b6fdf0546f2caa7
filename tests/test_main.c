/* main() for every test program: runs the registered cases, prints the closing count line. */
#include "test.h"

#include <stdlib.h>
#include <unistd.h>

struct test_case test_cases[TEST_MAX];
int test_count;
int test_failed_checks;

static char tmp_dir[256];

const char *test_data_dir(void)
{
    const char *d = getenv("DSQ_TEST_DATA");
    return d ? d : "tests/data";
}

const char *test_tmp_dir(void)
{
    if (!tmp_dir[0]) {
        snprintf(tmp_dir, sizeof tmp_dir, "/tmp/dsq-test-XXXXXX");
        if (!mkdtemp(tmp_dir)) {
            perror("mkdtemp");
            exit(2);
        }
    }
    return tmp_dir;
}

int main(int argc, char **argv)
{
    const char *only = argc > 1 ? argv[1] : NULL;
    int passed = 0, failed = 0;
    for (int i = 0; i < test_count; i++) {
        if (only && !strstr(test_cases[i].name, only))
            continue;
        int before = test_failed_checks;
        test_cases[i].fn();
        if (test_failed_checks == before) {
            passed++;
        } else {
            failed++;
            fprintf(stderr, "FAIL %s\n", test_cases[i].name);
        }
    }
    if (tmp_dir[0] && failed == 0) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tmp_dir);
    }
    printf("%s: %d passed, %d failed\n", argv[0], passed, failed);
    return failed ? 1 : 0;
}
