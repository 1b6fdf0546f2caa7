/* Preset tables, override matching and the per-tensor choice with its reason. */
#include "recipe.h"

#include <fnmatch.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "types.h"

const char *const recipe_presets[] = {"bf16", "q8", "q4", "q4-q6", "q4-all", NULL};

/* Type of a matrix class under a preset; norms and the router always stay f32. */
static uint32_t preset_type(const char *preset, tensor_class cls, const char **why)
{
    if (cls == TC_NORM) {
        *why = "norms stay f32: tiny, and they scale every activation";
        return DSQ_TYPE_F32;
    }
    if (cls == TC_ROUTER) {
        *why = "router stays f32: expert choice is sensitive to it";
        return DSQ_TYPE_F32;
    }
    if (strcmp(preset, "bf16") == 0) {
        *why = "preset bf16";
        return DSQ_TYPE_BF16;
    }
    if (strcmp(preset, "q8") == 0) {
        *why = "preset q8";
        return DSQ_TYPE_Q8;
    }
    if (strcmp(preset, "q4-all") == 0) {
        *why = "preset q4-all";
        return DSQ_TYPE_Q4;
    }
    const bool q6_rest = strcmp(preset, "q4-q6") == 0;
    if (cls == TC_ROUTED_EXPERT) {
        *why = q6_rest ? "preset q4-q6: routed experts hold most weights, each used by few tokens"
                       : "preset q4: routed experts hold most weights, each used by few tokens";
        return DSQ_TYPE_Q4;
    }
    if (q6_rest && cls == TC_EMBEDDING) {
        *why = "preset q4-q6: a token reads one row, so its bits cost file size, not time";
        return DSQ_TYPE_Q8;
    }
    if (q6_rest) {
        *why = "preset q4-q6: read in full by every token, 6 bits";
        return DSQ_TYPE_Q6;
    }
    *why = "preset q4: used by every token, kept at q8";
    return DSQ_TYPE_Q8;
}

static int split_override(const char *text, char *glob, size_t cap, int *type)
{
    const char *eq = strrchr(text, '=');
    if (!eq || eq == text || (size_t)(eq - text) >= cap)
        return -1;
    memcpy(glob, text, (size_t)(eq - text));
    glob[eq - text] = 0;
    *type = dsq_type_from_name(eq + 1);
    return *type < 0 ? -2 : 0;
}

int recipe_check(const recipe_options *o, dsq_error *err)
{
    int known = 0;
    for (int i = 0; recipe_presets[i]; i++)
        known |= strcmp(o->preset, recipe_presets[i]) == 0;
    if (!known)
        return dsq_fail(err, DSQ_EUSAGE, "unknown preset '%s' (bf16, q8, q4, q4-q6, q4-all)",
                        o->preset);
    if (o->group_size == 0 || o->group_size % 32 != 0 || o->group_size > 4096)
        return dsq_fail(err, DSQ_EUSAGE,
                        "--group-size %u: must be a multiple of 32 from 32 to 4096",
                        o->group_size);
    for (int i = 0; i < o->n_overrides; i++) {
        char glob[256];
        int type, rc = split_override(o->overrides[i], glob, sizeof glob, &type);
        if (rc == -1)
            return dsq_fail(err, DSQ_EUSAGE, "--override '%s': expected GLOB=TYPE",
                            o->overrides[i]);
        if (rc == -2)
            return dsq_fail(err, DSQ_EUSAGE,
                            "--override '%s': unknown type (f32, f16, bf16, q8, q6, q4)",
                            o->overrides[i]);
    }
    return DSQ_OK;
}

int recipe_resolve(const recipe_options *o, const planned_tensor *plan, int n,
                   tensor_choice *choices, char **unused, dsq_error *err)
{
    *unused = NULL;
    int rc = recipe_check(o, err);
    if (rc)
        return rc;
    for (int i = 0; i < n; i++) {
        const char *why;
        choices[i].type = preset_type(o->preset, plan[i].cls, &why);
        snprintf(choices[i].why, sizeof choices[i].why, "%s", why);
    }
    size_t unused_len = 0;
    for (int k = 0; k < o->n_overrides; k++) { /* later overrides win */
        char glob[256];
        int type, matched = 0;
        split_override(o->overrides[k], glob, sizeof glob, &type);
        const bool wildcard = strpbrk(glob, "*?[") != NULL;
        for (int i = 0; i < n; i++) {
            if (fnmatch(glob, plan[i].name, 0) != 0)
                continue;
            matched = 1;
            /* a glob that sweeps over a norm leaves it f32; naming one exactly is refused below */
            if (wildcard && plan[i].ndim == 1 && dsq_type_info((uint32_t)type)->quantized)
                continue;
            choices[i].type = (uint32_t)type;
            snprintf(choices[i].why, sizeof choices[i].why, "override %s", o->overrides[k]);
        }
        if (!matched) {
            size_t add = strlen(o->overrides[k]) + 2;
            char *grown = realloc(*unused, unused_len + add + 1);
            if (!grown)
                return dsq_fail(err, DSQ_ERESOURCE, "out of memory");
            sprintf(grown + unused_len, "%s%s", unused_len ? ", " : "", o->overrides[k]);
            unused_len = strlen(grown);
            *unused = grown;
        }
    }
    for (int i = 0; i < n; i++) {
        const dsq_type_traits *t = dsq_type_info(choices[i].type);
        choices[i].group = t->quantized ? o->group_size : 0;
        if (!t->quantized)
            continue;
        if (plan[i].ndim != 2)
            return dsq_fail(err, DSQ_EUSAGE, "tensor %s is 1-D and cannot be stored as %s",
                            plan[i].name, t->name);
        const char *problem = dsq_group_problem(plan[i].shape[1], o->group_size);
        if (problem)
            return dsq_fail(err, DSQ_EUSAGE,
                            "tensor %s (rows of %llu) cannot be stored as %s with group size %u: "
                            "%s",
                            plan[i].name, (unsigned long long)plan[i].shape[1], t->name,
                            o->group_size, problem);
    }
    return DSQ_OK;
}

json_t *recipe_to_json(const recipe_options *o, const planned_tensor *plan, int n,
                       const tensor_choice *choices)
{
    json_t *overrides = json_array();
    for (int k = 0; k < o->n_overrides; k++)
        json_array_append_new(overrides, json_string(o->overrides[k]));
    json_t *tensors = json_object(); /* name -> "type: why", the choice actually applied */
    for (int i = 0; i < n; i++) {
        char text[160];
        snprintf(text, sizeof text, "%s: %s", dsq_type_info(choices[i].type)->name,
                 choices[i].why);
        json_object_set_new(tensors, plan[i].name, json_string(text));
    }
    return json_pack("{s:s, s:i, s:o, s:o}", "preset", o->preset, "group_size",
                     (int)o->group_size, "overrides", overrides, "tensors", tensors);
}
