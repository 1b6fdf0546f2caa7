/* Which routed experts to keep in a fixed number of GPU slots, and a replay of routing traces
 * against it. A key is (MoE layer, expert) = moe * n_experts + expert; the slots are shared by
 * all layers. Policies:
 *  - static: the slots hold the experts most used in a profile (expert_cache_seed), never change;
 *  - LRU: every miss is loaded, evicting the least recently used;
 *  - LFU with decay: each key's use count decays with a half-life in tokens; a miss is loaded
 *    only when its decayed count exceeds the smallest resident one (which it evicts) by more
 *    than a margin of uses, so a rare expert does not push out a hot one and two experts
 *    equally used do not trade places on noise. Seeding sets the counts from a profile.
 * A miss is computed on the host either way; a load is one expert copied to the GPU. */
#ifndef DSQ_EXPERT_CACHE_H
#define DSQ_EXPERT_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "expert_stats.h"

typedef enum { EXPERT_CACHE_STATIC, EXPERT_CACHE_LRU, EXPERT_CACHE_LFU } expert_cache_policy;

const char *expert_cache_policy_name(expert_cache_policy p);

/* LFU defaults: a count halves every 32 tokens; a load needs 8 more uses than the evicted
 * expert's (docs/OFFLOAD.md has the measurements behind both). */
#define EXPERT_CACHE_HALF_LIFE 32.0
#define EXPERT_CACHE_MARGIN 8.0

typedef struct {
    expert_cache_policy policy;
    int n_keys, slots;
    double half_life; /* LFU: tokens for a count to halve, at least 1 */
    double margin;    /* LFU: uses a miss's count must exceed the victim's by to be loaded */
    int *slot_key;    /* [slots]: -1 when free */
    int *key_slot;    /* [n_keys]: -1 when not resident */
    uint64_t *last;   /* [n_keys] LRU: last use; LFU: token of the last score update */
    double *score;    /* [n_keys] LFU: decayed use count at `last` */
    /* The occupied slots as a binary min-heap on (rank, slot), so the victim is found in
     * constant time and a rank change costs log(slots). A rank orders residents the same way
     * at every time: LRU the last use, LFU log2(score) + last / half_life (the log of the
     * decayed count plus now / half_life, which all keys share). */
    int *heap;     /* [slots] slot numbers, heap[0] the victim */
    int *heap_pos; /* [slots] index of each slot in heap, -1 when free */
    double *rank;  /* [slots] rank of the slot's key */
    uint64_t now;  /* tokens so far */
    int used;      /* occupied slots (also the heap's size) */
} expert_cache;

int expert_cache_init(expert_cache *c, expert_cache_policy policy, int n_keys, int slots,
                      double half_life, double margin, dsq_error *err);
void expert_cache_free(expert_cache *c);

/* Seeds from per-key counts (n_keys of them): static and LFU fill the slots with the largest
 * counts (ties: lower key first); LFU also starts its scores from them. */
void expert_cache_seed(expert_cache *c, const uint64_t *counts);

/* One use of key: true on a hit. On a miss, *loaded says whether the policy copied it in. */
bool expert_cache_access(expert_cache *c, int key, bool *loaded);

/* One use of key counted as access counts it, but never loading: true on a hit. */
bool expert_cache_count(expert_cache *c, int key);

/* The slot the next load would take (a free one first, else the victim); -1 without slots. */
int expert_cache_victim(const expert_cache *c);

/* The next token starts (ages LRU and LFU). */
static inline void expert_cache_tick(expert_cache *c)
{
    c->now++;
}

typedef struct {
    size_t tokens;                 /* replayed and counted */
    uint64_t lookups, hits, loads; /* routed (token, layer, expert) uses */
} expert_cache_result;

/* Replays the trace of s: its first profile_tokens tokens build the static profile (and warm
 * LRU and LFU, uncounted); the rest are counted. DSQ_EUSAGE when the trace is missing or has
 * no token after the profile. */
int expert_cache_replay(const expert_stats *s, size_t profile_tokens, expert_cache_policy policy,
                        int slots, double half_life, double margin, expert_cache_result *r,
                        dsq_error *err);

#endif
