/* Internal to the tokenizer: the split pre-tokenizer steps (HF's Split with a regex, its five
 * delimiter behaviors and invert), with the regexes rewritten from Oniguruma to PCRE2. */
#ifndef DSQ_TOKENIZER_SPLIT_H
#define DSQ_TOKENIZER_SPLIT_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdbool.h>
#include <stddef.h>

enum split_behavior {
    SPLIT_ISOLATED,
    SPLIT_REMOVED,
    SPLIT_MERGED_WITH_PREVIOUS,
    SPLIT_MERGED_WITH_NEXT,
    SPLIT_CONTIGUOUS,
};

typedef struct {
    pcre2_code *re;
    enum split_behavior behavior;
    bool invert;
} split_step;

/* A piece of the text being encoded: bytes [start, end); id >= 0 for an added token. */
typedef struct {
    size_t start, end;
    int id;
} tok_piece;

typedef struct {
    tok_piece *v;
    size_t n, cap;
} piece_vec;
int piece_push(piece_vec *v, size_t start, size_t end, int id);

/* Compiles a regex written for Oniguruma's Ruby syntax (HF's SysRegex) into st->re. On failure
 * returns -1 with the reason in why; -2 when out of memory. */
int split_compile(split_step *st, const char *re, size_t len, char *why, size_t why_len);
void split_step_free(split_step *st);

/* Buffers of one encode call. */
typedef struct {
    pcre2_match_data *md;
    pcre2_match_context *mctx; /* with a large JIT stack, made when the default one ran out */
    pcre2_jit_stack *jit;
    struct split_span *span;
    size_t span_cap;
} split_scratch;
void split_scratch_free(split_scratch *s);

/* Splits text[p->start, p->end) by st and appends the pieces it becomes (empty ones dropped,
 * as HF does). Returns 0; -1 when out of memory; -2 when PCRE2 failed with *pcre_rc. */
int split_apply(const split_step *st, const char *text, const tok_piece *p, piece_vec *out,
                split_scratch *s, int *pcre_rc);

#endif
