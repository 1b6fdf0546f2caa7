/* Reads a Hugging Face config.json of a DeepSeek MoE model (as published, as transformers 5
 * re-saves it, or with the extra keys training frameworks add) into the normalized config. */
#ifndef DSQ_HF_CONFIG_H
#define DSQ_HF_CONFIG_H

#include "model_config.h"

/* path: the config.json file. *source_dtype receives "bfloat16" etc. (or "" if not stated). */
int hf_config_load(dsq_model_config *c, char *source_dtype, size_t dtype_cap, const char *path,
                   dsq_error *err);

/* The same from an already parsed object; `where` names it in errors. */
int hf_config_parse(dsq_model_config *c, const json_t *root, const char *where, dsq_error *err);

#endif
