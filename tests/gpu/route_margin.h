/* How far a router's choice is from a tie: the smallest gap, in the units of the scores, between
 * a candidate the selection takes and one it passes over (groups first when the routing is
 * group-limited, then experts among the eligible ones). Softmax keeps the order of the scores,
 * so the gap may be taken on the router's logits. If two runs' logits differ by at most D each,
 * a margin above 2 D means both runs choose the same experts (tests/gpu/README.md). */
#ifndef DSQ_ROUTE_MARGIN_H
#define DSQ_ROUTE_MARGIN_H

#include <float.h>

#include "moe_route.h"

static inline float moe_route_margin(const moe_route_params *p, const float *s)
{
    int ids[MOE_ROUTE_MAX_EXPERTS];
    float w[MOE_ROUTE_MAX_EXPERTS];
    unsigned char chosen[MOE_ROUTE_MAX_EXPERTS] = {0}, eligible[MOE_ROUTE_MAX_EXPERTS];
    const int ne = p->n_experts;
    float margin = FLT_MAX;
    moe_route_select(p, s, ids, w);
    for (int i = 0; i < p->k; i++)
        chosen[ids[i]] = 1;
    for (int e = 0; e < ne; e++)
        eligible[e] = 1;
    if (p->group_limited) {
        const int per = ne / p->n_group;
        float gmax[MOE_ROUTE_MAX_GROUPS];
        unsigned char gtaken[MOE_ROUTE_MAX_GROUPS] = {0};
        for (int g = 0; g < p->n_group; g++) {
            gmax[g] = s[g * per];
            for (int e = 1; e < per; e++)
                gmax[g] = s[g * per + e] > gmax[g] ? s[g * per + e] : gmax[g];
        }
        for (int i = 0; i < p->topk_group; i++)
            gtaken[moe_take_max(gmax, gtaken, p->n_group)] = 1;
        float lo_in = FLT_MAX, hi_out = -FLT_MAX;
        for (int g = 0; g < p->n_group; g++) {
            if (gtaken[g])
                lo_in = gmax[g] < lo_in ? gmax[g] : lo_in;
            else
                hi_out = gmax[g] > hi_out ? gmax[g] : hi_out;
        }
        if (hi_out > -FLT_MAX)
            margin = lo_in - hi_out;
        for (int e = 0; e < ne; e++)
            eligible[e] = gtaken[e / per];
    }
    float lo_in = FLT_MAX, hi_out = -FLT_MAX;
    for (int e = 0; e < ne; e++) {
        if (chosen[e])
            lo_in = s[e] < lo_in ? s[e] : lo_in;
        else if (eligible[e])
            hi_out = s[e] > hi_out ? s[e] : hi_out;
    }
    if (hi_out > -FLT_MAX && lo_in - hi_out < margin)
        margin = lo_in - hi_out;
    return margin;
}

#endif
