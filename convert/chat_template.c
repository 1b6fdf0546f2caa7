/* Chat template limits. */
#include "chat_template.h"

#include <string.h>

int chat_template_check(const json_t *tmpl, const char *where, dsq_error *err)
{
    if (!tmpl || json_is_null(tmpl)) /* absent or null: the model has no template */
        return DSQ_OK;
    if (!json_is_string(tmpl))
        return dsq_fail(err, DSQ_EINPUT, "%s: chat_template must be a string or null", where);
    size_t len = json_string_length(tmpl);
    const char *nul = memchr(json_string_value(tmpl), 0, len);
    if (nul)
        return dsq_fail(err, DSQ_EINPUT, "%s: chat template holds a NUL byte at offset %zu", where,
                        (size_t)(nul - json_string_value(tmpl)));
    if (len > CHAT_TEMPLATE_MAX)
        return dsq_fail(err, DSQ_EINPUT, "%s: chat template of %zu bytes exceeds %u MiB", where,
                        len, CHAT_TEMPLATE_MAX >> 20);
    return DSQ_OK;
}
