/* jansson in error messages: telling a file that is bad from a machine that ran out of memory,
 * and naming what a value is. */
#ifndef DSQ_JSON_ERROR_H
#define DSQ_JSON_ERROR_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* True if a failed json_load* ran out of memory. jansson says so by code in a few places only:
 * elsewhere it leaves the error empty (line -1), and a string it cannot copy reads as a syntax
 * error. So jansson allocates through a wrapper (installed when the program starts) that
 * notes every failure; this reports, and forgets, a failure since its last call. */
bool dsq_json_out_of_memory(const json_error_t *je);

/* The allocator behind that wrapper: malloc, or one a test makes fail. */
extern void *(*dsq_json_malloc)(size_t);

/* "an object", "a string", ... for a message saying what a value is; "missing" for NULL. */
const char *dsq_json_type_name(const json_t *v);

#endif
