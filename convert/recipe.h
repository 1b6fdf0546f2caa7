/* Quantization recipes: a preset assigns a storage type to each tensor class, overrides
 * (GLOB=TYPE, matched against dsq tensor names) change single tensors, and every choice keeps
 * its reason so the file can say why each tensor is what it is. */
#ifndef DSQ_RECIPE_H
#define DSQ_RECIPE_H

#include <jansson.h>
#include <stdint.h>

#include "tensor_map.h"

#define RECIPE_MAX_OVERRIDES 32
#define RECIPE_DEFAULT_GROUP 64

typedef struct {
    const char *preset;                          /* bf16, q8, q4, q4-q6, q4-all */
    const char *overrides[RECIPE_MAX_OVERRIDES]; /* "GLOB=TYPE" */
    int n_overrides;
    uint32_t group_size; /* for quantized types */
} recipe_options;

typedef struct {
    uint32_t type;
    uint32_t group; /* 0 for float types */
    char why[96];
} tensor_choice;

/* Presets in the order --help lists them, NULL-terminated. */
extern const char *const recipe_presets[];

/* Checks the options alone (preset and override syntax, type names, group size). */
int recipe_check(const recipe_options *o, dsq_error *err);

/* Chooses every planned tensor's type. Fails naming the tensor when a quantized type does not
 * fit it (group size not dividing its rows, or a 1-D tensor). An override that matches no
 * tensor is not an error: its text goes into *unused (a malloc'd ", "-joined list, or NULL). */
int recipe_resolve(const recipe_options *o, const planned_tensor *plan, int n,
                   tensor_choice *choices, char **unused, dsq_error *err);

/* The metadata "recipe" object: preset, group size, overrides, and per class the types used. */
json_t *recipe_to_json(const recipe_options *o, const planned_tensor *plan, int n,
                       const tensor_choice *choices);

#endif
