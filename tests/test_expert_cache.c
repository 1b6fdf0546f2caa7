/* Expert slot policies on hand-made traces whose hits and loads are worked out by hand. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "expert_cache.h"
#include "test.h"

/* One MoE layer (layer 0) of n_experts, top-1: every access is its own token. */
static void one_layer_trace(expert_stats *s, int n_experts, const int *ids, int n)
{
    dsq_model_config c = {0};
    c.n_layers = 1;
    c.n_routed_experts = n_experts;
    c.n_experts_per_tok = 1;
    c.moe_layer_freq = 1;
    dsq_error err = {0};
    CHECK(expert_stats_init(s, &c, true, &err) == DSQ_OK);
    for (int t = 0; t < n; t++)
        CHECK(expert_stats_record(s, 0, ids + t, 1) == DSQ_OK);
}

TEST(lru_evicts_the_least_recently_used)
{
    expert_cache c;
    dsq_error err = {0};
    CHECK(expert_cache_init(&c, EXPERT_CACHE_LRU, 4, 2, 1, 0, &err) == DSQ_OK);
    /* A B A C B: A, B load; A hits; C evicts B (used at t1, A at t2); B evicts A */
    const int seq[] = {0, 1, 0, 2, 1};
    const bool want_hit[] = {false, false, true, false, false};
    bool loaded;
    for (int t = 0; t < 5; t++) {
        CHECK(expert_cache_access(&c, seq[t], &loaded) == want_hit[t]);
        CHECK(loaded == !want_hit[t]);
        expert_cache_tick(&c);
    }
    CHECK(c.key_slot[0] < 0 && c.key_slot[1] >= 0 && c.key_slot[2] >= 0);
    expert_cache_free(&c);
}

TEST(lfu_keeps_a_hot_expert_through_a_burst_of_cold_ones)
{
    expert_cache c;
    dsq_error err = {0};
    /* half-life of 1000 tokens: over this short trace the counts barely decay */
    CHECK(expert_cache_init(&c, EXPERT_CACHE_LFU, 16, 1, 1000, 0, &err) == DSQ_OK);
    bool loaded;
    CHECK(!expert_cache_access(&c, 0, &loaded) && loaded); /* free slot: loaded */
    expert_cache_tick(&c);
    for (int i = 0; i < 2; i++) { /* score ~3 */
        CHECK(expert_cache_access(&c, 0, &loaded));
        expert_cache_tick(&c);
    }
    for (int k = 1; k < 8; k++) { /* each cold expert scores 1 < ~3: stays on the host */
        CHECK(!expert_cache_access(&c, k, &loaded) && !loaded);
        expert_cache_tick(&c);
    }
    CHECK(expert_cache_access(&c, 0, &loaded)); /* ~3.98 */
    expert_cache_tick(&c);
    /* a new expert used on every token overtakes 0's decayed ~3.97 on its fourth use (3.996) */
    for (int i = 0; i < 3; i++) {
        CHECK(!expert_cache_access(&c, 12, &loaded));
        CHECK(!loaded);
        expert_cache_tick(&c);
    }
    CHECK(!expert_cache_access(&c, 12, &loaded) && loaded);
    CHECK(c.key_slot[0] < 0);
    expert_cache_free(&c);

    /* with a half-life of 1 token the old counts are gone: the first use of a new expert
     * (score 1 against 0's ~0.0009) takes the slot */
    CHECK(expert_cache_init(&c, EXPERT_CACHE_LFU, 8, 1, 1, 0, &err) == DSQ_OK);
    for (int i = 0; i < 3; i++) {
        expert_cache_access(&c, 0, &loaded);
        expert_cache_tick(&c);
    }
    for (int i = 0; i < 10; i++)
        expert_cache_tick(&c);
    CHECK(!expert_cache_access(&c, 3, &loaded) && loaded);
    expert_cache_free(&c);
}

TEST(static_holds_the_profile_top_and_never_loads)
{
    expert_cache c;
    dsq_error err = {0};
    CHECK(expert_cache_init(&c, EXPERT_CACHE_STATIC, 5, 2, 1, 0, &err) == DSQ_OK);
    const uint64_t counts[] = {3, 9, 1, 9, 0}; /* ties: the lower key */
    expert_cache_seed(&c, counts);
    CHECK(c.key_slot[1] >= 0 && c.key_slot[3] >= 0 && c.key_slot[0] < 0);
    bool loaded;
    CHECK(!expert_cache_access(&c, 0, &loaded) && !loaded);
    CHECK(expert_cache_access(&c, 3, &loaded));
    expert_cache_free(&c);
}

TEST(replay_counts_only_after_the_profile)
{
    expert_stats s;
    /* profile (first 4 tokens): 2 2 2 1; counted: 2 1 3 2 2 0 */
    const int ids[] = {2, 2, 2, 1, 2, 1, 3, 2, 2, 0};
    one_layer_trace(&s, 4, ids, 10);
    expert_cache_result r;
    dsq_error err = {0};
    /* static, 1 slot: the profile's top is 2, hit 3 of 6 */
    CHECK(expert_cache_replay(&s, 4, EXPERT_CACHE_STATIC, 1, 1, 0, &r, &err) == DSQ_OK);
    CHECK_EQ_INT(r.tokens, 6);
    CHECK_EQ_INT(r.lookups, 6);
    CHECK_EQ_INT(r.hits, 3);
    CHECK_EQ_INT(r.loads, 0);
    /* LRU, 1 slot, warmed by the profile (1 resident): 2 miss, 1 miss, 3 miss, 2 miss, 2 hit,
     * 0 miss; every miss loads */
    CHECK(expert_cache_replay(&s, 4, EXPERT_CACHE_LRU, 1, 1, 0, &r, &err) == DSQ_OK);
    CHECK_EQ_INT(r.hits, 1);
    CHECK_EQ_INT(r.loads, 5);
    /* all 4 slots: the profile leaves 2 and 1 resident; 3 and 0 are new (a load each into a
     * free slot), the other 4 uses hit */
    CHECK(expert_cache_replay(&s, 4, EXPERT_CACHE_LRU, 4, 1, 0, &r, &err) == DSQ_OK);
    CHECK_EQ_INT(r.hits, 4);
    CHECK_EQ_INT(r.loads, 2);
    /* no token left after the profile */
    CHECK(expert_cache_replay(&s, 10, EXPERT_CACHE_LRU, 1, 1, 0, &r, &err) == DSQ_EUSAGE);
    expert_stats_free(&s);
}

/* The victim a scan over the slots picks: smallest decayed count (LFU) or last use (LRU), the
 * lower slot on ties; value gets what it compared. */
static int scan_victim(const expert_cache *c, double *value)
{
    int victim = -1;
    for (int s = 0; s < c->slots; s++) {
        const int k = c->slot_key[s];
        const double v = c->policy == EXPERT_CACHE_LRU
                             ? (double)c->last[k]
                             : c->score[k] * exp2(-(double)(c->now - c->last[k]) / c->half_life);
        if (victim < 0 || v < *value) {
            *value = v;
            victim = s;
        }
    }
    return victim;
}

/* The heap's victim is the scan's at every miss of a long skewed trace, for both policies that
 * evict, with a margin and without, and for LFU seeded from a profile (as the engine's cache
 * always is): LRU exactly (integer ranks), LFU the same slot or one whose decayed count equals
 * the scan's to rounding (log2 of a count against the count itself). */
TEST(heap_victim_matches_a_scan_of_the_slots)
{
    const expert_cache_policy policies[] = {EXPERT_CACHE_LRU, EXPERT_CACHE_LFU, EXPERT_CACHE_LFU,
                                            EXPERT_CACHE_LFU};
    const double margins[] = {0, 0, 3, 3};
    for (int p = 0; p < 4; p++) {
        expert_cache c;
        dsq_error err = {0};
        CHECK(expert_cache_init(&c, policies[p], 200, 37, 50, margins[p], &err) == DSQ_OK);
        if (p == 3) { /* a profile whose counts spread the residents' ranks */
            uint64_t counts[200];
            for (int k = 0; k < 200; k++)
                counts[k] = (uint64_t)((k * 7919) % 97);
            expert_cache_seed(&c, counts);
            double v = 0;
            CHECK(expert_cache_victim(&c) == scan_victim(&c, &v));
        }
        uint32_t rng = 7;
        int misses = 0, loads = 0, differ = 0;
        for (int t = 0; t < 3000; t++) {
            for (int u = 0; u < 6; u++) {
                rng = rng * 1103515245u + 12345u;
                const int r = (int)((rng >> 12) % 1000), key = r < 600 ? r % 40 : r % 200;
                if (c.key_slot[key] < 0 && c.used == c.slots) {
                    double v = 0;
                    const int want = scan_victim(&c, &v), got = expert_cache_victim(&c);
                    misses++;
                    if (got != want) {
                        double w = 0;
                        const int k = c.slot_key[got];
                        w = c.score[k] * exp2(-(double)(c.now - c.last[k]) / c.half_life);
                        CHECK(policies[p] == EXPERT_CACHE_LFU && fabs(w - v) <= 1e-12 * v);
                        differ++;
                    }
                }
                bool loaded;
                expert_cache_access(&c, key, &loaded);
                loads += loaded;
            }
            expert_cache_tick(&c);
        }
        printf("  %s margin %g%s: %d misses with full slots, %d loads, %d near-ties\n",
               expert_cache_policy_name(policies[p]), margins[p], p == 3 ? " seeded" : "", misses,
               loads, differ);
        CHECK(misses > 1000 && loads > 100);
        expert_cache_free(&c);
    }
}

/* A miss is loaded only when its count passes the coldest resident's by more than the margin. */
TEST(lfu_margin_delays_a_load)
{
    expert_cache c;
    dsq_error err = {0};
    CHECK(expert_cache_init(&c, EXPERT_CACHE_LFU, 4, 1, 1000, 2.5, &err) == DSQ_OK);
    bool loaded;
    for (int t = 0; t < 3; t++) { /* expert 0: three uses, resident */
        expert_cache_access(&c, 0, &loaded);
        expert_cache_tick(&c);
    }
    /* expert 0 counts 2.998 at its last use; expert 1, used on every token after it, counts
     * 4.993 after its fifth use against 0's decayed 2.988 + 2.5, and 5.990 after its sixth
     * against 2.985 + 2.5 */
    for (int i = 0; i < 5; i++) {
        CHECK(!expert_cache_access(&c, 1, &loaded) && !loaded);
        expert_cache_tick(&c);
    }
    CHECK(!expert_cache_access(&c, 1, &loaded) && loaded);
    CHECK(c.key_slot[0] < 0 && c.key_slot[1] == 0);
    expert_cache_free(&c);
}

/* The margin is strict: within one token (no decay), a miss counting exactly the victim's count
 * plus the margin stays on the host; one use more loads it. */
TEST(lfu_margin_is_strict)
{
    expert_cache c;
    dsq_error err = {0};
    CHECK(expert_cache_init(&c, EXPERT_CACHE_LFU, 4, 1, 32, 2, &err) == DSQ_OK);
    bool loaded;
    CHECK(!expert_cache_access(&c, 0, &loaded) && loaded); /* free slot; 0 counts 1 */
    for (int use = 1; use <= 3; use++)                     /* 1 counts 1, 2, 3: not above 1 + 2 */
        CHECK(!expert_cache_access(&c, 1, &loaded) && !loaded);
    CHECK(!expert_cache_access(&c, 1, &loaded) && loaded); /* 4 > 3 */
    expert_cache_free(&c);
}
