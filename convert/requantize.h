/* dsq quantize: rewrites an existing .dsq file under another recipe. Float tensors can become
 * any type; a quantized tensor is only copied as is (re-quantizing it would compound errors;
 * convert from the original checkpoint instead). */
#ifndef DSQ_REQUANTIZE_H
#define DSQ_REQUANTIZE_H

#include "convert.h"

typedef struct {
    const char *in_path;
    const char *out_path;
    int threads; /* 0: all cores */
    const char *command_line;
    convert_progress_fn progress;
    void *progress_ctx;
    recipe_options recipe;
} requantize_options;

int dsq_requantize(const requantize_options *o, convert_stats *stats, dsq_error *err);

#endif
