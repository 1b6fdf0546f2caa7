/* Expert slot policies and the trace replay (see expert_cache.h). */
#include "expert_cache.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *expert_cache_policy_name(expert_cache_policy p)
{
    return p == EXPERT_CACHE_STATIC ? "static" : p == EXPERT_CACHE_LRU ? "lru" : "lfu-decay";
}

int expert_cache_init(expert_cache *c, expert_cache_policy policy, int n_keys, int slots,
                      double half_life, double margin, dsq_error *err)
{
    memset(c, 0, sizeof *c);
    c->policy = policy;
    c->n_keys = n_keys;
    c->slots = slots < 0 ? 0 : slots > n_keys ? n_keys : slots;
    c->half_life = half_life >= 1 ? half_life : 1; /* ranks divide by it: keep them finite */
    c->margin = margin > 0 ? margin : 0;
    const size_t room = (size_t)(c->slots ? c->slots : 1);
    c->slot_key = malloc(room * sizeof(int));
    c->heap = malloc(room * sizeof(int));
    c->heap_pos = malloc(room * sizeof(int));
    c->rank = malloc(room * sizeof(double));
    c->key_slot = malloc((size_t)n_keys * sizeof(int));
    c->last = calloc((size_t)n_keys, sizeof(uint64_t));
    c->score = calloc((size_t)n_keys, sizeof(double));
    if (!c->slot_key || !c->heap || !c->heap_pos || !c->rank || !c->key_slot || !c->last ||
        !c->score) {
        expert_cache_free(c);
        return dsq_fail(err, DSQ_ERESOURCE, "out of memory for the expert cache");
    }
    for (int s = 0; s < c->slots; s++)
        c->slot_key[s] = c->heap_pos[s] = -1;
    for (int k = 0; k < n_keys; k++)
        c->key_slot[k] = -1;
    return DSQ_OK;
}

void expert_cache_free(expert_cache *c)
{
    free(c->slot_key);
    free(c->heap);
    free(c->heap_pos);
    free(c->rank);
    free(c->key_slot);
    free(c->last);
    free(c->score);
    memset(c, 0, sizeof *c);
}

/* LFU: the key's count decayed to now. */
static double decayed(const expert_cache *c, int key)
{
    return c->score[key] * exp2(-(double)(c->now - c->last[key]) / c->half_life);
}

/* The order of residents, fixed between a key's updates (see heap in expert_cache.h). */
static double key_rank(const expert_cache *c, int key)
{
    if (c->policy == EXPERT_CACHE_LFU)
        return log2(c->score[key]) + (double)c->last[key] / c->half_life;
    return (double)c->last[key];
}

/* Whether slot a goes before slot b: smaller rank, then lower slot, as a scan would. */
static bool evicted_before(const expert_cache *c, int a, int b)
{
    return c->rank[a] < c->rank[b] || (c->rank[a] == c->rank[b] && a < b);
}

static void heap_set(expert_cache *c, int i, int slot)
{
    c->heap[i] = slot;
    c->heap_pos[slot] = i;
}

/* Moves the slot at heap index i up or down to its place. */
static void heap_fix(expert_cache *c, int i)
{
    const int slot = c->heap[i];
    while (i > 0 && evicted_before(c, slot, c->heap[(i - 1) / 2])) {
        heap_set(c, i, c->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    for (;;) {
        int child = 2 * i + 1;
        if (child >= c->used)
            break;
        if (child + 1 < c->used && evicted_before(c, c->heap[child + 1], c->heap[child]))
            child++;
        if (!evicted_before(c, c->heap[child], slot))
            break;
        heap_set(c, i, c->heap[child]);
        i = child;
    }
    heap_set(c, i, slot);
}

/* The key's rank may have changed: its slot, if it has one, moves in the heap. */
static void rerank(expert_cache *c, int key)
{
    const int slot = c->key_slot[key];
    if (slot < 0)
        return;
    c->rank[slot] = key_rank(c, key);
    heap_fix(c, c->heap_pos[slot]);
}

static void place(expert_cache *c, int slot, int key)
{
    if (c->slot_key[slot] >= 0) {
        c->key_slot[c->slot_key[slot]] = -1;
    } else {
        heap_set(c, c->used, slot);
        c->used++;
    }
    c->slot_key[slot] = key;
    c->key_slot[key] = slot;
    rerank(c, key);
}

int expert_cache_victim(const expert_cache *c)
{
    if (c->slots == 0)
        return -1;
    return c->used < c->slots ? c->used : c->heap[0]; /* slots fill in order, never freed */
}

void expert_cache_seed(expert_cache *c, const uint64_t *counts)
{
    for (int s = 0; s < c->slots; s++) { /* selection of the largest counts: slots are few */
        int best = -1;
        for (int k = 0; k < c->n_keys; k++)
            if (c->key_slot[k] < 0 && (best < 0 || counts[k] > counts[best]))
                best = k;
        place(c, s, best);
    }
    if (c->policy == EXPERT_CACHE_LFU) {
        for (int k = 0; k < c->n_keys; k++) {
            c->score[k] = (double)counts[k];
            c->last[k] = c->now;
        }
        for (int s = 0; s < c->used; s++)
            rerank(c, c->slot_key[s]);
    }
}

/* A use of key: LFU adds it to the decayed count, LRU marks a resident key used now. */
static void note_use(expert_cache *c, int key)
{
    if (c->policy == EXPERT_CACHE_LFU) {
        c->score[key] = decayed(c, key) + 1;
        c->last[key] = c->now;
    } else if (c->policy == EXPERT_CACHE_LRU && c->key_slot[key] >= 0) {
        c->last[key] = c->now;
    }
    if (c->policy != EXPERT_CACHE_STATIC)
        rerank(c, key);
}

bool expert_cache_count(expert_cache *c, int key)
{
    note_use(c, key);
    return c->key_slot[key] >= 0;
}

bool expert_cache_access(expert_cache *c, int key, bool *loaded)
{
    *loaded = false;
    note_use(c, key);
    if (c->key_slot[key] >= 0)
        return true;
    if (c->policy == EXPERT_CACHE_STATIC || c->slots == 0)
        return false;
    const int victim = expert_cache_victim(c);
    /* colder than the coldest resident, or not by the margin: compute it on the host */
    if (c->policy == EXPERT_CACHE_LFU && c->used == c->slots &&
        !(c->score[key] > decayed(c, c->slot_key[victim]) + c->margin))
        return false;
    if (c->policy == EXPERT_CACHE_LRU)
        c->last[key] = c->now;
    place(c, victim, key);
    *loaded = true;
    return false;
}

int expert_cache_replay(const expert_stats *s, size_t profile_tokens, expert_cache_policy policy,
                        int slots, double half_life, double margin, expert_cache_result *r,
                        dsq_error *err)
{
    memset(r, 0, sizeof *r);
    if (!s->keep_trace || s->trace_tokens <= profile_tokens)
        return dsq_fail(err, DSQ_EUSAGE,
                        "the statistics hold %zu traced tokens: none left after "
                        "a profile of %zu",
                        s->trace_tokens, profile_tokens);
    const int n_keys = s->n_moe * s->n_experts;
    uint64_t *profile = calloc((size_t)n_keys, sizeof *profile);
    expert_cache c;
    int rc = profile ? expert_cache_init(&c, policy, n_keys, slots, half_life, margin, err)
                     : dsq_fail(err, DSQ_ERESOURCE, "out of memory for the profile");
    if (rc) {
        free(profile);
        return rc;
    }
    for (size_t t = 0; t < profile_tokens; t++)
        for (int m = 0; m < s->n_moe; m++)
            for (int i = 0; i < s->k; i++)
                profile[m * s->n_experts + expert_stats_trace_at(s, t, m)[i]]++;
    if (policy == EXPERT_CACHE_STATIC)
        expert_cache_seed(&c, profile);
    for (size_t t = policy == EXPERT_CACHE_STATIC ? profile_tokens : 0; t < s->trace_tokens; t++) {
        const bool counted = t >= profile_tokens;
        for (int m = 0; m < s->n_moe; m++)
            for (int i = 0; i < s->k; i++) {
                bool loaded;
                const bool hit = expert_cache_access(
                    &c, m * s->n_experts + expert_stats_trace_at(s, t, m)[i], &loaded);
                if (counted) {
                    r->lookups++;
                    r->hits += hit;
                    r->loads += loaded;
                }
            }
        expert_cache_tick(&c);
        r->tokens += counted;
    }
    expert_cache_free(&c);
    free(profile);
    return DSQ_OK;
}
