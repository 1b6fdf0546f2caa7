/* jansson parse failures: out of memory versus bad input. */
#include "json_error.h"

bool dsq_json_out_of_memory(const json_error_t *je)
{
    return json_error_code(je) == json_error_out_of_memory || je->text[0] == 0;
}
