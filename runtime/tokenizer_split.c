/* HF's Split pre-tokenizer: regex matches found as Oniguruma's find_iter finds them, turned into
 * pieces by the delimiter behavior, and the rewriting of Oniguruma (Ruby syntax) regexes into
 * PCRE2 regexes that match the same text. */
#include "tokenizer_split.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct split_span {
    size_t a, b; /* bytes of the piece */
    bool match;
};

int piece_push(piece_vec *v, size_t start, size_t end, int id)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? 2 * v->cap : 64;
        tok_piece *p = realloc(v->v, cap * sizeof *p);
        if (!p)
            return -1;
        v->v = p;
        v->cap = cap;
    }
    v->v[v->n++] = (tok_piece){start, end, id};
    return 0;
}

/* ---- Oniguruma -> PCRE2 ---------------------------------------------------------------- */

typedef struct {
    char *p;
    size_t n, cap;
    bool oom;
} sbuf;

static void put(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void puts_(sbuf *b, const char *s)
{
    put(b, s, strlen(s));
}

/* Oniguruma's Unicode \w (checked against HF): Letter | Mark | Number | Connector_Punctuation. */
#define ONIG_WORD "\\p{L}\\p{M}\\p{N}\\p{Pc}"
#define ONIG_W "[" ONIG_WORD "]"
#define ONIG_BOUNDARY "(?:(?<=" ONIG_W ")(?!" ONIG_W ")|(?<!" ONIG_W ")(?=" ONIG_W "))"
#define ONIG_NOT_BOUNDARY "(?:(?<=" ONIG_W ")(?=" ONIG_W ")|(?<!" ONIG_W ")(?!" ONIG_W "))"

/* POSIX brackets inside a class, as Oniguruma reads them on Unicode text. */
static const char *posix_class(const char *name, size_t n)
{
    static const char *const map[][2] = {
        {"alpha", "\\p{Alphabetic}"}, {"alnum", "\\p{Alphabetic}\\p{Nd}"},
        {"digit", "\\p{Nd}"},         {"space", "\\p{White_Space}"},
        {"upper", "\\p{Uppercase}"},  {"lower", "\\p{Lowercase}"},
        {"xdigit", "0-9A-Fa-f"},      {"word", "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}"},
        {"blank", "\\p{Zs}\\t"},
    };
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        if (strlen(map[i][0]) == n && memcmp(map[i][0], name, n) == 0)
            return map[i][1];
    return NULL;
}

static size_t utf8_char_len(unsigned char c)
{
    return c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

static int is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Rewrites re[0..len) into o. HF compiles split regexes with Oniguruma's Ruby syntax, where
 * \s is White_Space, \w is L|M|N|Pc, \h is a hex digit, \v is VT, \uHHHH a code point, ^ and $
 * anchor lines (PCRE2_MULTILINE gives that), (?m) is PCRE's (?s) and {,n} is {0,n}. Everything
 * else used by tokenizer files reads the same in both. Returns 0, or -1 with why set. */
static int onig_to_pcre2(const char *re, size_t len, sbuf *o, char *why, size_t why_len)
{
    bool in_class = false;
    for (size_t i = 0; i < len;) {
        char c = re[i];
        if (c == '\\' && i + 1 < len) {
            char e = re[i + 1];
            const char *rep = NULL;
            switch (e) {
            case 's':
                rep = "\\p{White_Space}";
                break;
            case 'S':
                rep = "\\P{White_Space}";
                break;
            case 'w':
                rep = in_class ? ONIG_WORD : ONIG_W;
                break;
            case 'h':
                rep = in_class ? "0-9A-Fa-f" : "[0-9A-Fa-f]";
                break;
            case 'W':
            case 'H':
                if (in_class) {
                    snprintf(why, why_len, "\\%c inside a character class is not supported", e);
                    return -1;
                }
                rep = e == 'W' ? "[^" ONIG_WORD "]" : "[^0-9A-Fa-f]";
                break;
            case 'b': /* inside a class \b is a backspace in both */
                rep = in_class ? NULL : ONIG_BOUNDARY;
                break;
            case 'B':
                rep = in_class ? NULL : ONIG_NOT_BOUNDARY;
                break;
            case 'v':
                rep = "\\x{0B}";
                break;
            case 'u':
                if (i + 5 < len && is_hex(re[i + 2]) && is_hex(re[i + 3]) && is_hex(re[i + 4]) &&
                    is_hex(re[i + 5])) {
                    puts_(o, "\\x{");
                    put(o, re + i + 2, 4);
                    puts_(o, "}");
                    i += 6;
                    continue;
                }
                break;
            }
            if (rep) {
                puts_(o, rep);
                i += 2;
                continue;
            }
            size_t n = 1 + utf8_char_len((unsigned char)e);
            if (i + n > len)
                n = len - i;
            put(o, re + i, n);
            i += n;
            continue;
        }
        if (!in_class) {
            if (c == '[') {
                in_class = true;
                put(o, re + i++, 1);
                if (i < len && re[i] == '^')
                    put(o, re + i++, 1);
                if (i < len && re[i] == ']') { /* a leading ] is literal in both */
                    puts_(o, "\\]");
                    i++;
                }
                continue;
            }
            if (c == '(' && i + 2 < len && re[i + 1] == '?' && re[i + 2] &&
                strchr("imx-", re[i + 2])) {
                size_t j = i + 2;
                while (j < len && re[j] && strchr("imx-", re[j]))
                    j++;
                if (j < len && (re[j] == ':' || re[j] == ')')) {
                    puts_(o, "(?");
                    for (size_t k = i + 2; k < j; k++)
                        put(o, re[k] == 'm' ? "s" : re + k, 1);
                    i = j;
                    continue;
                }
            }
            if (c == '{' && i + 1 < len && re[i + 1] == ',') {
                size_t j = i + 2;
                while (j < len && re[j] >= '0' && re[j] <= '9')
                    j++;
                if (j > i + 2 && j < len && re[j] == '}') {
                    puts_(o, "{0,");
                    i += 2;
                    continue;
                }
            }
            put(o, re + i++, 1);
            continue;
        }
        if (c == '[') {
            const char *end = i + 1 < len && re[i + 1] == ':' ? strstr(re + i + 2, ":]") : NULL;
            const char *rep = end && (size_t)(end - re) < len
                                  ? posix_class(re + i + 2, (size_t)(end - (re + i + 2)))
                                  : NULL;
            if (!rep) {
                snprintf(why, why_len,
                         "a nested character class or POSIX bracket at byte %zu is not supported",
                         i);
                return -1;
            }
            puts_(o, rep);
            i = (size_t)(end - re) + 2;
            continue;
        }
        if (c == '&' && i + 1 < len && re[i + 1] == '&') {
            snprintf(why, why_len, "class intersection (&&) at byte %zu is not supported", i);
            return -1;
        }
        if (c == ']')
            in_class = false;
        put(o, re + i++, 1);
    }
    return 0;
}

int split_compile(split_step *st, const char *re, size_t len, char *why, size_t why_len)
{
    sbuf o = {0};
    put(&o, "", 0);
    if (onig_to_pcre2(re, len, &o, why, why_len)) {
        free(o.p);
        return -1;
    }
    if (o.oom)
        return -2;
    pcre2_compile_context *cc = pcre2_compile_context_create(NULL);
    if (!cc) {
        free(o.p);
        return -2;
    }
    pcre2_set_newline(cc, PCRE2_NEWLINE_LF); /* Oniguruma's newline for ^ $ . */
    int code;
    PCRE2_SIZE off;
    st->re = pcre2_compile((PCRE2_SPTR)o.p, o.n, PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, &code,
                           &off, cc);
    pcre2_compile_context_free(cc);
    if (!st->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        snprintf(why, why_len, "%s (at byte %zu of the PCRE2 form \"%s\")", (char *)msg,
                 (size_t)off, o.p);
        free(o.p);
        return -1;
    }
    free(o.p);
    pcre2_jit_compile(st->re, PCRE2_JIT_COMPLETE); /* without JIT pcre2_match interprets */
    return 0;
}

void split_step_free(split_step *st)
{
    pcre2_code_free(st->re);
    st->re = NULL;
}

void split_scratch_free(split_scratch *s)
{
    pcre2_match_data_free(s->md);
    pcre2_match_context_free(s->mctx);
    pcre2_jit_stack_free(s->jit);
    free(s->span);
    *s = (split_scratch){0};
}

/* ---- matching ---------------------------------------------------------------------------- */

static int span_push(split_scratch *s, size_t *n, size_t a, size_t b, bool match)
{
    if (*n == s->span_cap) {
        size_t cap = s->span_cap ? 2 * s->span_cap : 64;
        struct split_span *p = realloc(s->span, cap * sizeof *p);
        if (!p)
            return -1;
        s->span = p;
        s->span_cap = cap;
    }
    s->span[(*n)++] = (struct split_span){a, b, match};
    return 0;
}

static int match_at(const split_step *st, const char *subj, size_t len, size_t from,
                    split_scratch *s)
{
    int rc = pcre2_match(st->re, (PCRE2_SPTR)subj, len, from, PCRE2_NO_UTF_CHECK, s->md, s->mctx);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !s->mctx) {
        s->mctx = pcre2_match_context_create(NULL);
        s->jit = pcre2_jit_stack_create(32 << 10, 64 << 20, NULL);
        if (!s->mctx || !s->jit)
            return PCRE2_ERROR_NOMEMORY;
        pcre2_jit_stack_assign(s->mctx, NULL, s->jit);
        rc = pcre2_match(st->re, (PCRE2_SPTR)subj, len, from, PCRE2_NO_UTF_CHECK, s->md, s->mctx);
    }
    return rc;
}

/* HF's Pattern::find_matches for a regex: spans covering the piece, each a match or not. The
 * matches are those of Oniguruma's find_iter (the onig crate): an empty match right where the
 * previous match ended is skipped by moving on one character. */
static int find_matches(const split_step *st, const char *subj, size_t len, split_scratch *s,
                        size_t *n_span, int *pcre_rc)
{
    size_t n = 0, prev = 0, last_end = 0, last_match_end = 0;
    bool any = false;
    while (last_end <= len) {
        int rc = match_at(st, subj, len, last_end, s);
        if (rc == PCRE2_ERROR_NOMATCH)
            break;
        if (rc < 0) {
            *pcre_rc = rc;
            return -2;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(s->md);
        size_t a = ov[0], b = ov[1];
        if (a < prev || b < a) { /* \K can report such a match; Oniguruma has no equivalent */
            *pcre_rc = PCRE2_ERROR_BADOFFSET;
            return -2;
        }
        if (a == b && any && last_match_end == b) {
            last_end += last_end < len ? utf8_char_len((unsigned char)subj[last_end]) : 1;
            continue;
        }
        last_end = last_match_end = b;
        any = true;
        if (prev != a && span_push(s, &n, prev, a, false))
            return -1;
        if (span_push(s, &n, a, b, true))
            return -1;
        prev = b;
    }
    if (prev != len && span_push(s, &n, prev, len, false))
        return -1;
    *n_span = n;
    return 0;
}

int split_apply(const split_step *st, const char *text, const tok_piece *p, piece_vec *out,
                split_scratch *s, int *pcre_rc)
{
    if (!s->md && !(s->md = pcre2_match_data_create(1, NULL)))
        return -1;
    size_t n;
    int rc = find_matches(st, text + p->start, p->end - p->start, s, &n, pcre_rc);
    if (rc)
        return rc;
    struct split_span *sp = s->span;
    if (st->invert)
        for (size_t i = 0; i < n; i++)
            sp[i].match = !sp[i].match;
    /* Fold the spans in place as HF's NormalizedString::split does; k spans remain and .match
     * then means "remove". */
    size_t k = 0;
    bool prev_match = false;
    switch (st->behavior) {
    case SPLIT_ISOLATED:
        for (size_t i = 0; i < n; i++)
            sp[i].match = false;
        k = n;
        break;
    case SPLIT_REMOVED:
        k = n;
        break;
    case SPLIT_CONTIGUOUS:
        for (size_t i = 0; i < n; i++) {
            bool m = sp[i].match;
            if (m == prev_match && k > 0)
                sp[k - 1].b = sp[i].b;
            else
                sp[k++] = (struct split_span){sp[i].a, sp[i].b, false};
            prev_match = m;
        }
        break;
    case SPLIT_MERGED_WITH_PREVIOUS:
        for (size_t i = 0; i < n; i++) {
            bool m = sp[i].match;
            if (m && !prev_match && k > 0)
                sp[k - 1].b = sp[i].b;
            else
                sp[k++] = (struct split_span){sp[i].a, sp[i].b, false};
            prev_match = m;
        }
        break;
    case SPLIT_MERGED_WITH_NEXT: /* the same fold run from the end */
        k = n;
        for (size_t i = n; i-- > 0;) {
            bool m = sp[i].match;
            if (m && !prev_match && k < n)
                sp[k].a = sp[i].a;
            else
                sp[--k] = (struct split_span){sp[i].a, sp[i].b, false};
            prev_match = m;
        }
        memmove(sp, sp + k, (n - k) * sizeof *sp);
        k = n - k;
        break;
    }
    for (size_t i = 0; i < k; i++)
        if (!sp[i].match && sp[i].b > sp[i].a &&
            piece_push(out, p->start + sp[i].a, p->start + sp[i].b, -1))
            return -1;
    return 0;
}
