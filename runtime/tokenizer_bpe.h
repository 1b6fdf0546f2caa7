/* Internal to the tokenizer: UTF-8 helpers, the byte-level BPE model (vocabulary lookup by
 * string, merge ranks by id pair) and the merge loop that HF's BPE::merge_word runs on one
 * pre-tokenized piece. */
#ifndef DSQ_TOKENIZER_BPE_H
#define DSQ_TOKENIZER_BPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Open-addressing map from a token string to its id; the strings are the model's own. */
typedef struct {
    int32_t *slot;  /* id, or -1 where empty */
    uint32_t *hash; /* hash of the string in the same slot */
    size_t mask;
} str_map;

/* Open-addressing map from a (left id, right id) pair to its rank and the merged token's id. */
typedef struct {
    uint64_t key; /* left << 32 | right; PAIR_EMPTY where empty */
    uint32_t rank;
    int32_t id;
} pair_entry;
#define PAIR_EMPTY UINT64_MAX
typedef struct {
    pair_entry *slot;
    size_t mask;
} pair_map;

typedef struct {
    int n_tokens;
    const char **str; /* (n_tokens) token string in the byte-level alphabet, NULL for holes */
    uint32_t *len;    /* (n_tokens) its length in bytes */
    str_map vocab;    /* every non-NULL token */
    pair_map merges;
    int32_t byte_id[256]; /* the token of each byte's one-character symbol, -1 if none */
    bool ignore_merges;
} bpe_model;

/* The sequence at p (n >= 1 bytes available), by Unicode's table of well-formed UTF-8: its
 * length if valid; 0 if the n bytes are a valid start of a longer one; -k if the first k bytes
 * are the maximal ill-formed subpart that one U+FFFD replaces. */
int utf8_check(const unsigned char *p, size_t n);
/* The code point of the valid UTF-8 character at p; its length in *len. */
uint32_t utf8_decode(const unsigned char *p, int *len);
/* Rust's char::is_whitespace (the White_Space property), which HF's lstrip/rstrip use. */
bool is_white_space(uint32_t c);

/* GPT-2's bytes_to_unicode: the code point that stands for byte b (b itself where printable). */
uint32_t byte_level_char(unsigned b);
/* The inverse: the byte a code point stands for, or -1 outside the alphabet. */
int byte_level_byte(uint32_t cp);

uint32_t str_hash(const char *s, size_t len);
/* Builds m->vocab from m->str / m->len (a string seen twice keeps its first id). */
int bpe_build_vocab(bpe_model *m);
/* Id of the token spelled s[0..len), or -1. */
int bpe_lookup(const bpe_model *m, const char *s, size_t len);
/* Makes room for n merges; then bpe_add_merge records that left+right merges into id at rank
 * (a pair recorded again takes the new rank and id, as HF's merge map does). */
int bpe_alloc_merges(bpe_model *m, size_t n);
void bpe_add_merge(bpe_model *m, int32_t left, int32_t right, uint32_t rank, int32_t id);
void bpe_free(bpe_model *m);

/* Reusable buffers of one encode call. */
typedef struct {
    struct bpe_symbol *sym;
    size_t sym_cap;
    struct bpe_merge *heap;
    size_t heap_cap;
    char *str; /* the piece in the byte-level alphabet (for ignore_merges) */
    size_t str_cap;
} bpe_scratch;
void bpe_scratch_free(bpe_scratch *s);

/* Growable id list. */
typedef struct {
    int *v;
    size_t n, cap;
} id_vec;
int id_vec_push(id_vec *v, int id);

/* Appends the ids of one piece: its bytes (after a ' ' when prefix_space) mapped to the
 * byte-level alphabet and merged by rank. Bytes without a symbol in the vocabulary are dropped,
 * as HF does with no unk_token. Returns 0, or -1 when out of memory. */
int bpe_encode_piece(const bpe_model *m, const unsigned char *bytes, size_t len, bool prefix_space,
                     bpe_scratch *s, id_vec *out);

#endif
