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
                      double half_life, dsq_error *err)
{
    memset(c, 0, sizeof *c);
    c->policy = policy;
    c->n_keys = n_keys;
    c->slots = slots < 0 ? 0 : slots > n_keys ? n_keys : slots;
    c->half_life = half_life > 0 ? half_life : 1;
    c->slot_key = malloc((size_t)(c->slots ? c->slots : 1) * sizeof(int));
    c->key_slot = malloc((size_t)n_keys * sizeof(int));
    c->last = calloc((size_t)n_keys, sizeof(uint64_t));
    c->score = calloc((size_t)n_keys, sizeof(double));
    if (!c->slot_key || !c->key_slot || !c->last || !c->score) {
        expert_cache_free(c);
        return dsq_fail(err, DSQ_ERESOURCE, "out of memory for the expert cache");
    }
    for (int s = 0; s < c->slots; s++)
        c->slot_key[s] = -1;
    for (int k = 0; k < n_keys; k++)
        c->key_slot[k] = -1;
    return DSQ_OK;
}

void expert_cache_free(expert_cache *c)
{
    free(c->slot_key);
    free(c->key_slot);
    free(c->last);
    free(c->score);
    memset(c, 0, sizeof *c);
}

static void place(expert_cache *c, int slot, int key)
{
    if (c->slot_key[slot] >= 0)
        c->key_slot[c->slot_key[slot]] = -1;
    else
        c->used++;
    c->slot_key[slot] = key;
    c->key_slot[key] = slot;
}

/* LFU: the key's count decayed to now. */
static double decayed(const expert_cache *c, int key)
{
    return c->score[key] * exp2(-(double)(c->now - c->last[key]) / c->half_life);
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
    if (c->policy == EXPERT_CACHE_LFU)
        for (int k = 0; k < c->n_keys; k++) {
            c->score[k] = (double)counts[k];
            c->last[k] = c->now;
        }
}

bool expert_cache_count(expert_cache *c, int key)
{
    if (c->policy == EXPERT_CACHE_LFU) {
        c->score[key] = decayed(c, key) + 1;
        c->last[key] = c->now;
    }
    if (c->key_slot[key] >= 0 && c->policy == EXPERT_CACHE_LRU)
        c->last[key] = c->now;
    return c->key_slot[key] >= 0;
}

bool expert_cache_access(expert_cache *c, int key, bool *loaded)
{
    *loaded = false;
    if (c->policy == EXPERT_CACHE_LFU) {
        c->score[key] = decayed(c, key) + 1;
        c->last[key] = c->now;
    }
    if (c->key_slot[key] >= 0) {
        if (c->policy == EXPERT_CACHE_LRU)
            c->last[key] = c->now;
        return true;
    }
    if (c->policy == EXPERT_CACHE_STATIC || c->slots == 0)
        return false;
    int victim = -1;
    if (c->used < c->slots) {
        victim = c->used; /* slots fill in order, and are never freed */
    } else {
        double worst = INFINITY;
        for (int s = 0; s < c->slots; s++) {
            const int k = c->slot_key[s];
            const double v = c->policy == EXPERT_CACHE_LRU ? (double)c->last[k] : decayed(c, k);
            if (v < worst) {
                worst = v;
                victim = s;
            }
        }
        if (c->policy == EXPERT_CACHE_LFU && !(c->score[key] > worst))
            return false; /* colder than everything resident: compute it on the host */
    }
    if (c->policy == EXPERT_CACHE_LRU)
        c->last[key] = c->now;
    place(c, victim, key);
    *loaded = true;
    return false;
}

int expert_cache_replay(const expert_stats *s, size_t profile_tokens, expert_cache_policy policy,
                        int slots, double half_life, expert_cache_result *r, dsq_error *err)
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
    int rc = profile ? expert_cache_init(&c, policy, n_keys, slots, half_life, err)
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
