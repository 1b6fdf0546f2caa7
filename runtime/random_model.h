/* A full-size model with random weights built in memory from a published config (DeepSeek-V2-
 * Lite, DeepSeek-MoE-16B, DeepSeek-V2 cut to fewer layers), so GPU speed can be measured without
 * a checkpoint on disk. The weights are laid out as a .dsq file would hold them, with small
 * scales so activations stay finite; the values mean nothing. The CPU engine runs it too (a
 * baseline for the host expert kernels). */
#ifndef DSQ_RANDOM_MODEL_H
#define DSQ_RANDOM_MODEL_H

#include "model.h"

typedef struct {
    model m;      /* config, weight views, RoPE tables; m.file.file.map is the buffer */
    uint8_t *buf; /* every weight, each 4096-byte aligned */
    size_t size;
    const char *name;
    char label[64]; /* "random v2-lite q4": stands for the file name in messages */
} random_model;

/* name: "v2-lite", "moe-16b" or "v2"; quant: "bf16", "q8" (every matrix int8) or "q4" (routed
 * experts int4, the rest int8, as the q4 preset); layers: 0 for the config's, else fewer. */
int random_model_build(random_model *r, const char *name, const char *quant, int layers, int ctx,
                       dsq_error *err);
void random_model_free(random_model *r);

/* Weight bytes one decode token reads: all but the unchosen routed experts and one embedding row.
 */
double random_model_bytes_per_token(const random_model *r);

#endif
