/* The chat template stored in a .dsq's metadata: the limits the importer and every reader of
 * the file apply, in one place. */
#ifndef DSQ_CHAT_TEMPLATE_H
#define DSQ_CHAT_TEMPLATE_H

#include <jansson.h>

#include "error.h"

#define CHAT_TEMPLATE_MAX (16u << 20) /* bytes; DeepSeek's templates are under 2 KB */

/* tmpl must be absent (NULL) or null (no template), or a string of at most CHAT_TEMPLATE_MAX bytes of UTF-8
 * without NUL bytes (jansson holds strings as UTF-8 but lets json_stringn embed a NUL, which
 * a JSON reader then refuses). where names the source in errors. */
int chat_template_check(const json_t *tmpl, const char *where, dsq_error *err);

#endif
