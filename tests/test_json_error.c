/* Telling a JSON parse that ran out of memory from one that met bad input. The allocator behind
 * jansson's is swapped for one that fails after a set number of allocations, so every point of
 * failure inside the parser is reached without a process memory limit (which AddressSanitizer
 * forbids). */
#include <stdlib.h>

#include "json_error.h"
#include "test.h"

static int allocations_left;

static void *failing_malloc(size_t n)
{
    return allocations_left-- > 0 ? malloc(n) : NULL;
}

static const char doc[] = "{\"a\": [1, 2.5, \"three\", {\"b\": null}], \"c\": {\"d\": [true, false]}}";

/* At every allocation the parse can make, failing it gives a failed parse that reads as out of
 * memory; the same text with enough memory parses. */
TEST(every_allocation_failure_reads_as_out_of_memory)
{
    int failures = 0;
    for (int budget = 0;; budget++) {
        allocations_left = budget;
        dsq_json_malloc = failing_malloc;
        json_error_t je;
        json_t *j = json_loads(doc, 0, &je);
        dsq_json_malloc = malloc;
        if (j) {
            json_decref(j);
            break;
        }
        failures++;
        CHECK_MSG(dsq_json_out_of_memory(&je), "budget %d: \"%s\" at line %d", budget, je.text,
                  je.line);
    }
    CHECK(failures >= 10); /* the document needs that many allocations at least */
}

/* Bad input never reads as out of memory. */
TEST(malformed_json_is_not_out_of_memory)
{
    static const char *const bad[] = {"{", "{\"a\": }", "[1, 2", "{\"a\": 1, \"a\": 2}", "nul",
                                      "\"\\u0000\"", ""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_error_t je;
        json_t *j = json_loads(bad[i], JSON_REJECT_DUPLICATES, &je);
        CHECK(j == NULL);
        CHECK_MSG(!dsq_json_out_of_memory(&je), "\"%s\" read as out of memory", bad[i]);
    }
}
