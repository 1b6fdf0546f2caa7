/* Streaming conversion of a Hugging Face DeepSeek checkpoint folder into one .dsq file. */
#ifndef DSQ_CONVERT_H
#define DSQ_CONVERT_H

#include <stdint.h>

#include "error.h"
#include "quantize.h"
#include "recipe.h"

typedef void (*convert_progress_fn)(void *ctx, uint64_t done, uint64_t total);

typedef struct {
    const char *hf_dir;
    const char *out_path;
    int threads;              /* 0: all cores */
    const char *command_line; /* recorded in the provenance */
    convert_progress_fn progress; /* may be NULL */
    void *progress_ctx;
    recipe_options recipe; /* preset NULL: bf16; group_size 0: RECIPE_DEFAULT_GROUP */
} convert_options;

typedef struct {
    uint64_t bytes_read;    /* every byte of every shard */
    uint64_t bytes_written; /* tensor data */
    int n_tensors;
    char *unused_overrides; /* overrides that matched no tensor (a warning), or NULL; free() */
} convert_stats;

/* The recipe's "error" object from per-class quantization errors (indexed by tensor_class). */
json_t *quant_error_json(const quant_stats *by_class);

/* Checks the checkpoint completely against the model's tensor plan before writing anything,
 * then streams shards in file order; memory stays bounded by a few chunk buffers. */
int dsq_convert(const convert_options *o, convert_stats *stats, dsq_error *err);

#endif
