/* Byte-level BPE: the GPT-2 byte alphabet, hash tables over the vocabulary and the merges, and
 * the merge loop (a min-heap of (rank, position), as HF's Word::merge_all). */
#include "tokenizer_bpe.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

struct bpe_symbol {
    int32_t c;    /* token id */
    int32_t prev; /* index of the previous live symbol, -1 at the start */
    int32_t next; /* index of the next live symbol, -1 at the end */
    uint32_t len; /* symbols covered; 0 once merged into its left neighbour */
};

struct bpe_merge {
    uint32_t rank;
    uint32_t pos; /* index of the left symbol */
    int32_t id;   /* the merged token */
};

uint32_t byte_level_char(unsigned b)
{
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE)
        return b;
    /* the others, in byte order, become 256, 257, ...: 0x00-0x20, 0x7F-0xA0, 0xAD */
    if (b <= 0x20)
        return 256 + b;
    if (b <= 0xA0)
        return 256 + 33 + (b - 0x7F);
    return 256 + 33 + 34; /* 0xAD */
}

int byte_level_byte(uint32_t cp)
{
    if (cp < 256)
        return byte_level_char(cp) == cp ? (int)cp : -1;
    if (cp < 256 + 33)
        return (int)(cp - 256);
    if (cp < 256 + 33 + 34)
        return (int)(cp - 256 - 33 + 0x7F);
    return cp == 256 + 33 + 34 ? 0xAD : -1;
}

/* xxHash is already a dependency; XXH3 is fast on the short strings tokens are. */
uint32_t str_hash(const char *s, size_t len)
{
    return (uint32_t)XXH3_64bits(s, len);
}

static size_t table_size(size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    return cap;
}

int bpe_build_vocab(bpe_model *m)
{
    size_t cap = table_size((size_t)m->n_tokens);
    str_map *v = &m->vocab;
    v->slot = malloc(cap * sizeof *v->slot);
    v->hash = malloc(cap * sizeof *v->hash);
    if (!v->slot || !v->hash)
        return -1;
    memset(v->slot, 0xff, cap * sizeof *v->slot);
    v->mask = cap - 1;
    for (int id = 0; id < m->n_tokens; id++) {
        if (!m->str[id])
            continue;
        uint32_t h = str_hash(m->str[id], m->len[id]);
        size_t i = h & v->mask;
        int dup = 0;
        for (; v->slot[i] >= 0; i = (i + 1) & v->mask) {
            int32_t o = v->slot[i];
            if (v->hash[i] == h && m->len[o] == m->len[id] &&
                memcmp(m->str[o], m->str[id], m->len[id]) == 0) {
                dup = 1;
                break;
            }
        }
        if (!dup) {
            v->slot[i] = id;
            v->hash[i] = h;
        }
    }
    for (unsigned b = 0; b < 256; b++) {
        uint32_t cp = byte_level_char(b);
        char c[2];
        size_t n = 1;
        if (cp < 0x80) {
            c[0] = (char)cp;
        } else {
            c[0] = (char)(0xC0 | cp >> 6);
            c[1] = (char)(0x80 | (cp & 0x3F));
            n = 2;
        }
        m->byte_id[b] = bpe_lookup(m, c, n);
    }
    return 0;
}

int bpe_lookup(const bpe_model *m, const char *s, size_t len)
{
    const str_map *v = &m->vocab;
    uint32_t h = str_hash(s, len);
    for (size_t i = h & v->mask; v->slot[i] >= 0; i = (i + 1) & v->mask) {
        int32_t o = v->slot[i];
        if (v->hash[i] == h && m->len[o] == len && memcmp(m->str[o], s, len) == 0)
            return o;
    }
    return -1;
}

int bpe_alloc_merges(bpe_model *m, size_t n)
{
    size_t cap = table_size(n);
    m->merges.slot = malloc(cap * sizeof *m->merges.slot);
    if (!m->merges.slot)
        return -1;
    for (size_t i = 0; i < cap; i++)
        m->merges.slot[i].key = PAIR_EMPTY;
    m->merges.mask = cap - 1;
    return 0;
}

static size_t pair_slot(const pair_map *p, uint64_t key)
{
    size_t i = (size_t)XXH3_64bits(&key, sizeof key) & p->mask;
    while (p->slot[i].key != PAIR_EMPTY && p->slot[i].key != key)
        i = (i + 1) & p->mask;
    return i;
}

void bpe_add_merge(bpe_model *m, int32_t left, int32_t right, uint32_t rank, int32_t id)
{
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    m->merges.slot[pair_slot(&m->merges, key)] = (pair_entry){key, rank, id};
}

static const pair_entry *merge_of(const bpe_model *m, int32_t left, int32_t right)
{
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    const pair_entry *e = &m->merges.slot[pair_slot(&m->merges, key)];
    return e->key == key ? e : NULL;
}

void bpe_free(bpe_model *m)
{
    free(m->vocab.slot);
    free(m->vocab.hash);
    free(m->merges.slot);
    m->vocab.slot = NULL;
    m->vocab.hash = NULL;
    m->merges.slot = NULL;
}

void bpe_scratch_free(bpe_scratch *s)
{
    free(s->sym);
    free(s->heap);
    free(s->str);
    *s = (bpe_scratch){0};
}

int id_vec_push(id_vec *v, int id)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? 2 * v->cap : 64;
        int *p = realloc(v->v, cap * sizeof *p);
        if (!p)
            return -1;
        v->v = p;
        v->cap = cap;
    }
    v->v[v->n++] = id;
    return 0;
}

/* ---- min-heap of merges by (rank, pos), HF's Merge ordering ---- */

static int merge_before(const struct bpe_merge *a, const struct bpe_merge *b)
{
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(struct bpe_merge *h, size_t *n, struct bpe_merge x)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!merge_before(&x, &h[p]))
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

static struct bpe_merge heap_pop(struct bpe_merge *h, size_t *n)
{
    struct bpe_merge top = h[0], x = h[--*n];
    size_t i = 0, len = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= len)
            break;
        if (c + 1 < len && merge_before(&h[c + 1], &h[c]))
            c++;
        if (!merge_before(&h[c], &x))
            break;
        h[i] = h[c];
        i = c;
    }
    if (len)
        h[i] = x;
    return top;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q)
        return -1;
    *p = q;
    *cap = c;
    return 0;
}

/* The piece in the byte-level alphabet, into s->str; returns its length or -1. */
static long byte_level_string(const unsigned char *bytes, size_t len, bool prefix_space,
                              bpe_scratch *s)
{
    if (grow((void **)&s->str, &s->str_cap, 2 * (len + 1), 1))
        return -1;
    size_t k = 0;
    for (size_t i = prefix_space ? (size_t)-1 : 0; i != len; i++) {
        uint32_t cp = byte_level_char(i == (size_t)-1 ? ' ' : bytes[i]);
        if (cp < 0x80) {
            s->str[k++] = (char)cp;
        } else {
            s->str[k++] = (char)(0xC0 | cp >> 6);
            s->str[k++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    return (long)k;
}

int bpe_encode_piece(const bpe_model *m, const unsigned char *bytes, size_t len, bool prefix_space,
                     bpe_scratch *s, id_vec *out)
{
    if (m->ignore_merges) {
        long k = byte_level_string(bytes, len, prefix_space, s);
        if (k < 0)
            return -1;
        int id = bpe_lookup(m, s->str, (size_t)k);
        if (id >= 0)
            return id_vec_push(out, id);
    }
    size_t total = len + (prefix_space ? 1 : 0);
    if (grow((void **)&s->sym, &s->sym_cap, total, sizeof *s->sym) ||
        grow((void **)&s->heap, &s->heap_cap, 2 * total + 1, sizeof *s->heap))
        return -1;
    struct bpe_symbol *sym = s->sym;
    int32_t n = 0;
    for (size_t i = prefix_space ? (size_t)-1 : 0; i != len; i++) {
        unsigned b = i == (size_t)-1 ? ' ' : bytes[i];
        int32_t id = m->byte_id[b];
        if (id < 0)
            continue; /* no symbol for this byte: dropped, as HF does without unk_token */
        sym[n] = (struct bpe_symbol){id, n - 1, -1, 1};
        if (n > 0)
            sym[n - 1].next = n;
        n++;
    }
    struct bpe_merge *heap = s->heap;
    size_t hn = 0;
    for (int32_t i = 0; i + 1 < n; i++) {
        const pair_entry *e = merge_of(m, sym[i].c, sym[i + 1].c);
        if (e)
            heap_push(heap, &hn, (struct bpe_merge){e->rank, (uint32_t)i, e->id});
    }
    while (hn > 0) {
        struct bpe_merge top = heap_pop(heap, &hn);
        struct bpe_symbol *cur = &sym[top.pos];
        if (cur->len == 0 || cur->next < 0)
            continue;
        struct bpe_symbol right = sym[cur->next];
        /* a stale entry: the pair here changed since it was queued */
        const pair_entry *e = merge_of(m, cur->c, right.c);
        if (!e || e->id != top.id)
            continue;
        sym[cur->next].len = 0;
        cur->c = top.id;
        cur->len += right.len;
        cur->next = right.next;
        if (right.next >= 0)
            sym[right.next].prev = (int32_t)top.pos;
        /* each merge adds at most two entries, so the heap never outgrows 2 * total + 1 */
        if (cur->prev >= 0 && (e = merge_of(m, sym[cur->prev].c, cur->c)))
            heap_push(heap, &hn, (struct bpe_merge){e->rank, (uint32_t)cur->prev, e->id});
        if (cur->next >= 0 && (e = merge_of(m, cur->c, sym[cur->next].c)))
            heap_push(heap, &hn, (struct bpe_merge){e->rank, top.pos, e->id});
    }
    for (int32_t i = 0; i < n; i++)
        if (sym[i].len && id_vec_push(out, sym[i].c))
            return -1;
    return 0;
}
