/* jansson parse failures: out of memory versus bad input, by watching jansson's allocations. */
#include "json_error.h"

#include <stdlib.h>

void *(*dsq_json_malloc)(size_t) = malloc;
static _Thread_local bool allocation_failed;

static void *noting_malloc(size_t n)
{
    void *p = dsq_json_malloc(n);
    if (!p)
        allocation_failed = true;
    return p;
}

/* Before main: objects made with plain malloc and freed by free would mix safely anyway. */
__attribute__((constructor)) static void install_noting_malloc(void)
{
    json_set_alloc_funcs(noting_malloc, free);
}

bool dsq_json_out_of_memory(const json_error_t *je)
{
    bool failed = allocation_failed;
    allocation_failed = false;
    return failed || json_error_code(je) == json_error_out_of_memory || je->text[0] == 0;
}

const char *dsq_json_type_name(const json_t *v)
{
    if (!v)
        return "missing";
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a real number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}
