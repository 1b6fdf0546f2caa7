/* jansson parse failures: telling a file that is bad from a machine that ran out of memory. */
#ifndef DSQ_JSON_ERROR_H
#define DSQ_JSON_ERROR_H

#include <jansson.h>
#include <stdbool.h>

/* True if a failed json_load* ran out of memory. jansson reports that by code in some places
 * and in others leaves the error as it started (empty text, line -1): every malformed-input
 * path sets a message. */
bool dsq_json_out_of_memory(const json_error_t *je);

#endif
