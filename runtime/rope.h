/* Rotary position embedding tables: DeepSeek-MoE rotates (x[i], x[i + d/2]) pairs (NeoX style)
 * over the whole head; DeepSeek-V2 rotates interleaved (x[2i], x[2i+1]) pairs of the rope part,
 * with YaRN frequency scaling. Frequencies are computed in f32 the way the references do. */
#ifndef DSQ_ROPE_H
#define DSQ_ROPE_H

#include <stdbool.h>

#include "model_config.h"

typedef struct {
    int dim;           /* rotated dims per head */
    int n_pos;         /* positions tabulated */
    bool interleaved;  /* V2 pairs (2i, 2i+1); V1 pairs (i, i + dim/2) */
    float *cos, *sin;  /* [n_pos][dim / 2], YaRN mscale folded in */
} rope_table;

int rope_init(rope_table *r, const dsq_model_config *c, int n_pos, dsq_error *err);
void rope_free(rope_table *r);

/* Rotates one head's rope dims x[0..dim) for position pos, in place. */
void rope_apply(const rope_table *r, float *x, int pos);

/* YaRN attention scale m = 0.1 * mscale * ln(factor) + 1 (1 without scaling). */
double rope_yarn_mscale(double factor, double mscale);

#endif
