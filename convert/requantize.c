/* Re-encodes the tensors of a .dsq file under a new recipe, streaming row chunks. */
#include "requantize.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "dequant.h"
#include "model_file.h"
#include "output_path.h"
#include "dsq_writer.h"
#include "float16.h"
#include "tensor_sink.h"
#include "types.h"

#define CHUNK_ELEMS (8u << 20) /* f32 values widened per step: 32 MB */

/* f32 values to a float storage type. */
static void narrow(const float *src, uint32_t type, void *dst, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (type == DSQ_TYPE_F32)
            ((float *)dst)[i] = src[i];
        else if (type == DSQ_TYPE_BF16)
            ((uint16_t *)dst)[i] = dsq_f32_to_bf16(src[i]);
        else
            ((uint16_t *)dst)[i] = dsq_f32_to_f16(src[i]);
    }
}

/* Writes tensor index of w from tensor t of f, re-encoded as the writer declared it. */
static int reencode(const dsq_file *f, const dsq_tensor_info *t, dsq_writer *w, uint32_t index,
                    float *rows, void *narrowed, quant_stats *error, dsq_error *err)
{
    const dsq_tensor_info *out = dsq_writer_tensor(w, index);
    if (out->type == t->type && out->group_size == t->group_size) /* nothing to do: copy */
        return dsq_writer_write(w, index, dsq_file_data(f, t), t->size, err);
    if (dsq_type_info(t->type)->quantized)
        return dsq_fail(err, DSQ_EUSAGE,
                        "tensor %s is stored as %s; re-encoding it as %s would add error to "
                        "error: convert from the original checkpoint instead",
                        t->name, dsq_type_info(t->type)->name, dsq_type_info(out->type)->name);
    uint64_t rows_total, cols;
    dsq_tensor_rows_cols(t, &rows_total, &cols);
    uint64_t step = CHUNK_ELEMS / cols ? CHUNK_ELEMS / cols : 1;
    const bool quantized = dsq_type_info(out->type)->quantized;
    tensor_sink sink = {0};
    int rc = quantized ? tensor_sink_begin(&sink, w, index, step, err) : DSQ_OK;
    for (uint64_t r0 = 0; !rc && r0 < rows_total; r0 += step) {
        uint64_t n = rows_total - r0 < step ? rows_total - r0 : step;
#pragma omp parallel for schedule(static)
        for (uint64_t r = 0; r < n; r++)
            dsq_dequant_row(t->type, dsq_file_data(f, t), rows_total, cols, t->group_size,
                            r0 + r, rows + r * cols);
        if (quantized) {
            rc = tensor_sink_rows(&sink, rows, n, err);
        } else {
            narrow(rows, out->type, narrowed, n * cols);
            rc = dsq_writer_write(w, index, narrowed,
                                  n * cols * dsq_type_info(out->type)->elem_bytes, err);
        }
    }
    if (quantized && !rc) {
        quant_stats_merge(error, &sink.stats);
        rc = tensor_sink_end(&sink, err);
    }
    tensor_sink_free(&sink);
    return rc;
}

/* The input's metadata with the new recipe, and its provenance extended by this step. */
static char *new_metadata(const dsq_file *f, json_t *recipe, const requantize_options *o)
{
    json_t *meta = json_deep_copy(f->meta);
    json_object_set_new(meta, "recipe", recipe);
    json_t *prov = json_object_get(meta, "provenance");
    if (json_is_object(prov)) {
        json_t *steps = json_object_get(prov, "requantized");
        if (!json_is_array(steps)) {
            steps = json_array();
            json_object_set_new(prov, "requantized", steps);
        }
        json_array_append_new(steps, json_pack("{s:s, s:s}", "from", o->in_path, "command",
                                               o->command_line ? o->command_line : ""));
    }
    char *text = json_dumps(meta, JSON_COMPACT);
    json_decref(meta);
    return text;
}

int dsq_requantize(const requantize_options *o, convert_stats *stats, dsq_error *err)
{
    model_file m;
    tensor_choice *choices = NULL;
    dsq_writer *w = NULL;
    float *rows = NULL;
    void *narrowed = NULL;
    char *meta = NULL;
    quant_stats error[TC_COUNT];
    memset(error, 0, sizeof error);
    memset(stats, 0, sizeof *stats);
    recipe_options recipe = o->recipe;
    if (!recipe.group_size)
        recipe.group_size = RECIPE_DEFAULT_GROUP;
    if (o->threads > 0)
        omp_set_num_threads(o->threads);
    const char *inputs[] = {o->in_path};
    int rc = output_path_check(o->out_path, inputs, 1, err);
    if (rc)
        return rc;
    rc = model_file_open(&m, o->in_path, err); /* config, plan, every tensor checked */
    if (rc)
        return rc;
    const planned_tensor *plan = m.plan;
    const int n_plan = m.n_plan;
    if (!(choices = calloc((size_t)n_plan, sizeof *choices)) ||
        !(rows = malloc(CHUNK_ELEMS * sizeof(float) + 65536 * sizeof(float))) ||
        !(narrowed = malloc(CHUNK_ELEMS * sizeof(float) + 65536 * sizeof(float))))
        rc = dsq_fail(err, DSQ_ERESOURCE, "out of memory");
    if (!rc)
        rc = recipe_resolve(&recipe, plan, n_plan, choices, &stats->unused_overrides, err);
    if (!rc)
        rc = dsq_writer_create(&w, o->out_path, err);
    for (int i = 0; !rc && i < n_plan; i++) {
        uint32_t idx;
        rc = dsq_writer_add(w, plan[i].name, choices[i].type, plan[i].ndim, plan[i].shape,
                            choices[i].group, &idx, err);
    }
    if (!rc)
        rc = dsq_writer_begin_data(w, err);
    uint64_t total = 0, done = 0;
    for (int i = 0; i < n_plan; i++)
        total += m.tensors[i]->size;
    for (int i = 0; !rc && i < n_plan; i++) {
        rc = reencode(&m.file, m.tensors[i], w, (uint32_t)i, rows, narrowed,
                      &error[plan[i].cls], err);
        done += m.tensors[i]->size;
        if (o->progress)
            o->progress(o->progress_ctx, done, total);
    }
    if (!rc) {
        json_t *recipe_json = recipe_to_json(&recipe, plan, n_plan, choices);
        json_object_set_new(recipe_json, "error", quant_error_json(error));
        if (!(meta = new_metadata(&m.file, recipe_json, o)))
            rc = dsq_fail(err, DSQ_ERESOURCE, "out of memory for metadata");
    }
    if (!rc)
        rc = dsq_writer_finish(w, meta, strlen(meta), err);
    if (!rc) {
        stats->bytes_read = total;
        stats->bytes_written = dsq_writer_data_bytes(w);
        stats->n_tensors = n_plan;
    }
    dsq_writer_free(w);
    free(meta);
    free(rows);
    free(narrowed);
    free(choices);
    model_file_close(&m);
    return rc;
}
