/* The device engine's expert cache bookkeeping (see expert_swap.h). */
#include "expert_swap.h"

#include <stdlib.h>

#include "expert_cache.h"

struct expert_swap {
    expert_cache cache;
    int n_layers, n_experts, n_moe;
    int *moe_of_layer; /* [n_layers] MoE index, -1 for a dense layer */
    int *layer_of_moe; /* [n_moe] */
    uint64_t loads;
};

int expert_swap_open(expert_swap **out, int n_layers, int n_experts, const bool *moe,
                     const unsigned char *on_gpu, const uint64_t *counts, double half_life,
                     double margin, dsq_error *err)
{
    expert_swap *s = *out = calloc(1, sizeof *s);
    if (!s)
        return dsq_fail(err, DSQ_ERESOURCE, "out of memory for the expert cache");
    s->n_layers = n_layers;
    s->n_experts = n_experts;
    s->moe_of_layer = malloc((size_t)n_layers * sizeof(int));
    s->layer_of_moe = malloc((size_t)n_layers * sizeof(int));
    if (!s->moe_of_layer || !s->layer_of_moe) {
        expert_swap_close(s);
        *out = NULL;
        return dsq_fail(err, DSQ_ERESOURCE, "out of memory for the expert cache");
    }
    for (int l = 0; l < n_layers; l++) {
        s->moe_of_layer[l] = moe[l] ? s->n_moe : -1;
        if (moe[l])
            s->layer_of_moe[s->n_moe++] = l;
    }
    const int n_keys = s->n_moe * n_experts;
    uint64_t *seed = calloc((size_t)(n_keys ? n_keys : 1), sizeof *seed);
    int slots = 0;
    for (int m = 0; seed && m < s->n_moe; m++)
        for (int e = 0; e < n_experts; e++)
            slots += seed[m * n_experts + e] =
                on_gpu[(size_t)s->layer_of_moe[m] * n_experts + e] != 0;
    int rc =
        seed ? expert_cache_init(&s->cache, EXPERT_CACHE_LFU, n_keys, slots, half_life, margin, err)
             : dsq_fail(err, DSQ_ERESOURCE, "out of memory for the expert cache");
    /* the slots take exactly the resident experts, in key order (ties: lower key); a profile's
     * counts replace the 1s and 0s only if they choose the same experts */
    bool by_counts = !rc && counts;
    if (by_counts) {
        expert_cache_seed(&s->cache, counts);
        for (int i = 0; i < slots; i++)
            by_counts = by_counts && seed[s->cache.slot_key[i]];
        if (!by_counts) {
            expert_cache_free(&s->cache);
            rc = expert_cache_init(&s->cache, EXPERT_CACHE_LFU, n_keys, slots, half_life, margin,
                                   err);
        }
    }
    if (!rc && !by_counts)
        expert_cache_seed(&s->cache, seed);
    free(seed);
    if (rc) {
        expert_swap_close(s);
        *out = NULL;
    }
    return rc;
}

void expert_swap_close(expert_swap *s)
{
    if (!s)
        return;
    expert_cache_free(&s->cache);
    free(s->moe_of_layer);
    free(s->layer_of_moe);
    free(s);
}

int expert_swap_slots(const expert_swap *s)
{
    return s->cache.slots;
}

int expert_swap_moe_layers(const expert_swap *s)
{
    return s->n_moe;
}

int expert_swap_layer(const expert_swap *s, int m)
{
    return s->layer_of_moe[m];
}

bool expert_swap_resident(const expert_swap *s, int layer, int expert)
{
    const int m = s->moe_of_layer[layer];
    return m >= 0 && s->cache.key_slot[m * s->n_experts + expert] >= 0;
}

uint64_t expert_swap_loads(const expert_swap *s)
{
    return s ? s->loads : 0;
}

void expert_swap_slot_expert(const expert_swap *s, int slot, int *layer, int *expert)
{
    const int key = s->cache.slot_key[slot];
    *layer = s->layer_of_moe[key / s->n_experts];
    *expert = key % s->n_experts;
}

int expert_swap_pass(expert_swap *s, const int *const *ids, int n, int k, bool may_load,
                     expert_swap_load *loads, int max_loads)
{
    if (max_loads < n * s->n_moe * k)
        return -1; /* each choice may load: the list must have room for all */
    int made = 0;
    for (int t = 0; t < n; t++) {
        for (int m = 0; m < s->n_moe; m++)
            for (int j = 0; j < k; j++) {
                const int e = ids[m][t * k + j], key = m * s->n_experts + e;
                /* every slot is full from the start, so a load takes the victim's slot; a use
                 * of a host expert does not move the residents' order */
                const int slot = expert_cache_victim(&s->cache);
                const int old = slot >= 0 ? s->cache.slot_key[slot] : -1;
                bool loaded = false;
                if (may_load)
                    expert_cache_access(&s->cache, key, &loaded);
                else
                    expert_cache_count(&s->cache, key);
                if (!loaded)
                    continue;
                loads[made] =
                    (expert_swap_load){slot, s->layer_of_moe[m], e,
                                       s->layer_of_moe[old / s->n_experts], old % s->n_experts};
                made++;
                s->loads++;
            }
        expert_cache_tick(&s->cache);
    }
    return made;
}
