/* Internal to the tokenizer importer: the per-file message helpers that tokenizer_import.c and
 * pretokenizer_import.c share, and the normalizer / pre_tokenizer / decoder conversion. */
#ifndef DSQ_PRETOKENIZER_IMPORT_H
#define DSQ_PRETOKENIZER_IMPORT_H

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>

#include "error.h"

/* One input file: its path starts every message about it. */
typedef struct {
    const char *path;
    dsq_error *err;
} src;

static inline int bad(const src *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline int bad(const src *s, const char *fmt, ...)
{
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return dsq_fail(s->err, DSQ_EINPUT, "%s: %s", s->path, msg);
}

static inline int oom(const src *s)
{
    return dsq_fail(s->err, DSQ_ERESOURCE, "%s: out of memory", s->path);
}

/* obj[key] as a bool; absent or null gives def. name spells the field in messages. */
static inline int get_bool(const src *s, const json_t *obj, const char *key, const char *name,
                           int def, int *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return DSQ_OK;
    }
    if (!json_is_boolean(v))
        return bad(s, "%s must be true or false", name);
    *out = json_is_true(v);
    return DSQ_OK;
}

/* The "type" string of a tokenizer.json component, or NULL. */
static inline const char *type_of(const json_t *o)
{
    return json_string_value(json_object_get(o, "type"));
}

/* Checks root's (tokenizer.json's) "normalizer" (null or an empty Sequence only), converts its
 * "pre_tokenizer" to the normalized steps that tokenizer_import.h documents (ByteLevel last)
 * and checks its "decoder" (ByteLevel, or a Sequence holding one). Returns the steps (new
 * reference) in *steps, or NULL with the error. */
int pretokenizer_import(const src *s, const json_t *root, json_t **steps);

#endif
