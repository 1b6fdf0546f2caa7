/* The device engine's expert cache bookkeeping (runtime/expert_swap.c): slots start with the
 * placement's experts, every load names a host expert and the slot's previous expert, and the
 * experts the loads leave on the device are always exactly the cache's residents, one per
 * slot, so the engine's tables and the host's flags follow the policy. */
#include <stdlib.h>
#include <string.h>

#include "expert_cache.h"
#include "expert_swap.h"
#include "test.h"

#define LAYERS 4 /* layer 0 dense */
#define EXPERTS 8
#define K 2

static const bool moe[LAYERS] = {false, true, true, true};

/* What each slot holds as the loads so far say (layer * EXPERTS + expert): the engine copies
 * a load's expert into the bytes of slot `slot`, so the slot must have held the load's old
 * expert. */
static int holds[LAYERS * EXPERTS];

static void seed_holds(const expert_swap *s)
{
    for (int slot = 0; slot < expert_swap_slots(s); slot++) {
        int l, e;
        expert_swap_slot_expert(s, slot, &l, &e);
        holds[slot] = l * EXPERTS + e;
    }
}

/* Applies loads to a device mask and the slots, checking each against them. */
static void apply(unsigned char *on_gpu, const expert_swap_load *loads, int n)
{
    for (int i = 0; i < n; i++) {
        const expert_swap_load *l = &loads[i];
        CHECK(moe[l->layer] && moe[l->old_layer]);
        CHECK_MSG(holds[l->slot] == l->old_layer * EXPERTS + l->old_expert,
                  "load %d: slot %d held layer %d expert %d, not the load's old expert", i, l->slot,
                  holds[l->slot] / EXPERTS, holds[l->slot] % EXPERTS);
        holds[l->slot] = l->layer * EXPERTS + l->expert;
        CHECK_MSG(!on_gpu[l->layer * EXPERTS + l->expert],
                  "load %d: layer %d expert %d was "
                  "already on the device",
                  i, l->layer, l->expert);
        CHECK_MSG(on_gpu[l->old_layer * EXPERTS + l->old_expert],
                  "load %d: the slot's expert "
                  "(layer %d expert %d) was not on the device",
                  i, l->old_layer, l->old_expert);
        on_gpu[l->layer * EXPERTS + l->expert] = 1;
        on_gpu[l->old_layer * EXPERTS + l->old_expert] = 0;
    }
}

/* The mask has one flagged expert per slot, each the expert its slot holds, and the cache
 * counts exactly those as resident. */
static void check_consistent(const expert_swap *s, const unsigned char *on_gpu, int slots)
{
    int flagged = 0;
    for (int l = 0; l < LAYERS; l++)
        for (int e = 0; e < EXPERTS; e++) {
            flagged += on_gpu[l * EXPERTS + e];
            CHECK(expert_swap_resident(s, l, e) == (on_gpu[l * EXPERTS + e] != 0));
        }
    CHECK(flagged == slots);
    for (int slot = 0; slot < slots; slot++) {
        int l, e;
        expert_swap_slot_expert(s, slot, &l, &e);
        CHECK(on_gpu[l * EXPERTS + e]);
        CHECK(holds[slot] == l * EXPERTS + e);
    }
}

TEST(slots_start_with_the_placement_in_order)
{
    unsigned char on_gpu[LAYERS * EXPERTS] = {0};
    const int flagged[][2] = {{1, 3}, {2, 0}, {2, 7}, {3, 5}};
    for (int i = 0; i < 4; i++)
        on_gpu[flagged[i][0] * EXPERTS + flagged[i][1]] = 1;
    expert_swap *s;
    dsq_error err = {0};
    CHECK(expert_swap_open(&s, LAYERS, EXPERTS, moe, on_gpu, NULL, 256, 0, &err) == DSQ_OK);
    CHECK(expert_swap_slots(s) == 4 && expert_swap_moe_layers(s) == 3);
    CHECK(expert_swap_layer(s, 0) == 1 && expert_swap_layer(s, 2) == 3);
    for (int slot = 0; slot < 4; slot++) {
        int l, e;
        expert_swap_slot_expert(s, slot, &l, &e);
        CHECK(l == flagged[slot][0] && e == flagged[slot][1]);
    }
    seed_holds(s);
    check_consistent(s, on_gpu, 4);
    expert_swap_close(s);
}

/* Every token of the two tests below: layer 1 uses experts 5 and 6, layers 2 and 3 their
 * resident expert 0 and expert 1. */
static const int hot_pair[K] = {5, 6}, resident_pair[K] = {0, 1};
static const int *const hot_layer_one[3] = {hot_pair, resident_pair, resident_pair};

/* A cache whose three slots hold expert 0 of each MoE layer, flagged in on_gpu. */
static expert_swap *open_expert_zero_resident(unsigned char *on_gpu, double half_life,
                                              double margin)
{
    on_gpu[1 * EXPERTS + 0] = on_gpu[2 * EXPERTS + 0] = on_gpu[3 * EXPERTS + 0] = 1;
    expert_swap *s = NULL;
    dsq_error err = {0};
    CHECK(expert_swap_open(&s, LAYERS, EXPERTS, moe, on_gpu, NULL, half_life, margin, &err) ==
          DSQ_OK);
    seed_holds(s);
    return s;
}

TEST(a_hot_host_expert_replaces_a_cold_resident_one)
{
    unsigned char on_gpu[LAYERS * EXPERTS] = {0};
    expert_swap *s = open_expert_zero_resident(on_gpu, 4, 0);
    const int *const *ids = hot_layer_one;
    expert_swap_load loads[3 * K];
    int total = 0, moved_in = 0;
    for (int step = 0; step < 16; step++) {
        const int n = expert_swap_pass(s, ids, 1, K, true, loads, 3 * K);
        CHECK(n >= 0);
        for (int i = 0; i < n; i++)
            moved_in += loads[i].layer == 1 && (loads[i].expert == 5 || loads[i].expert == 6);
        apply(on_gpu, loads, n);
        check_consistent(s, on_gpu, 3);
        total += n;
    }
    /* layer 1's expert 0 is never used and its score decays: 5 or 6 takes its slot */
    CHECK(!on_gpu[1 * EXPERTS + 0]);
    CHECK(moved_in >= 1 && total == (int)expert_swap_loads(s));
    CHECK(on_gpu[2 * EXPERTS + 0] || on_gpu[3 * EXPERTS + 0]);
    CHECK(expert_swap_pass(s, ids, 1, K, true, loads, 3 * K - 1) == -1);
    expert_swap_close(s);
}

/* The engine's defaults (half-life 32, margin 8): a host expert used on every token loads
 * only once its count passes the cold resident's by 8. Pass j (0-based) gives layer 1's expert
 * 5 a count of sum_{i<=j} 2^(-i/32), against expert 0's seeded 1 decayed to 2^(-j/32): 8.26
 * against 8.84 at j = 8, 9.09 against 8.82 at j = 9. Nothing else passes its victim by 8. */
TEST(default_margin_delays_the_first_load)
{
    unsigned char on_gpu[LAYERS * EXPERTS] = {0};
    expert_swap *s = open_expert_zero_resident(on_gpu, EXPERT_CACHE_HALF_LIFE, EXPERT_CACHE_MARGIN);
    const int *const *ids = hot_layer_one;
    expert_swap_load loads[3 * K];
    for (int j = 0; j < 9; j++)
        CHECK(expert_swap_pass(s, ids, 1, K, true, loads, 3 * K) == 0);
    CHECK(expert_swap_pass(s, ids, 1, K, true, loads, 3 * K) == 1);
    CHECK(loads[0].slot == 0 && loads[0].layer == 1 && loads[0].expert == 5 &&
          loads[0].old_layer == 1 && loads[0].old_expert == 0);
    apply(on_gpu, loads, 1);
    check_consistent(s, on_gpu, 3);
    expert_swap_close(s);
}

TEST(random_routing_keeps_every_slot_consistent)
{
    unsigned char on_gpu[LAYERS * EXPERTS] = {0};
    for (int l = 1; l < LAYERS; l++)
        for (int e = 0; e < EXPERTS; e += 3)
            on_gpu[l * EXPERTS + e] = 1;
    int slots = 0;
    for (int i = 0; i < LAYERS * EXPERTS; i++)
        slots += on_gpu[i];
    expert_swap *s;
    dsq_error err = {0};
    CHECK(expert_swap_open(&s, LAYERS, EXPERTS, moe, on_gpu, NULL, 8, 0, &err) == DSQ_OK);
    seed_holds(s);
    enum { N = 5 };
    int buf[3][N * K];
    const int *ids[3] = {buf[0], buf[1], buf[2]};
    expert_swap_load loads[N * 3 * K];
    unsigned rng = 7;
    int total = 0;
    for (int pass = 0; pass < 300; pass++) {
        const int n = 1 + pass % N;
        for (int m = 0; m < 3; m++)
            for (int t = 0; t < n; t++) {
                rng = rng * 1103515245u + 12345u;
                const int a = (int)((rng >> 16) % (EXPERTS / 2)); /* a skewed, drifting mix */
                buf[m][t * K] = (a + pass / 50) % EXPERTS;
                buf[m][t * K + 1] = (a + 1 + (int)((rng >> 8) % (EXPERTS - 1))) % EXPERTS;
                if (buf[m][t * K + 1] == buf[m][t * K])
                    buf[m][t * K + 1] = (buf[m][t * K] + 1) % EXPERTS;
            }
        const int made = expert_swap_pass(s, ids, n, K, pass % 7 != 0, loads, N * 3 * K);
        CHECK(made >= 0);
        apply(on_gpu, loads, made);
        check_consistent(s, on_gpu, slots);
        total += made;
    }
    printf("  %d loads over 300 passes, %d slots\n", total, slots);
    CHECK(total > 0 && total == (int)expert_swap_loads(s));
    expert_swap_close(s);
}

/* A profile's counts seed the scores when they pick the placement's experts; counted-only passes
 * (long prompts) never load. */
TEST(profile_seeds_and_counted_passes)
{
    unsigned char on_gpu[LAYERS * EXPERTS] = {0};
    uint64_t counts[3 * EXPERTS] = {0};
    for (int m = 0; m < 3; m++) {
        on_gpu[(m + 1) * EXPERTS + 2] = 1; /* the placement took each layer's hottest */
        for (int e = 0; e < EXPERTS; e++)
            counts[m * EXPERTS + e] = e == 2 ? 1000 : 10;
    }
    expert_swap *s;
    dsq_error err = {0};
    CHECK(expert_swap_open(&s, LAYERS, EXPERTS, moe, on_gpu, counts, 256, 0, &err) == DSQ_OK);
    seed_holds(s);
    check_consistent(s, on_gpu, 3);
    int a[K] = {0, 1}, b[K] = {0, 1}, c[K] = {0, 1};
    const int *ids[3] = {a, b, c};
    expert_swap_load loads[3 * K];
    /* with 1000 against 10 and a half-life of 256 tokens, 20 tokens of other experts do not
     * displace the profile's choice */
    for (int t = 0; t < 20; t++)
        CHECK(expert_swap_pass(s, ids, 1, K, true, loads, 3 * K) == 0);
    check_consistent(s, on_gpu, 3);
    expert_swap_close(s);
    /* counts that pick other experts than the placement are not used: the 1/0 seed is, and then
     * a single use of a host expert outweighs a resident's decayed 1 after a token */
    for (int m = 0; m < 3; m++)
        counts[m * EXPERTS + 2] = 0;
    CHECK(expert_swap_open(&s, LAYERS, EXPERTS, moe, on_gpu, counts, 256, 0, &err) == DSQ_OK);
    seed_holds(s);
    check_consistent(s, on_gpu, 3);
    for (int t = 0; t < 20; t++)
        CHECK(expert_swap_pass(s, ids, 1, K, false, loads, 3 * K) == 0); /* counted only */
    check_consistent(s, on_gpu, 3);
    const int made = expert_swap_pass(s, ids, 1, K, true, loads, 3 * K);
    CHECK(made > 0);
    apply(on_gpu, loads, made);
    check_consistent(s, on_gpu, 3);
    expert_swap_close(s);
}
