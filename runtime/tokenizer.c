/* The tokenizer: loading the normalized object, splitting added tokens out of the text (HF's
 * AddedVocabulary), the encode pipeline and the bytes each token stands for. */
#include "tokenizer.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_bpe.h"
#include "tokenizer_split.h"

typedef struct {
    int id;
    const char *content; /* the token's string in the tokenizer */
    uint32_t len;
    bool special, lstrip, rstrip, normalized, single_word;
} added_token;

/* Byte trie of the added tokens matched in one pass. */
typedef struct {
    unsigned char byte;
    int32_t token;   /* index into tokenizer.added, -1 if no token ends here */
    int32_t child;   /* first child, -1 if none */
    int32_t sibling; /* next child of the same parent, -1 if none */
} trie_node;

typedef struct {
    int32_t root[256]; /* node of each first byte, -1 if none */
    trie_node *node;
    size_t n, cap;
} added_trie;

struct tokenizer {
    char *where;
    bpe_model bpe;
    char *str_blob;                  /* every token string, NUL-terminated */
    char *bytes_blob;                /* the bytes each token stands for */
    uint32_t *bytes_off, *bytes_len; /* (n_tokens) into bytes_blob */
    added_token *added;
    int n_added;
    int32_t *added_of;  /* (n_tokens) index into added, -1 for model tokens */
    added_trie trie[2]; /* [0] tokens matched in the raw text, [1] the "normalized" ones */
    split_step *steps;
    int n_steps;
    bool add_prefix_space;
    pcre2_code *word_re; /* Rust regex's \w, for single_word tokens */
    int bos, eos;
    bool add_bos, add_eos;
};

static int bad(dsq_error *err, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int bad(dsq_error *err, const char *where, const char *fmt, ...)
{
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return dsq_fail(err, DSQ_EINPUT, "%s: tokenizer.%s", where, msg);
}

static int oom(dsq_error *err, const char *where)
{
    return dsq_fail(err, DSQ_ERESOURCE, "%s: tokenizer: out of memory", where);
}

/* ---- token table -------------------------------------------------------------------------- */

/* The bytes a byte-level token string stands for, into out (at most len bytes): each character
 * of the alphabet is its byte; with any other character the token stands for its own UTF-8,
 * as in HF's ByteLevel decoder. Returns the length. */
static uint32_t token_to_bytes(const char *s, uint32_t len, char *out)
{
    uint32_t o = 0;
    for (uint32_t i = 0; i < len;) {
        int n = utf8_check((const unsigned char *)s + i, len - i);
        int b = n > 0 ? byte_level_byte(utf8_decode((const unsigned char *)s + i, &n)) : -1;
        if (b < 0) {
            memcpy(out, s, len);
            return len;
        }
        out[o++] = (char)b;
        i += (uint32_t)n;
    }
    return o;
}

static int load_tokens(tokenizer *t, const json_t *arr, dsq_error *err)
{
    const char *w = t->where;
    if (!json_is_array(arr) || json_array_size(arr) == 0 || json_array_size(arr) > (1u << 30))
        return bad(err, w, "tokens must be a non-empty array");
    int n = (int)json_array_size(arr);
    size_t total = 0;
    for (int id = 0; id < n; id++) {
        const json_t *v = json_array_get(arr, (size_t)id);
        if (!json_is_string(v) && !json_is_null(v))
            return bad(err, w, "tokens[%d] must be a string or null", id);
        if (json_is_string(v) && (json_string_length(v) == 0 || json_string_length(v) > 65535))
            return bad(err, w, "tokens[%d] must be 1 to 65535 bytes long", id);
        total += json_string_length(v) + 1;
    }
    if (total >= UINT32_MAX)
        return bad(err, w, "tokens: more than 4 GiB of strings");
    bpe_model *m = &t->bpe;
    m->n_tokens = n;
    m->str = calloc((size_t)n, sizeof *m->str);
    m->len = calloc((size_t)n, sizeof *m->len);
    t->bytes_off = calloc((size_t)n, sizeof *t->bytes_off);
    t->bytes_len = calloc((size_t)n, sizeof *t->bytes_len);
    t->added_of = malloc((size_t)n * sizeof *t->added_of);
    t->str_blob = malloc(total);
    t->bytes_blob = malloc(total);
    if (!m->str || !m->len || !t->bytes_off || !t->bytes_len || !t->added_of || !t->str_blob ||
        !t->bytes_blob)
        return oom(err, w);
    size_t off = 0, boff = 0;
    for (int id = 0; id < n; id++) {
        const json_t *v = json_array_get(arr, (size_t)id);
        t->added_of[id] = -1;
        if (!json_is_string(v))
            continue;
        uint32_t len = (uint32_t)json_string_length(v);
        memcpy(t->str_blob + off, json_string_value(v), len + 1);
        m->str[id] = t->str_blob + off;
        m->len[id] = len;
        off += len + 1;
        t->bytes_off[id] = (uint32_t)boff;
        t->bytes_len[id] = token_to_bytes(m->str[id], len, t->bytes_blob + boff);
        boff += len; /* room for the string itself, which an added token stands for */
    }
    return bpe_build_vocab(m) ? oom(err, w) : DSQ_OK;
}

static int load_merges(tokenizer *t, const json_t *arr, dsq_error *err)
{
    const char *w = t->where;
    bpe_model *m = &t->bpe;
    if (!json_is_array(arr))
        return bad(err, w, "merges must be an array");
    size_t n = json_array_size(arr);
    if (n >= UINT32_MAX)
        return bad(err, w, "merges: too many");
    if (bpe_alloc_merges(m, n))
        return oom(err, w);
    char *buf = malloc(2 * 65536 + 1);
    if (!buf)
        return oom(err, w);
    int rc = DSQ_OK;
    for (size_t r = 0; r < n && rc == DSQ_OK; r++) {
        const json_t *e = json_array_get(arr, r), *a = json_array_get(e, 0),
                     *b = json_array_get(e, 1);
        if (!json_is_array(e) || json_array_size(e) != 2 || !json_is_string(a) ||
            !json_is_string(b) || json_string_length(a) > 65535 || json_string_length(b) > 65535) {
            rc = bad(err, w, "merges[%zu] must be a pair of token strings", r);
            break;
        }
        size_t la = json_string_length(a), lb = json_string_length(b);
        int ia = bpe_lookup(m, json_string_value(a), la);
        int ib = bpe_lookup(m, json_string_value(b), lb);
        memcpy(buf, json_string_value(a), la);
        memcpy(buf + la, json_string_value(b), lb);
        int iab = bpe_lookup(m, buf, la + lb);
        if (ia < 0 || ib < 0 || iab < 0)
            rc = bad(err, w, "merges[%zu]: \"%.*s\" is not a token", r,
                     ia < 0   ? (int)la
                     : ib < 0 ? (int)lb
                              : (int)(la + lb),
                     ia < 0   ? json_string_value(a)
                     : ib < 0 ? json_string_value(b)
                              : buf);
        else
            bpe_add_merge(m, ia, ib, (uint32_t)r, iab);
    }
    free(buf);
    return rc;
}

/* ---- added tokens ------------------------------------------------------------------------- */

/* The slot that links to node i's first child (parent -1: the root slot of byte c). */
static int32_t *child_link(added_trie *tr, int32_t parent, unsigned char c)
{
    return parent < 0 ? &tr->root[c] : &tr->node[parent].child;
}

static int trie_insert(added_trie *tr, const char *s, uint32_t len, int32_t token)
{
    int32_t parent = -1;
    for (uint32_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        int32_t prev = -1, node = *child_link(tr, parent, c);
        while (node >= 0 && tr->node[node].byte != c) {
            prev = node;
            node = tr->node[node].sibling;
        }
        if (node < 0) {
            if (tr->n == tr->cap) {
                size_t cap = tr->cap ? 2 * tr->cap : 64;
                trie_node *p = realloc(tr->node, cap * sizeof *p);
                if (!p)
                    return -1;
                tr->node = p;
                tr->cap = cap;
            }
            node = (int32_t)tr->n++;
            tr->node[node] = (trie_node){c, -1, -1, -1};
            if (prev >= 0)
                tr->node[prev].sibling = node;
            else
                *child_link(tr, parent, c) = node;
        }
        parent = node;
    }
    tr->node[parent].token = token;
    return 0;
}

/* The longest token that starts at s (n bytes), or -1; its length in *mlen. */
static int32_t trie_longest(const added_trie *tr, const unsigned char *s, size_t n, size_t *mlen)
{
    int32_t node = tr->root[s[0]], best = -1;
    for (size_t j = 1; node >= 0; j++) {
        if (tr->node[node].token >= 0) {
            best = tr->node[node].token;
            *mlen = j;
        }
        if (j == n)
            break;
        for (node = tr->node[node].child; node >= 0 && tr->node[node].byte != s[j];)
            node = tr->node[node].sibling;
    }
    return best;
}

static int get_flag(const json_t *o, const char *key, bool *out)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_boolean(v))
        return -1;
    *out = json_is_true(v);
    return 0;
}

static int load_added(tokenizer *t, const json_t *arr, dsq_error *err)
{
    const char *w = t->where;
    for (int p = 0; p < 2; p++)
        memset(t->trie[p].root, 0xff, sizeof t->trie[p].root);
    if (!json_is_array(arr))
        return bad(err, w, "added_tokens must be an array");
    size_t n = json_array_size(arr);
    t->added = calloc(n ? n : 1, sizeof *t->added);
    if (!t->added)
        return oom(err, w);
    bool any_single_word = false;
    for (size_t i = 0; i < n; i++) {
        const json_t *o = json_array_get(arr, i), *idv = json_object_get(o, "id");
        const json_t *cv = json_object_get(o, "content");
        added_token *a = &t->added[i];
        json_int_t id = json_integer_value(idv);
        if (!json_is_object(o) || !json_is_integer(idv) || id < 0 || id >= t->bpe.n_tokens ||
            !t->bpe.str[id])
            return bad(err, w, "added_tokens[%zu].id must name a token", i);
        if (!json_is_string(cv) || json_string_length(cv) != t->bpe.len[id] ||
            memcmp(json_string_value(cv), t->bpe.str[id], t->bpe.len[id]) != 0)
            return bad(err, w, "added_tokens[%zu].content must be tokens[%d]", i, (int)id);
        if (t->added_of[id] >= 0)
            return bad(err, w, "added_tokens[%zu]: id %d is listed twice", i, (int)id);
        if (get_flag(o, "special", &a->special) || get_flag(o, "lstrip", &a->lstrip) ||
            get_flag(o, "rstrip", &a->rstrip) || get_flag(o, "normalized", &a->normalized) ||
            get_flag(o, "single_word", &a->single_word))
            return bad(err, w,
                       "added_tokens[%zu]: special, lstrip, rstrip, normalized and single_word "
                       "must be true or false",
                       i);
        a->id = (int)id;
        a->content = t->bpe.str[id];
        a->len = t->bpe.len[id];
        t->added_of[id] = (int32_t)i;
        /* an added token stands for its content, never for byte-level symbols */
        memcpy(t->bytes_blob + t->bytes_off[id], a->content, a->len);
        t->bytes_len[id] = a->len;
        any_single_word |= a->single_word;
        if (trie_insert(&t->trie[a->normalized], a->content, a->len, (int32_t)i))
            return oom(err, w);
    }
    t->n_added = (int)n;
    if (any_single_word) {
        /* Rust regex's Unicode \w, which HF's single_word test uses */
        static const char word[] = "[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}]";
        int code;
        PCRE2_SIZE off;
        t->word_re = pcre2_compile((PCRE2_SPTR)word, sizeof word - 1, PCRE2_UTF | PCRE2_UCP, &code,
                                   &off, NULL);
        if (!t->word_re)
            return oom(err, w);
    }
    return DSQ_OK;
}

/* One encode call's buffers. */
typedef struct {
    piece_vec a, b;
    id_vec ids;
    bpe_scratch bpe;
    split_scratch split;
    pcre2_match_data *word_md;
} enc;

static void enc_free(enc *e)
{
    free(e->a.v);
    free(e->b.v);
    free(e->ids.v);
    bpe_scratch_free(&e->bpe);
    split_scratch_free(&e->split);
    pcre2_match_data_free(e->word_md);
}

/* Whether the character at s[0..len) (the subject starts at it) is a Rust \w character. */
static int is_word_at(const tokenizer *t, enc *e, const char *s, size_t len)
{
    if (!e->word_md && !(e->word_md = pcre2_match_data_create(1, NULL)))
        return -1;
    int rc = pcre2_match(t->word_re, (PCRE2_SPTR)s, len, 0, PCRE2_ANCHORED | PCRE2_NO_UTF_CHECK,
                         e->word_md, NULL);
    return rc >= 0;
}

/* HF's AddedVocabulary::find_matches on the segment p, with the tokens of one trie: each
 * leftmost-longest match (non-overlapping, left to right) becomes a token piece, unless a
 * single_word token touches a word; lstrip/rstrip widen it over White_Space. */
static int added_split(const tokenizer *t, const added_trie *tr, const char *text,
                       const tok_piece *p, enc *e)
{
    const unsigned char *s = (const unsigned char *)text + p->start;
    size_t n = p->end - p->start, start_offset = 0, from = 0;
    while (from < n) {
        size_t start = from, mlen = 0;
        int32_t k = -1;
        for (; start < n; start++)
            if (tr->root[s[start]] >= 0 && (k = trie_longest(tr, s + start, n - start, &mlen)) >= 0)
                break;
        if (k < 0)
            break;
        size_t stop = start + mlen;
        from = stop;
        const added_token *a = &t->added[k];
        if (a->single_word) {
            int before = 0, after = 0;
            if (start > 0) {
                size_t c = start - 1;
                while (c > 0 && (s[c] & 0xC0) == 0x80)
                    c--;
                before = is_word_at(t, e, (const char *)s + c, start - c);
            }
            if (stop < n)
                after = is_word_at(t, e, (const char *)s + stop, n - stop);
            if (before < 0 || after < 0)
                return -1;
            if (before || after)
                continue;
        }
        if (a->lstrip) {
            size_t ns = start;
            while (ns > 0) {
                size_t c = ns - 1;
                while (c > 0 && (s[c] & 0xC0) == 0x80)
                    c--;
                int len;
                if (!is_white_space(utf8_decode(s + c, &len)))
                    break;
                ns = c;
            }
            start = ns > start_offset ? ns : start_offset;
        }
        if (a->rstrip) {
            int len;
            while (stop < n && is_white_space(utf8_decode(s + stop, &len)))
                stop += (size_t)len;
        }
        if (start_offset < start &&
            piece_push(&e->b, p->start + start_offset, p->start + start, -1))
            return -1;
        if (piece_push(&e->b, p->start + start, p->start + stop, a->id))
            return -1;
        start_offset = stop;
    }
    if (start_offset < n && piece_push(&e->b, p->start + start_offset, p->end, -1))
        return -1;
    return 0;
}

/* ---- pre-tokenizer steps and the rest of the object ----------------------------------------- */

static int load_steps(tokenizer *t, const json_t *arr, dsq_error *err)
{
    const char *w = t->where;
    size_t n = json_array_size(arr);
    if (!json_is_array(arr) || n == 0)
        return bad(err, w, "pre_tokenizer must be a non-empty array of steps");
    t->steps = calloc(n, sizeof *t->steps);
    if (!t->steps)
        return oom(err, w);
    for (size_t i = 0; i < n; i++) {
        const json_t *st = json_array_get(arr, i);
        const char *type = json_string_value(json_object_get(st, "type"));
        if (type && strcmp(type, "byte_level") == 0) {
            bool regex;
            if (i != n - 1)
                return bad(err, w, "pre_tokenizer[%zu]: byte_level must be the last step", i);
            if (get_flag(st, "add_prefix_space", &t->add_prefix_space) ||
                get_flag(st, "use_regex", &regex) || regex)
                return bad(err, w,
                           "pre_tokenizer[%zu]: byte_level needs add_prefix_space true or false "
                           "and use_regex false",
                           i);
            return DSQ_OK;
        }
        if (!type || strcmp(type, "split") != 0)
            return bad(err, w, "pre_tokenizer[%zu].type must be \"split\" or \"byte_level\"", i);
        static const char *const names[] = {"isolated", "removed", "merged_with_previous",
                                            "merged_with_next", "contiguous"};
        static const enum split_behavior kinds[] = {SPLIT_ISOLATED, SPLIT_REMOVED,
                                                    SPLIT_MERGED_WITH_PREVIOUS,
                                                    SPLIT_MERGED_WITH_NEXT, SPLIT_CONTIGUOUS};
        const char *behavior = json_string_value(json_object_get(st, "behavior"));
        const json_t *re = json_object_get(st, "regex");
        split_step *s = &t->steps[t->n_steps];
        size_t k = 0;
        while (behavior && k < 5 && strcmp(behavior, names[k]) != 0)
            k++;
        if (k == 5 || !behavior)
            return bad(err, w, "pre_tokenizer[%zu].behavior is not one of the five", i);
        if (get_flag(st, "invert", &s->invert) || !json_is_string(re))
            return bad(err, w, "pre_tokenizer[%zu] needs a string regex and a bool invert", i);
        s->behavior = kinds[k];
        char why[700];
        int rc = split_compile(s, json_string_value(re), json_string_length(re), why, sizeof why);
        if (rc == -2)
            return oom(err, w);
        if (rc)
            return bad(err, w, "pre_tokenizer[%zu].regex: %s", i, why);
        t->n_steps++;
    }
    return bad(err, w, "pre_tokenizer must end with a byte_level step");
}

static int special_id(tokenizer *t, const json_t *tok, const char *key, int *out, dsq_error *err)
{
    const json_t *v = json_object_get(tok, key);
    json_int_t id = json_integer_value(v);
    if (!json_is_integer(v) || id < 0 || id >= t->bpe.n_tokens || !t->bpe.str[id])
        return bad(err, t->where, "%s must name a token", key);
    *out = (int)id;
    return DSQ_OK;
}

int tokenizer_load(tokenizer **out, const json_t *tok, const char *where, dsq_error *err)
{
    *out = NULL;
    tokenizer *t = calloc(1, sizeof *t);
    if (!t || !(t->where = strdup(where ? where : "(tokenizer)"))) {
        free(t);
        return dsq_fail(err, DSQ_ERESOURCE, "%s: tokenizer: out of memory", where);
    }
    const char *model = json_string_value(json_object_get(tok, "model"));
    int rc;
    if (!json_is_object(tok) || !model || strcmp(model, "bpe-byte-level") != 0)
        rc = bad(err, t->where, "model must be \"bpe-byte-level\"");
    else if (!(rc = load_tokens(t, json_object_get(tok, "tokens"), err)) &&
             !(rc = load_merges(t, json_object_get(tok, "merges"), err)) &&
             !(rc = load_added(t, json_object_get(tok, "added_tokens"), err)) &&
             !(rc = load_steps(t, json_object_get(tok, "pre_tokenizer"), err)) &&
             !(rc = special_id(t, tok, "bos_token_id", &t->bos, err)) &&
             !(rc = special_id(t, tok, "eos_token_id", &t->eos, err)) &&
             (get_flag(tok, "ignore_merges", &t->bpe.ignore_merges) ||
              get_flag(tok, "add_bos_token", &t->add_bos) ||
              get_flag(tok, "add_eos_token", &t->add_eos)))
        rc = bad(err, t->where, "ignore_merges, add_bos_token and add_eos_token must be booleans");
    if (rc) {
        tokenizer_free(t);
        return rc;
    }
    *out = t;
    return DSQ_OK;
}

void tokenizer_free(tokenizer *t)
{
    if (!t)
        return;
    bpe_free(&t->bpe);
    free(t->bpe.str);
    free(t->bpe.len);
    free(t->str_blob);
    free(t->bytes_blob);
    free(t->bytes_off);
    free(t->bytes_len);
    free(t->added);
    free(t->added_of);
    for (int p = 0; p < 2; p++)
        free(t->trie[p].node);
    for (int i = 0; i < t->n_steps; i++)
        split_step_free(&t->steps[i]);
    free(t->steps);
    pcre2_code_free(t->word_re);
    free(t->where);
    free(t);
}

/* ---- encoding ------------------------------------------------------------------------------ */

static void swap_pieces(enc *e)
{
    piece_vec x = e->a;
    e->a = e->b;
    e->b = x;
    e->b.n = 0;
}

static int encode_text(const tokenizer *t, const char *s, size_t len, enc *e, dsq_error *err)
{
    if (len > 0 && piece_push(&e->a, 0, len, -1))
        return oom(err, t->where);
    /* HF: first the tokens matched in the raw text, then the "normalized" ones in what is left
     * (the normalizer is the identity for the files dsq accepts) */
    for (int pass = 0; pass < 2; pass++) {
        if (!t->trie[pass].n)
            continue;
        for (size_t i = 0; i < e->a.n; i++) {
            const tok_piece *p = &e->a.v[i];
            if (p->id >= 0 ? piece_push(&e->b, p->start, p->end, p->id)
                           : added_split(t, &t->trie[pass], s, p, e))
                return oom(err, t->where);
        }
        swap_pieces(e);
    }
    for (int k = 0; k < t->n_steps; k++) {
        for (size_t i = 0; i < e->a.n; i++) {
            const tok_piece *p = &e->a.v[i];
            int pcre_rc = 0, rc = p->id >= 0
                                      ? piece_push(&e->b, p->start, p->end, p->id)
                                      : split_apply(&t->steps[k], s, p, &e->b, &e->split, &pcre_rc);
            if (rc == -2) {
                PCRE2_UCHAR msg[200];
                pcre2_get_error_message(pcre_rc, msg, sizeof msg);
                return dsq_fail(err, pcre_rc == PCRE2_ERROR_NOMEMORY ? DSQ_ERESOURCE : DSQ_EINPUT,
                                "%s: tokenizer.pre_tokenizer[%d]: matching failed: %s", t->where, k,
                                (char *)msg);
            }
            if (rc)
                return oom(err, t->where);
        }
        swap_pieces(e);
    }
    for (size_t i = 0; i < e->a.n; i++) {
        const tok_piece *p = &e->a.v[i];
        int rc =
            p->id >= 0
                ? id_vec_push(&e->ids, p->id)
                : bpe_encode_piece(&t->bpe, (const unsigned char *)s + p->start, p->end - p->start,
                                   t->add_prefix_space && s[p->start] != ' ', &e->bpe, &e->ids);
        if (rc)
            return oom(err, t->where);
    }
    return DSQ_OK;
}

int tokenizer_encode(const tokenizer *t, const char *text, size_t len, int add, int **ids,
                     size_t *n, dsq_error *err)
{
    *ids = NULL;
    *n = 0;
    bool no_mem;
    size_t fixed_len = len;
    char *fixed = utf8_sanitize(text, len, &fixed_len, &no_mem);
    if (no_mem)
        return oom(err, t->where);
    enc e = {0};
    int rc = DSQ_OK;
    if ((add & TOKENIZER_ADD_BOS) && id_vec_push(&e.ids, t->bos))
        rc = oom(err, t->where);
    if (!rc)
        rc = encode_text(t, fixed ? fixed : text, fixed_len, &e, err);
    if (!rc && (add & TOKENIZER_ADD_EOS) && id_vec_push(&e.ids, t->eos))
        rc = oom(err, t->where);
    if (!rc && !e.ids.v && !(e.ids.v = malloc(sizeof(int))))
        rc = oom(err, t->where);
    free(fixed);
    if (!rc) {
        *ids = e.ids.v;
        *n = e.ids.n;
        e.ids.v = NULL;
    }
    enc_free(&e);
    return rc;
}

/* ---- queries ------------------------------------------------------------------------------- */

int tokenizer_default_add(const tokenizer *t)
{
    return (t->add_bos ? TOKENIZER_ADD_BOS : 0) | (t->add_eos ? TOKENIZER_ADD_EOS : 0);
}

const char *tokenizer_token_bytes(const tokenizer *t, int id, size_t *len)
{
    *len = 0;
    if (id < 0 || id >= t->bpe.n_tokens || !t->bpe.str[id])
        return NULL;
    *len = t->bytes_len[id];
    return t->bytes_blob + t->bytes_off[id];
}

bool tokenizer_is_special(const tokenizer *t, int id)
{
    return id >= 0 && id < t->bpe.n_tokens && t->added_of[id] >= 0 &&
           t->added[t->added_of[id]].special;
}

int tokenizer_bos(const tokenizer *t)
{
    return t->bos;
}

int tokenizer_eos(const tokenizer *t)
{
    return t->eos;
}

int tokenizer_n_tokens(const tokenizer *t)
{
    return t->bpe.n_tokens;
}
