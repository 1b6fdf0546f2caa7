/* MoE expert selection from softmax scores, shared by the CPU tests and the CUDA router kernel:
 * greedy top-k, or group-limited (only the topk_group groups with the highest maximum score
 * compete), weights renormalized if the config says so, else multiplied by the routed scaling
 * factor. Ties go to the lowest index, as in runtime/moe.c. */
#ifndef DSQ_MOE_ROUTE_H
#define DSQ_MOE_ROUTE_H

#include <stdbool.h>

#include "float16.h" /* DSQ_HD */

#define MOE_ROUTE_MAX_EXPERTS 256
#define MOE_ROUTE_MAX_GROUPS 64

typedef struct {
    int n_experts, k;
    bool group_limited;
    int n_group, topk_group;
    bool norm_topk_prob;
    float routed_scaling;
} moe_route_params;

/* Index of the largest of n scores not yet taken (ties: lowest index), or -1. */
static inline DSQ_HD int moe_take_max(const float *s, const unsigned char *taken, int n)
{
    int best = -1;
    for (int e = 0; e < n; e++)
        if (!taken[e] && (best < 0 || s[e] > s[best]))
            best = e;
    return best;
}

/* ids[k], weights[k] from scores[n_experts]; n_experts <= MOE_ROUTE_MAX_EXPERTS and
 * n_group <= MOE_ROUTE_MAX_GROUPS (callers check). */
static inline DSQ_HD void moe_route_select(const moe_route_params *p, const float *scores, int *ids,
                                           float *weights)
{
    unsigned char taken[MOE_ROUTE_MAX_EXPERTS];
    const int ne = p->n_experts, k = p->k;
    for (int e = 0; e < ne; e++)
        taken[e] = 0;
    if (p->group_limited) {
        const int per_group = ne / p->n_group;
        float group_max[MOE_ROUTE_MAX_GROUPS];
        unsigned char group_taken[MOE_ROUTE_MAX_GROUPS];
        for (int g = 0; g < p->n_group; g++) {
            group_max[g] = scores[g * per_group];
            for (int e = 1; e < per_group; e++)
                if (scores[g * per_group + e] > group_max[g])
                    group_max[g] = scores[g * per_group + e];
            group_taken[g] = 0;
        }
        for (int i = 0; i < p->topk_group; i++)
            group_taken[moe_take_max(group_max, group_taken, p->n_group)] = 1;
        for (int e = 0; e < ne; e++) /* experts of losing groups cannot be chosen */
            taken[e] = !group_taken[e / per_group];
    }
    float sum = 0;
    for (int i = 0; i < k; i++) {
        ids[i] = moe_take_max(scores, taken, ne);
        taken[ids[i]] = 1;
        weights[i] = scores[ids[i]];
        sum += weights[i];
    }
    for (int i = 0; i < k; i++)
        weights[i] = k > 1 && p->norm_topk_prob ? weights[i] / (sum + 1e-20f)
                                                : weights[i] * p->routed_scaling;
}

#endif
