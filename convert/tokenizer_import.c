/* Hugging Face tokenizer.json + tokenizer_config.json -> the normalized tokenizer object whose
 * layout tokenizer_import.h documents. Every rule here mirrors what HF `tokenizers` does when it
 * loads the same file, or refuses what the normalized object cannot express exactly. */
#include "tokenizer_import.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "chat_template.h"
#include "input_file.h"
#include "json_error.h"
#include "pretokenizer_import.h"

/* Parses s->path (at most cap bytes) into *root, which must be an object. optional: a missing
 * file gives NULL. */
static int load_object(const src *s, int optional, size_t cap, json_t **root)
{
    *root = NULL;
    char *text;
    size_t len;
    int rc = input_read_all(s->path, cap, "a tokenizer file", 1, &text, &len, s->err);
    if (rc)
        return rc;
    if (!text)
        return optional ? DSQ_OK : bad(s, "file not found");
    json_error_t je;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    free(text);
    if (!j && dsq_json_out_of_memory(&je))
        return oom(s);
    if (!j)
        return bad(s, "malformed JSON at line %d column %d: %s", je.line, je.column, je.text);
    if (!json_is_object(j)) {
        json_decref(j);
        return bad(s, "the top level must be a JSON object");
    }
    *root = j;
    return DSQ_OK;
}

/* ---- tokens ---------------------------------------------------------------------------- */

typedef struct {
    src s;               /* tokenizer.json */
    const json_t *vocab; /* model.vocab: token -> id */
    const char **tok;    /* (n_tok) token string by id; NULL is a hole */
    int n_tok;           /* largest id + 1 */
    int vocab_size;      /* embedding rows from the model config */
} importer;

static int id_in_range(importer *im, const json_t *v, const char *field, const char *token, int *id)
{
    if (!json_is_integer(v))
        return bad(&im->s, "%s: the id of \"%s\" must be an integer", field, token);
    json_int_t x = json_integer_value(v);
    if (x < 0 || x >= im->vocab_size)
        return bad(&im->s, "%s: token \"%s\" has id %lld, outside [0, vocab_size %d)", field, token,
                   (long long)x, im->vocab_size);
    *id = (int)x;
    return DSQ_OK;
}

/* Puts token str at id; a different string already there is an error. */
static int place(importer *im, int id, const char *str, const char *field)
{
    if (im->tok[id] && strcmp(im->tok[id], str) != 0)
        return bad(&im->s, "%s: id %d is given to both \"%s\" and \"%s\"", field, id, im->tok[id],
                   str);
    im->tok[id] = str;
    return DSQ_OK;
}

struct added {
    int id;
    const json_t *obj;
};

static int cmp_added(const void *a, const void *b)
{
    int x = ((const struct added *)a)->id, y = ((const struct added *)b)->id;
    return (x > y) - (x < y);
}

/* Validates added_tokens and returns them sorted by id in *out (borrowed objects). HF does not
 * take the ids written in the file: a content in model.vocab gets its vocab id, and the k-th
 * other one (in file order) gets len(model.vocab) + k. (Versions differ once the vocab has holes
 * below an added token's id; for files without that they all agree.) A file whose ids differ
 * from these would tokenize differently from what it says, so it is refused. */
static int check_added(importer *im, const json_t *list, struct added **out, size_t *n_out,
                       int *max_id)
{
    *out = NULL;
    *n_out = 0;
    if (!list || json_is_null(list))
        return DSQ_OK;
    if (!json_is_array(list))
        return bad(&im->s, "added_tokens must be an array");
    size_t n = json_array_size(list);
    struct added *a = calloc(n ? n : 1, sizeof *a);
    json_t *seen = json_object();
    if (!a || !seen) {
        free(a);
        json_decref(seen);
        return oom(&im->s);
    }
    long long next_new = (long long)json_object_size(im->vocab);
    int rc = DSQ_OK;
    for (size_t i = 0; i < n && rc == DSQ_OK; i++) {
        const json_t *t = json_array_get(list, i);
        char field[64];
        snprintf(field, sizeof field, "added_tokens[%zu]", i);
        const char *content = json_string_value(json_object_get(t, "content"));
        if (!json_is_object(t) || !content || !content[0]) {
            rc = bad(&im->s, "%s.content must be a non-empty string", field);
            break;
        }
        int id;
        if ((rc = id_in_range(im, json_object_get(t, "id"), field, content, &id)))
            break;
        static const char *const flags[] = {"special", "lstrip", "rstrip", "normalized",
                                            "single_word"};
        for (size_t k = 0; k < sizeof flags / sizeof *flags && rc == DSQ_OK; k++) {
            const json_t *v = json_object_get(t, flags[k]);
            if (v && !json_is_boolean(v))
                rc = bad(&im->s, "%s.%s must be true or false", field, flags[k]);
        }
        if (rc)
            break;
        if (json_object_get(seen, content)) {
            rc = bad(&im->s, "%s: \"%s\" is listed twice", field, content);
            break;
        }
        if (json_object_set_new(seen, content, json_true())) {
            rc = oom(&im->s);
            break;
        }
        const json_t *vid = json_object_get(im->vocab, content);
        long long expect = vid ? (long long)json_integer_value(vid) : next_new++;
        if (id != expect) {
            rc = bad(&im->s,
                     "%s: \"%s\" has id %d but Hugging Face tokenizers gives it id %lld (%s)",
                     field, content, id, expect,
                     vid ? "its id in model.vocab" : "the next id after model.vocab's entries");
            break;
        }
        if (id > *max_id)
            *max_id = id;
        a[i] = (struct added){id, t};
    }
    json_decref(seen);
    if (rc) {
        free(a);
        return rc;
    }
    qsort(a, n, sizeof *a, cmp_added);
    *out = a;
    *n_out = n;
    return DSQ_OK;
}

/* Builds im->tok from model.vocab and the added tokens, in O(vocab + added). */
static int build_tokens(importer *im, const struct added *add, size_t n_add, int max_id)
{
    im->n_tok = max_id + 1;
    im->tok = calloc((size_t)im->n_tok + 1, sizeof *im->tok);
    if (!im->tok)
        return oom(&im->s);
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)im->vocab, key, v)
    {
        int rc = place(im, (int)json_integer_value(v), key, "model.vocab");
        if (rc)
            return rc;
    }
    for (size_t i = 0; i < n_add; i++) {
        int rc = place(im, add[i].id, json_string_value(json_object_get(add[i].obj, "content")),
                       "added_tokens");
        if (rc)
            return rc;
    }
    return DSQ_OK;
}

static json_t *tokens_json(const importer *im)
{
    json_t *arr = json_array();
    for (int id = 0; arr && id < im->n_tok; id++) {
        json_t *t = im->tok[id] ? json_string_nocheck(im->tok[id]) : json_null();
        if (json_array_append_new(arr, t)) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

static json_t *added_json(const struct added *add, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        const json_t *t = add[i].obj;
        int f[5];
        static const char *const names[] = {"special", "lstrip", "rstrip", "normalized",
                                            "single_word"};
        for (int k = 0; k < 5; k++) {
            const json_t *v = json_object_get(t, names[k]);
            /* HF's AddedToken defaults: normalized = !special, the others false. */
            f[k] = v ? json_is_true(v) : (k == 3 ? !f[0] : 0);
        }
        json_t *o = json_pack("{s:i, s:s, s:b, s:b, s:b, s:b, s:b}", "id", add[i].id, "content",
                              json_string_value(json_object_get(t, "content")), names[0], f[0],
                              names[1], f[1], names[2], f[2], names[3], f[3], names[4], f[4]);
        if (json_array_append_new(arr, o)) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

/* ---- merges ---------------------------------------------------------------------------- */

/* Open-addressing map from a merge's (left id, right id) to its last index. */
typedef struct {
    uint64_t *key; /* pair + 1; 0 is empty */
    size_t *val;
    size_t mask;
} pair_map;

/* Returns the slot of key, empty or holding it. */
static size_t pair_slot(const pair_map *m, uint64_t key)
{
    size_t i = (size_t)XXH3_64bits(&key, sizeof key) & m->mask;
    while (m->key[i] && m->key[i] != key)
        i = (i + 1) & m->mask;
    return i;
}

/* One merge's two halves, pointing into the document or into buf. */
typedef struct {
    const char *a, *b;
    size_t alen, blen;
} merge_halves;

/* Reads model.merges[i], in either spelling: "a b" or ["a", "b"]. */
static int merge_at(importer *im, const json_t *e, size_t i, merge_halves *h)
{
    if (json_is_string(e)) {
        const char *str = json_string_value(e), *sp = strchr(str, ' ');
        if (!sp || strchr(sp + 1, ' '))
            return bad(&im->s, "model.merges[%zu] \"%s\" must be two tokens separated by one space",
                       i, str);
        *h = (merge_halves){str, sp + 1, (size_t)(sp - str), strlen(sp + 1)};
        return DSQ_OK;
    }
    if (json_is_array(e) && json_array_size(e) == 2 && json_is_string(json_array_get(e, 0)) &&
        json_is_string(json_array_get(e, 1))) {
        const json_t *x = json_array_get(e, 0), *y = json_array_get(e, 1);
        *h = (merge_halves){json_string_value(x), json_string_value(y), json_string_length(x),
                            json_string_length(y)};
        return DSQ_OK;
    }
    return bad(&im->s, "model.merges[%zu] must be a string \"a b\" or an array [\"a\", \"b\"]", i);
}

/* Looks up the token a||b (b may be empty) in model.vocab. */
static const json_t *vocab_get(const json_t *vocab, char *buf, const char *a, size_t alen,
                               const char *b, size_t blen)
{
    memcpy(buf, a, alen);
    memcpy(buf + alen, b, blen);
    buf[alen + blen] = 0;
    return json_object_get(vocab, buf);
}

/* Validates model.merges as BPE::from_builder does (a, b and a+b in the vocab) and returns
 * them in rank order. A pair listed twice keeps its last rank (HF collects into a HashMap), so
 * only its last occurrence is kept: the relative order of everything else is unchanged. */
static int build_merges(importer *im, const json_t *merges, json_t **out)
{
    *out = NULL;
    if (!json_is_array(merges))
        return bad(&im->s, "model.merges must be an array");
    size_t n = json_array_size(merges), cap = 16, maxlen = 0;
    while (cap < 2 * n + 2)
        cap *= 2;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(merges, i);
        size_t len = json_is_string(e) ? json_string_length(e)
                                       : json_string_length(json_array_get(e, 0)) +
                                             json_string_length(json_array_get(e, 1));
        if (len > maxlen)
            maxlen = len;
    }
    pair_map m = {calloc(cap, sizeof(uint64_t)), calloc(cap, sizeof(size_t)), cap - 1};
    uint64_t *pair = calloc(n ? n : 1, sizeof *pair);
    char *buf = malloc(maxlen + 1);
    json_t *arr = json_array();
    int rc = DSQ_OK;
    if (!m.key || !m.val || !pair || !buf || !arr)
        rc = oom(&im->s);
    for (size_t i = 0; i < n && rc == DSQ_OK; i++) {
        merge_halves h;
        if ((rc = merge_at(im, json_array_get(merges, i), i, &h)))
            break;
        const json_t *ia = vocab_get(im->vocab, buf, h.a, h.alen, "", 0);
        const json_t *ib = vocab_get(im->vocab, buf, h.b, h.blen, "", 0);
        const json_t *iab = vocab_get(im->vocab, buf, h.a, h.alen, h.b, h.blen);
        if (!ia || !ib || !iab) {
            if (!ia || !ib)
                vocab_get(im->vocab, buf, !ia ? h.a : h.b, !ia ? h.alen : h.blen, "", 0);
            rc = bad(&im->s, "model.merges[%zu]: \"%s\" is not in model.vocab", i, buf);
            break;
        }
        uint64_t key =
            ((uint64_t)json_integer_value(ia) << 32 | (uint64_t)json_integer_value(ib)) + 1;
        size_t slot = pair_slot(&m, key);
        m.key[slot] = key;
        m.val[slot] = i;
        pair[i] = key;
    }
    for (size_t i = 0; i < n && rc == DSQ_OK; i++) {
        if (m.val[pair_slot(&m, pair[i])] != i)
            continue; /* listed again later */
        merge_halves h;
        merge_at(im, json_array_get(merges, i), i, &h);
        json_t *p = json_pack("[s#s#]", h.a, (int)h.alen, h.b, (int)h.blen);
        if (json_array_append_new(arr, p))
            rc = oom(&im->s);
    }
    free(m.key);
    free(m.val);
    free(pair);
    free(buf);
    if (rc) {
        json_decref(arr);
        return rc;
    }
    *out = arr;
    return DSQ_OK;
}

/* model: type, unsupported options, vocab ids; *max_id receives the largest vocab id. */
static int check_model(importer *im, const json_t *model, int *max_id)
{
    if (!json_is_object(model))
        return bad(&im->s, "model must be an object");
    const char *type = type_of(model);
    if (!type)
        return bad(&im->s, "model.type must be a string");
    if (strcmp(type, "BPE") != 0)
        return bad(&im->s, "model.type \"%s\" is not supported (only BPE)", type);
    int fallback = 0;
    int rc = get_bool(&im->s, model, "byte_fallback", "model.byte_fallback", 0, &fallback);
    if (rc)
        return rc;
    if (fallback)
        return bad(&im->s, "model.byte_fallback true is not supported (byte-level BPE only)");
    const json_t *drop = json_object_get(model, "dropout");
    /* Dropout 0 never skips a merge; anything else makes tokenization random. */
    if (drop && !json_is_null(drop) && !(json_is_number(drop) && json_number_value(drop) == 0))
        return bad(&im->s, "model.dropout must be null: BPE dropout is not supported");
    static const char *const affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int k = 0; k < 2; k++) {
        const json_t *v = json_object_get(model, affixes[k]);
        if (v && !json_is_null(v) && !json_is_string(v))
            return bad(&im->s, "model.%s must be a string or null", affixes[k]);
        if (json_string_length(v) > 0)
            return bad(&im->s, "model.%s \"%s\" is not supported (must be empty)", affixes[k],
                       json_string_value(v));
    }
    im->vocab = json_object_get(model, "vocab");
    if (!json_is_object(im->vocab))
        return bad(&im->s, "model.vocab must be an object of token: id");
    const char *key;
    const json_t *v;
    int id;
    json_object_foreach((json_t *)im->vocab, key, v)
    {
        if ((rc = id_in_range(im, v, "model.vocab", key, &id)))
            return rc;
        if (id > *max_id)
            *max_id = id;
    }
    const json_t *unk = json_object_get(model, "unk_token");
    if (unk && !json_is_null(unk)) {
        /* unk is only ever used for a byte symbol missing from the vocab. */
        if (!json_is_string(unk))
            return bad(&im->s, "model.unk_token must be a string or null");
        char sym[4];
        for (int b = 0, extra = 0; b < 256; b++) {
            int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
            unsigned cp = printable ? (unsigned)b : 256u + (unsigned)extra++;
            int len = cp < 0x80 ? 1 : 2;
            if (len == 1) {
                sym[0] = (char)cp;
            } else {
                sym[0] = (char)(0xC0 | cp >> 6);
                sym[1] = (char)(0x80 | (cp & 0x3F));
            }
            sym[len] = 0;
            if (!json_object_get(im->vocab, sym))
                return bad(&im->s,
                           "model.unk_token is set and byte 0x%02X (\"%s\") is not in model.vocab:"
                           " unknown-token BPE is not supported",
                           b, sym);
        }
    }
    return DSQ_OK;
}

/* ---- tokenizer_config.json ----------------------------------------------------------------- */

/* bos_token / eos_token: a string, an AddedToken object {"content": ...}, or absent/null. */
static int special_content(const src *s, const json_t *cfg, const char *key, const char **out)
{
    const json_t *v = json_object_get(cfg, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return DSQ_OK;
    if (json_is_object(v))
        v = json_object_get(v, "content");
    if (!json_is_string(v))
        return bad(s, "%s must be a string or an object with a string \"content\"", key);
    *out = json_string_value(v);
    return DSQ_OK;
}

static int check_special(const src *s, const importer *im, const json_t *cfg, const char *key,
                         int id)
{
    const char *content;
    int rc = special_content(s, cfg, key, &content);
    if (rc || !content)
        return rc;
    if (strcmp(content, im->tok[id]) != 0)
        return bad(s, "%s \"%s\" is not token %d (\"%s\"), the model config's %s_id", key, content,
                   id, im->tok[id], key);
    return DSQ_OK;
}

/* dir/chat_template.jinja (transformers >= 4.43 saves the template there) or json_null(). */
static int read_jinja(const char *dir, dsq_error *err, json_t **out)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/chat_template.jinja", dir);
    src s = {path, err};
    char *buf;
    size_t len;
    int rc = input_read_all(path, CHAT_TEMPLATE_MAX, "a chat template", 1, &buf, &len, err);
    if (rc)
        return rc;
    if (!buf)
        *out = json_null();
    else if (!(*out = json_stringn(buf, len)))
        rc = bad(&s, "not UTF-8 text without NUL bytes");
    free(buf);
    return rc;
}

/* The same cap for a template given in tokenizer_config.json as in chat_template.jinja. */
static int capped_template(const src *s, const json_t *v, json_t **out)
{
    if (json_string_length(v) > CHAT_TEMPLATE_MAX)
        return bad(s, "chat_template is %zu bytes, more than the %u bytes allowed",
                   json_string_length(v), CHAT_TEMPLATE_MAX);
    *out = json_incref((json_t *)v);
    return DSQ_OK;
}

static int chat_template_of(const src *s, const json_t *cfg, const char *dir, json_t **out)
{
    const json_t *v = json_object_get(cfg, "chat_template");
    if (!v || json_is_null(v))
        return read_jinja(dir, s->err, out);
    if (json_is_string(v))
        return capped_template(s, v, out);
    if (!json_is_array(v))
        return bad(s, "chat_template must be a string or a list of {\"name\", \"template\"}");
    const json_t *pick = NULL;
    for (size_t i = 0; i < json_array_size(v); i++) {
        const json_t *e = json_array_get(v, i);
        const char *name = json_string_value(json_object_get(e, "name"));
        if (!name || !json_is_string(json_object_get(e, "template")))
            return bad(s, "chat_template[%zu] must have string \"name\" and \"template\"", i);
        if (strcmp(name, "default") == 0) {
            pick = e;
            break;
        }
        if (!pick)
            pick = e;
    }
    if (!pick)
        return read_jinja(dir, s->err, out);
    return capped_template(s, json_object_get(pick, "template"), out);
}

/* add_bos_token / add_eos_token and the special-token names. DeepSeek's tokenizer_class is
 * LlamaTokenizerFast, whose update_post_processor() replaces tokenizer.json's post_processor by
 * a template built from add_bos_token / add_eos_token (defaults true / false). So those keys
 * are the authority, and tokenizer.json's post_processor may disagree with them without
 * consequence: the DeepSeek files' own is ByteLevel (adds nothing) while HF adds BOS. */
static int read_config(const char *dir, importer *im, int bos, int eos, json_t *out,
                       json_t **chat_template, dsq_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    src s = {path, err};
    json_t *cfg;
    int rc = load_object(&s, 1, INPUT_CAP_TOKENIZER_CONFIG, &cfg), add_bos = 1, add_eos = 0;
    if (rc)
        return rc;
    if (!cfg) {
        rc = read_jinja(dir, err, chat_template);
    } else if (!(rc = get_bool(&s, cfg, "add_bos_token", "add_bos_token", 1, &add_bos)) &&
               !(rc = get_bool(&s, cfg, "add_eos_token", "add_eos_token", 0, &add_eos)) &&
               !(rc = check_special(&s, im, cfg, "bos_token", bos)) &&
               !(rc = check_special(&s, im, cfg, "eos_token", eos))) {
        rc = chat_template_of(&s, cfg, dir, chat_template);
    }
    json_decref(cfg);
    if (rc)
        return rc;
    if (json_object_set_new(out, "add_bos_token", json_boolean(add_bos)) ||
        json_object_set_new(out, "add_eos_token", json_boolean(add_eos)))
        return oom(&s);
    return DSQ_OK;
}

/* ---- entry point --------------------------------------------------------------------------- */

static int check_special_id(importer *im, const char *name, int id)
{
    if (id < 0 || id >= im->n_tok || !im->tok[id])
        return bad(&im->s, "%s %d from the model config is not a token id here", name, id);
    return DSQ_OK;
}

/* Everything read from tokenizer.json, appended to out in the documented key order. */
static int read_tokenizer_json(importer *im, const json_t *root, int bos, int eos, json_t *out)
{
    const src *s = &im->s;
    const json_t *model = json_object_get(root, "model");
    int max_id = -1, rc, ignore_merges = 0;
    struct added *add = NULL;
    size_t n_add = 0;
    json_t *merges = NULL, *steps = NULL;
    if ((rc = check_model(im, model, &max_id)) ||
        (rc = get_bool(s, model, "ignore_merges", "model.ignore_merges", 0, &ignore_merges)) ||
        (rc = check_added(im, json_object_get(root, "added_tokens"), &add, &n_add, &max_id)) ||
        (rc = build_tokens(im, add, n_add, max_id)) ||
        (rc = build_merges(im, json_object_get(model, "merges"), &merges)))
        goto done;
    if ((rc = pretokenizer_import(s, root, &steps)))
        goto done;
    const json_t *pp = json_object_get(root, "post_processor");
    if (pp && !json_is_null(pp) && !type_of(pp)) {
        rc = bad(s, "post_processor must be null or an object with a string \"type\"");
        goto done;
    }
    if ((rc = check_special_id(im, "bos_token_id", bos)) ||
        (rc = check_special_id(im, "eos_token_id", eos)))
        goto done;

    /* json_object_set_new takes every value, also on failure: no short-circuit here. */
    int failed = json_object_set_new(out, "model", json_string("bpe-byte-level"));
    failed |= json_object_set_new(out, "tokens", tokens_json(im));
    failed |= json_object_set_new(out, "merges", merges);
    failed |= json_object_set_new(out, "added_tokens", added_json(add, n_add));
    failed |= json_object_set_new(out, "pre_tokenizer", steps);
    failed |= json_object_set_new(out, "ignore_merges", json_boolean(ignore_merges));
    failed |= json_object_set_new(out, "bos_token_id", json_integer(bos));
    failed |= json_object_set_new(out, "eos_token_id", json_integer(eos));
    merges = steps = NULL;
    if (failed)
        rc = oom(s);
done:
    json_decref(merges);
    json_decref(steps);
    free(add);
    return rc;
}

int tokenizer_import(const char *dir, int bos_token_id, int eos_token_id, int vocab_size,
                     json_t **out, json_t **chat_template, dsq_error *err)
{
    *out = NULL;
    *chat_template = NULL;
    char path[4096];
    if (snprintf(path, sizeof path, "%s/tokenizer.json", dir) >= (int)sizeof path)
        return dsq_fail(err, DSQ_EINPUT, "%s: path too long", dir);
    if (vocab_size <= 0)
        return dsq_fail(err, DSQ_EINPUT, "%s: vocab_size %d from the model config must be > 0", dir,
                        vocab_size);
    importer im = {.s = {path, err}, .vocab_size = vocab_size};
    json_t *root, *o = json_object(), *tmpl = NULL;
    int rc = o ? load_object(&im.s, 0, INPUT_CAP_TOKENIZER, &root) : oom(&im.s);
    if (rc) {
        json_decref(o);
        return rc;
    }
    rc = read_tokenizer_json(&im, root, bos_token_id, eos_token_id, o);
    if (!rc)
        rc = read_config(dir, &im, bos_token_id, eos_token_id, o, &tmpl, err);
    free(im.tok); /* its strings belong to root */
    json_decref(root);
    if (rc) {
        json_decref(o);
        json_decref(tmpl);
        return rc;
    }
    *out = o;
    *chat_template = tmpl;
    return DSQ_OK;
}
