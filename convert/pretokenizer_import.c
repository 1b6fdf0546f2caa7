/* tokenizer.json's normalizer, pre_tokenizer and decoder -> the normalized "pre_tokenizer" steps
 * that tokenizer_import.h documents (Sequence, Split, Digits, Punctuation, ByteLevel). */
#include "pretokenizer_import.h"

#include <stdlib.h>
#include <string.h>

#define GPT2_REGEX                                                                                 \
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
/* HF's Punctuation: char::is_ascii_punctuation || Unicode category P. */
#define PUNCT_REGEX "[\\p{P}\\x{21}-\\x{2F}\\x{3A}-\\x{40}\\x{5B}-\\x{60}\\x{7B}-\\x{7E}]"

/* obj[key] must be a bool (HF's serde has no default for it). */
static int need_bool(const src *s, const json_t *obj, const char *key, const char *name, int *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_boolean(v))
        return bad(s, "%s must be true or false", name);
    *out = json_is_true(v);
    return DSQ_OK;
}

static int add_split(const src *s, json_t *steps, const char *regex, const char *behavior,
                     int invert)
{
    json_t *st = json_pack("{s:s, s:s, s:s, s:b}", "type", "split", "regex", regex, "behavior",
                           behavior, "invert", invert);
    return json_array_append_new(steps, st) ? oom(s) : DSQ_OK;
}

static int behavior_of(const src *s, const json_t *pt, const char *where, const char *def,
                       const char **out)
{
    static const char *const map[][2] = {{"Isolated", "isolated"},
                                         {"Removed", "removed"},
                                         {"MergedWithPrevious", "merged_with_previous"},
                                         {"MergedWithNext", "merged_with_next"},
                                         {"Contiguous", "contiguous"}};
    const json_t *v = json_object_get(pt, "behavior");
    const char *b = v ? json_string_value(v) : def;
    for (size_t i = 0; b && i < sizeof map / sizeof *map; i++) {
        if (strcmp(b, map[i][0]) == 0) {
            *out = map[i][1];
            return DSQ_OK;
        }
    }
    return bad(s,
               "%s.behavior must be Isolated, Removed, MergedWithPrevious, MergedWithNext or "
               "Contiguous",
               where);
}

/* The regex Rust's regex::escape makes of a literal string (HF's Split String pattern). */
static char *escape_regex(const char *lit)
{
    char *r = malloc(2 * strlen(lit) + 1), *p = r;
    if (!r)
        return NULL;
    for (; *lit; lit++) {
        if (strchr("\\.+*?()|[]{}^$#&-~", *lit))
            *p++ = '\\';
        *p++ = *lit;
    }
    *p = 0;
    return r;
}

static int split_step(const src *s, const json_t *pt, const char *where, json_t *steps)
{
    const json_t *pat = json_object_get(pt, "pattern");
    const char *re = json_string_value(json_object_get(pat, "Regex"));
    const char *lit = json_string_value(json_object_get(pat, "String"));
    if (!json_is_object(pat) || json_object_size(pat) != 1 || (!re && !lit))
        return bad(s, "%s.pattern must be {\"Regex\": string} or {\"String\": string}", where);
    const char *behavior;
    int invert = 0, rc;
    char field[300];
    snprintf(field, sizeof field, "%s.invert", where);
    if ((rc = behavior_of(s, pt, where, NULL, &behavior)) ||
        (rc = need_bool(s, pt, "invert", field, &invert)))
        return rc;
    if (re)
        return add_split(s, steps, re, behavior, invert);
    char *esc = escape_regex(lit);
    if (!esc)
        return oom(s);
    rc = add_split(s, steps, esc, behavior, invert);
    free(esc);
    return rc;
}

/* Appends the steps of one pre-tokenizer; *done is set once ByteLevel (the last) is seen. */
static int pretok_steps(const src *s, const json_t *pt, const char *where, json_t *steps, int *done)
{
    const char *type = type_of(pt);
    if (!json_is_object(pt) || !type)
        return bad(s, "%s must be an object with a string \"type\"", where);
    if (*done)
        return bad(s, "%s (%s) comes after ByteLevel, which must be the last pre-tokenizer", where,
                   type);
    char field[300];
    int rc;
    if (strcmp(type, "Sequence") == 0) {
        const json_t *list = json_object_get(pt, "pretokenizers");
        if (!json_is_array(list))
            return bad(s, "%s.pretokenizers must be an array", where);
        for (size_t i = 0; i < json_array_size(list); i++) {
            snprintf(field, sizeof field, "%s.pretokenizers[%zu]", where, i);
            if ((rc = pretok_steps(s, json_array_get(list, i), field, steps, done)))
                return rc;
        }
        return DSQ_OK;
    }
    if (strcmp(type, "Split") == 0)
        return split_step(s, pt, where, steps);
    if (strcmp(type, "Digits") == 0) {
        /* Digits splits on char::is_numeric, i.e. the categories Nd, Nl, No = \p{N}. */
        int each = 0;
        snprintf(field, sizeof field, "%s.individual_digits", where);
        if ((rc = need_bool(s, pt, "individual_digits", field, &each)))
            return rc;
        return add_split(s, steps, "\\p{N}", each ? "isolated" : "contiguous", 0);
    }
    if (strcmp(type, "Punctuation") == 0) {
        const char *behavior;
        if ((rc = behavior_of(s, pt, where, "Isolated", &behavior)))
            return rc;
        return add_split(s, steps, PUNCT_REGEX, behavior, 0);
    }
    if (strcmp(type, "ByteLevel") == 0) {
        int prefix = 0, regex = 0;
        snprintf(field, sizeof field, "%s.add_prefix_space", where);
        if ((rc = need_bool(s, pt, "add_prefix_space", field, &prefix)))
            return rc;
        snprintf(field, sizeof field, "%s.use_regex", where);
        if ((rc = get_bool(s, pt, "use_regex", field, 1, &regex)))
            return rc;
        /* HF prepends the space before its regex split; as a split step followed by
         * byte_level the space would come after it, which differs (" !a" vs "!", " a"). */
        if (regex && prefix)
            return bad(s,
                       "%s: ByteLevel with both add_prefix_space and use_regex is not "
                       "supported",
                       where);
        if (regex && (rc = add_split(s, steps, GPT2_REGEX, "isolated", 0)))
            return rc;
        json_t *st = json_pack("{s:s, s:b, s:b}", "type", "byte_level", "add_prefix_space", prefix,
                               "use_regex", 0);
        if (json_array_append_new(steps, st))
            return oom(s);
        *done = 1;
        return DSQ_OK;
    }
    return bad(s,
               "%s: pre-tokenizer type \"%s\" is not supported (Sequence, Split, Digits, "
               "Punctuation, ByteLevel)",
               where, type);
}

/* Null, or a Sequence of such (the DeepSeek files have "normalizers": []). */
static int normalizer_is_identity(const json_t *n)
{
    if (!n || json_is_null(n))
        return 1;
    const char *type = type_of(n);
    const json_t *list = json_object_get(n, "normalizers");
    if (!type || strcmp(type, "Sequence") != 0 || !json_is_array(list))
        return 0;
    for (size_t i = 0; i < json_array_size(list); i++)
        if (!normalizer_is_identity(json_array_get(list, i)))
            return 0;
    return 1;
}

static int decoder_has_byte_level(const json_t *d)
{
    const char *type = type_of(d);
    if (!type)
        return 0;
    if (strcmp(type, "ByteLevel") == 0)
        return 1;
    const json_t *list = json_object_get(d, "decoders");
    if (strcmp(type, "Sequence") != 0 || !json_is_array(list))
        return 0;
    for (size_t i = 0; i < json_array_size(list); i++)
        if (decoder_has_byte_level(json_array_get(list, i)))
            return 1;
    return 0;
}

int pretokenizer_import(const src *s, const json_t *root, json_t **steps)
{
    *steps = NULL;
    const json_t *norm = json_object_get(root, "normalizer");
    if (!normalizer_is_identity(norm))
        return bad(s, "normalizer %s is not supported (only null or an empty Sequence)",
                   type_of(norm) ? type_of(norm) : "of unknown type");
    const json_t *pt = json_object_get(root, "pre_tokenizer");
    int done_bl = 0, rc;
    json_t *st = json_array();
    if (!st)
        return oom(s);
    if (!pt || json_is_null(pt)) {
        rc = bad(s, "pre_tokenizer is null: byte-level BPE needs a ByteLevel pre-tokenizer");
        goto fail;
    }
    if ((rc = pretok_steps(s, pt, "pre_tokenizer", st, &done_bl)))
        goto fail;
    if (!done_bl) {
        rc = bad(s, "pre_tokenizer has no ByteLevel step: only byte-level BPE is supported");
        goto fail;
    }
    const json_t *dec = json_object_get(root, "decoder");
    if (!decoder_has_byte_level(dec)) {
        rc = bad(s, "decoder %s is not supported (must be ByteLevel or a Sequence holding one)",
                 type_of(dec) ? type_of(dec) : "(null)");
        goto fail;
    }
    *steps = st;
    return DSQ_OK;
fail:
    json_decref(st);
    return rc;
}
