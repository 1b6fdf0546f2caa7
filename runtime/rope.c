/* RoPE tables, plain and YaRN (as the DeepSeek-V2 reference computes them). */
#include "rope.h"

#include <math.h>
#include <stdlib.h>

double rope_yarn_mscale(double factor, double mscale)
{
    return factor <= 1 ? 1.0 : 0.1 * mscale * log(factor) + 1.0;
}

/* The dimension at which a frequency completes num_rotations turns over max_pos positions. */
static double yarn_correction_dim(double num_rotations, int dim, double base, double max_pos)
{
    return (dim * log(max_pos / (num_rotations * 2 * M_PI))) / (2 * log(base));
}

/* Per-pair inverse frequencies; YaRN blends interpolated and original ones by a linear ramp. */
static void inverse_frequencies(const dsq_model_config *c, int dim, float *inv_freq)
{
    const float base = (float)c->rope_theta;
    double low = 0, high = 0;
    if (c->rope_yarn) {
        low = floor(yarn_correction_dim(c->yarn_beta_fast, dim, base, c->yarn_original_max_position));
        high = ceil(yarn_correction_dim(c->yarn_beta_slow, dim, base, c->yarn_original_max_position));
        low = low < 0 ? 0 : low;
        high = high > dim - 1 ? dim - 1 : high;
        if (low == high)
            high += 0.001;
    }
    for (int i = 0; i < dim / 2; i++) {
        float extra = 1.0f / powf(base, (float)(2 * i) / (float)dim);
        if (!c->rope_yarn) {
            inv_freq[i] = extra;
            continue;
        }
        float inter = 1.0f / ((float)c->yarn_factor * powf(base, (float)(2 * i) / (float)dim));
        float ramp = ((float)i - (float)low) / (float)(high - low);
        ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
        float keep = 1.0f - ramp; /* 1: keep the original frequency */
        inv_freq[i] = inter * (1.0f - keep) + extra * keep;
    }
}

int rope_init(rope_table *r, const dsq_model_config *c, int n_pos, dsq_error *err)
{
    r->dim = c->family == DSQ_FAMILY_V1 ? c->head_dim : c->qk_rope_head_dim;
    r->n_pos = n_pos;
    r->interleaved = c->family == DSQ_FAMILY_V2;
    size_t half = (size_t)r->dim / 2;
    r->cos = malloc((size_t)n_pos * half * sizeof(float));
    r->sin = malloc((size_t)n_pos * half * sizeof(float));
    float *inv_freq = malloc(half * sizeof(float));
    if (!r->cos || !r->sin || !inv_freq) {
        free(inv_freq);
        rope_free(r);
        return dsq_fail(err, DSQ_ERESOURCE, "out of memory for RoPE tables");
    }
    inverse_frequencies(c, r->dim, inv_freq);
    double mscale = c->rope_yarn ? rope_yarn_mscale(c->yarn_factor, c->yarn_mscale) /
                                       rope_yarn_mscale(c->yarn_factor, c->yarn_mscale_all_dim)
                                 : 1.0;
    for (int p = 0; p < n_pos; p++)
        for (size_t i = 0; i < half; i++) {
            float angle = (float)p * inv_freq[i]; /* rounded to f32 like the reference */
            r->cos[(size_t)p * half + i] = (float)(cos(angle) * mscale);
            r->sin[(size_t)p * half + i] = (float)(sin(angle) * mscale);
        }
    free(inv_freq);
    return DSQ_OK;
}

void rope_free(rope_table *r)
{
    free(r->cos);
    free(r->sin);
    r->cos = r->sin = NULL;
}

void rope_apply(const rope_table *r, float *x, int pos)
{
    const int half = r->dim / 2;
    const float *cs = r->cos + (size_t)pos * half, *sn = r->sin + (size_t)pos * half;
    for (int i = 0; i < half; i++) {
        int a = r->interleaved ? 2 * i : i, b = r->interleaved ? 2 * i + 1 : i + half;
        float x0 = x[a], x1 = x[b];
        x[a] = x0 * cs[i] - x1 * sn[i];
        x[b] = x1 * cs[i] + x0 * sn[i];
    }
}
