/* dsq convert: config -> plan -> checkpoint check -> streamed tensor data -> metadata. */
#include "convert.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "chat_template.h"
#include "dsq_writer.h"
#include "float16.h"
#include "hf_config.h"
#include "input_file.h"
#include "output_path.h"
#include "recipe.h"
#include "safetensors.h"
#include "tensor_map.h"
#include "tensor_sink.h"
#include "tokenizer.h" /* the runtime's own loader, to refuse what it would refuse */
#include "tokenizer_import.h"
#include "types.h"
#include "version.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors and .dsq are little-endian; this converter assumes a little-endian host"
#endif

#define CHUNK_BYTES (32u << 20) /* source bytes converted per step: bounds memory */

static int ignorable_extra(const char *hf_name)
{
    const char *suffix = ".rotary_emb.inv_freq"; /* a buffer some exporters save; derivable */
    size_t n = strlen(hf_name), m = strlen(suffix);
    return n > m && strcmp(hf_name + n - m, suffix) == 0;
}

/* Appends "name" to a bounded list of names for an error message. */
static void list_name(char *buf, size_t cap, int *count, const char *name)
{
    size_t len = strlen(buf);
    if (*count < 6 && len + strlen(name) + 3 < cap)
        snprintf(buf + len, cap - len, "%s%s", *count ? ", " : "", name);
    (*count)++;
}

/* Matches the checkpoint to the plan: src[i] is the source of plan[i]. Every missing, mis-shaped
 * and unexpected tensor is named (the first few of each kind) in one error. */
static int match_checkpoint(const st_checkpoint *ck, const planned_tensor *plan, int n_plan,
                            const st_tensor **src, const char *dir, dsq_error *err)
{
    char missing[512] = "", shapes[768] = "", extra[512] = "";
    int n_missing = 0, n_shapes = 0, n_extra = 0;
    for (int i = 0; i < n_plan; i++) {
        const st_tensor *t = st_find(ck, plan[i].hf_name);
        src[i] = t;
        if (!t) {
            list_name(missing, sizeof missing, &n_missing, plan[i].hf_name);
            continue;
        }
        int ok = t->ndim == (int)plan[i].ndim && t->shape[0] == plan[i].shape[0] &&
                 (plan[i].ndim == 1 || t->shape[1] == plan[i].shape[1]);
        if (!ok) {
            char desc[200], got[64] = "";
            for (int d = 0; d < t->ndim && d < 4; d++)
                snprintf(got + strlen(got), sizeof got - strlen(got), "%s%llu", d ? "x" : "",
                         (unsigned long long)t->shape[d]);
            if (plan[i].ndim == 2)
                snprintf(desc, sizeof desc, "%s is %s, expected %llux%llu", plan[i].hf_name, got,
                         (unsigned long long)plan[i].shape[0],
                         (unsigned long long)plan[i].shape[1]);
            else
                snprintf(desc, sizeof desc, "%s is %s, expected %llu", plan[i].hf_name, got,
                         (unsigned long long)plan[i].shape[0]);
            list_name(shapes, sizeof shapes, &n_shapes, desc);
        }
    }
    int matched = 0;
    for (int i = 0; i < n_plan; i++)
        matched += src[i] != NULL;
    if (matched + n_extra < ck->n_tensors) {
        /* find the unexpected ones: names in the checkpoint that no plan entry claimed */
        char *claimed = calloc((size_t)ck->n_tensors, 1);
        if (!claimed)
            return dsq_fail(err, DSQ_ERESOURCE, "out of memory");
        for (int i = 0; i < n_plan; i++)
            if (src[i])
                claimed[src[i] - ck->tensors] = 1;
        for (int j = 0; j < ck->n_tensors; j++)
            if (!claimed[j] && !ignorable_extra(ck->tensors[j].name))
                list_name(extra, sizeof extra, &n_extra, ck->tensors[j].name);
        free(claimed);
    }
    if (!n_missing && !n_shapes && !n_extra)
        return DSQ_OK;
    char msg[2048];
    int len = snprintf(msg, sizeof msg, "%s: checkpoint does not match its config.json:", dir);
    if (n_missing)
        len += snprintf(msg + len, sizeof msg - (size_t)len, " %d missing tensor%s (%s%s)",
                        n_missing, n_missing > 1 ? "s" : "", missing, n_missing > 6 ? ", ..." : "");
    if (n_shapes && len < (int)sizeof msg)
        len += snprintf(msg + len, sizeof msg - (size_t)len, "%s %d wrong shape%s (%s%s)",
                        n_missing ? ";" : "", n_shapes,
                        n_shapes > 1 ? "s" : "", shapes, n_shapes > 6 ? ", ..." : "");
    if (n_extra && len < (int)sizeof msg)
        snprintf(msg + len, sizeof msg - (size_t)len, "%s %d unexpected tensor%s (%s%s)",
                 n_missing || n_shapes ? ";" : "", n_extra,
                 n_extra > 1 ? "s" : "", extra, n_extra > 6 ? ", ..." : "");
    return dsq_fail(err, DSQ_EINPUT, "%s", msg);
}

/* A config promising far more tensors than the checkpoint holds (TENSOR_PLAN_MAX) fails here,
 * before anything is allocated per planned tensor: a few bytes of config could otherwise ask
 * for gigabytes. Below that bound the plan is built and match_checkpoint names what is missing. */
static int plan_fits_checkpoint(const dsq_model_config *cfg, const st_checkpoint *ck,
                                const char *dir, dsq_error *err)
{
    uint64_t planned = tensor_plan_count(cfg);
    if (planned <= TENSOR_PLAN_MAX(ck->n_tensors))
        return DSQ_OK;
    return dsq_fail(err, DSQ_EINPUT,
                    "%s: checkpoint does not match its config.json: the config's %d layers and "
                    "%d routed experts need %llu tensors, the checkpoint holds %d (%llu missing "
                    "tensors)",
                    dir, cfg->n_layers, cfg->n_routed_experts, (unsigned long long)planned,
                    ck->n_tensors, (unsigned long long)(planned - (uint64_t)ck->n_tensors));
}

static int same_type(st_dtype from, uint32_t to)
{
    return (from == ST_BF16 && to == DSQ_TYPE_BF16) || (from == ST_F32 && to == DSQ_TYPE_F32) ||
           (from == ST_F16 && to == DSQ_TYPE_F16);
}

/* Converts n elements from a safetensors dtype to another dsq float type. */
static void convert_elements(st_dtype from, const void *src, uint32_t to, void *dst, size_t n)
{
#pragma omp parallel for schedule(static) if (n > (1u << 16))
    for (size_t i = 0; i < n; i++) {
        float v = from == ST_F32    ? ((const float *)src)[i]
                  : from == ST_BF16 ? dsq_bf16_to_f32(((const uint16_t *)src)[i])
                                    : dsq_f16_to_f32(((const uint16_t *)src)[i]);
        if (to == DSQ_TYPE_F32)
            ((float *)dst)[i] = v;
        else if (to == DSQ_TYPE_BF16)
            ((uint16_t *)dst)[i] = dsq_f32_to_bf16(v);
        else
            ((uint16_t *)dst)[i] = dsq_f32_to_f16(v);
    }
}

static int read_shard_bytes(const st_shard *s, uint64_t off, void *buf, size_t len,
                            dsq_error *err)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = pread(s->fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return dsq_fail(err, DSQ_EINPUT, "%s: read failed at offset %llu: %s", s->path,
                            (unsigned long long)off, n < 0 ? strerror(errno) : "unexpected end");
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return DSQ_OK;
}

typedef struct {
    const convert_options *opt;
    const st_checkpoint *ck;
    const planned_tensor *plan; /* plan[i] is writer tensor i */
    quant_stats class_error[TC_COUNT];
    dsq_writer *w;
    uint8_t *in, *out; /* chunk buffers */
    uint64_t done, total;
    XXH3_state_t *file_hash; /* whole-shard hash, fed in file order */
    uint64_t *shard_hashes;
} stream_state;

/* Feeds [from, to) of shard s into the shard hash (headers and any gaps between tensors). */
static int hash_gap(stream_state *s, const st_shard *sh, uint64_t from, uint64_t to,
                    dsq_error *err)
{
    while (from < to) {
        size_t n = to - from < CHUNK_BYTES ? (size_t)(to - from) : CHUNK_BYTES;
        int rc = read_shard_bytes(sh, from, s->in, n, err);
        if (rc)
            return rc;
        XXH3_64bits_update(s->file_hash, s->in, n);
        from += n;
    }
    return DSQ_OK;
}

/* Writes one chunk of whole rows of a quantized tensor: widened to f32, then quantized. */
static int quantize_chunk(stream_state *s, tensor_sink *sink, const st_tensor *t, size_t elems,
                          dsq_error *err)
{
    const float *rows = (const float *)s->in;
    if (t->dtype != ST_F32) {
        convert_elements(t->dtype, s->in, DSQ_TYPE_F32, s->out, elems);
        rows = (const float *)s->out;
    }
    return tensor_sink_rows(sink, rows, elems / sink->cols, err);
}

/* True if the element is a NaN or an infinity (all exponent bits set, in every float type). */
static int element_non_finite(st_dtype dtype, const void *buf, size_t i)
{
    if (dtype == ST_F32)
        return !isfinite(((const float *)buf)[i]);
    uint16_t x = ((const uint16_t *)buf)[i];
    return dtype == ST_BF16 ? (x & 0x7f80) == 0x7f80 : (x & 0x7c00) == 0x7c00;
}

/* Stored tensors must hold finite values, as the quantizers already demand of theirs: a NaN
 * would turn every logit into NaN. first is the index of buf's first element in the tensor. */
static int check_finite(const st_tensor *t, const char *name, const void *buf, size_t elems,
                        uint64_t first, uint64_t row_elems, dsq_error *err)
{
    for (size_t i = 0; i < elems; i++)
        if (element_non_finite(t->dtype, buf, i))
            return dsq_fail(err, DSQ_EINPUT, "tensor %s: row %llu holds a NaN or infinity",
                            name, (unsigned long long)((first + i) / row_elems));
    return DSQ_OK;
}

/* Prefixes a refused value with the shard and the tensor's name there, which the checks do not
 * know. */
static int in_source(const stream_state *s, const st_tensor *t, int rc, dsq_error *err)
{
    if (rc == DSQ_EINPUT && err) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        dsq_fail(err, rc, "%s: %s: %s", s->ck->shards[t->shard].path, t->name, msg);
    }
    return rc;
}

/* Streams one source tensor into dsq tensor `index` (or only hashes it if index < 0). */
static int stream_tensor(stream_state *s, const st_tensor *t, int index, dsq_error *err)
{
    const dsq_tensor_info *info = index >= 0 ? dsq_writer_tensor(s->w, (uint32_t)index) : NULL;
    const int quantized = info && dsq_type_info(info->type)->quantized;
    size_t esize = st_dtype_size(t->dtype);
    uint64_t row_elems = t->ndim ? t->shape[t->ndim - 1] : 1;
    uint64_t row_bytes = row_elems * esize;
    uint64_t rows_per_chunk = row_bytes ? CHUNK_BYTES / row_bytes : 1;
    /* whole rows per step (quantizers need them); a row longer than a chunk is split, which
     * element-wise float conversion allows */
    uint64_t step = rows_per_chunk ? rows_per_chunk * row_bytes : CHUNK_BYTES - CHUNK_BYTES % esize;
    tensor_sink sink = {0};
    int rc = quantized ? tensor_sink_begin(&sink, s->w, (uint32_t)index, rows_per_chunk, err) : 0;
    for (uint64_t off = 0; !rc && off < t->size; off += step) {
        size_t n = (size_t)(t->size - off < step ? t->size - off : step);
        if ((rc = st_read(s->ck, t, off, s->in, n, err)))
            break;
        XXH3_64bits_update(s->file_hash, s->in, n);
        if (quantized) {
            rc = in_source(s, t, quantize_chunk(s, &sink, t, n / esize, err), err);
        } else if (info) {
            size_t elems = n / esize;
            rc = check_finite(t, info->name, s->in, elems, off / esize, row_elems, err);
            if (in_source(s, t, rc, err))
                break;
            size_t out_bytes = elems * dsq_type_info(info->type)->elem_bytes;
            const void *stored = s->in; /* same type: written straight from the read buffer */
            if (!same_type(t->dtype, info->type)) {
                convert_elements(t->dtype, s->in, info->type, s->out, elems);
                stored = s->out;
            }
            rc = dsq_writer_write(s->w, (uint32_t)index, stored, out_bytes, err);
        }
        s->done += n;
        if (s->opt->progress)
            s->opt->progress(s->opt->progress_ctx, s->done, s->total);
    }
    if (quantized && !rc) {
        quant_stats_merge(&s->class_error[s->plan[index].cls], &sink.stats);
        rc = tensor_sink_end(&sink, err);
    }
    tensor_sink_free(&sink);
    return rc;
}

/* Reads every shard front to back, writing each planned tensor; hashes whole shards. */
static int stream_shards(stream_state *s, const int *dest, dsq_error *err)
{
    const st_checkpoint *ck = s->ck;
    int ti = 0, rc = DSQ_OK;
    for (int sh = 0; sh < ck->n_shards && !rc; sh++) {
        const st_shard *shard = &ck->shards[sh];
        uint64_t pos = 0;
        XXH3_64bits_reset(s->file_hash);
        for (; ti < ck->n_tensors && ck->tensors[ti].shard == sh && !rc; ti++) {
            const st_tensor *t = &ck->tensors[ti];
            rc = hash_gap(s, shard, pos, t->offset, err);
            if (!rc)
                rc = stream_tensor(s, t, dest[ti], err);
            pos = t->offset + t->size;
        }
        if (!rc)
            rc = hash_gap(s, shard, pos, shard->file_size, err);
        s->shard_hashes[sh] = XXH3_64bits_digest(s->file_hash);
    }
    return rc;
}

/* {"name", "size", "xxh3"} of a small file in the checkpoint folder, or NULL if absent. */
static json_t *describe_small_file(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f;
    if (input_fopen(path, 1, &f, NULL) || !f)
        return NULL;
    XXH3_state_t *h = XXH3_createState();
    XXH3_64bits_reset(h);
    char buf[65536];
    size_t n, size = 0;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        XXH3_64bits_update(h, buf, n);
        size += n;
    }
    fclose(f);
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)XXH3_64bits_digest(h));
    XXH3_freeState(h);
    return json_pack("{s:s, s:I, s:s}", "name", name, "size", (json_int_t)size, "xxh3", hex);
}

static json_t *build_provenance(const convert_options *o, const st_checkpoint *ck,
                                const uint64_t *shard_hashes)
{
    json_t *files = json_array();
    const char *small[] = {"config.json", "tokenizer.json", "tokenizer_config.json",
                           "generation_config.json", "model.safetensors.index.json"};
    for (size_t i = 0; i < sizeof small / sizeof small[0]; i++) {
        json_t *d = describe_small_file(o->hf_dir, small[i]);
        if (d)
            json_array_append_new(files, d);
    }
    for (int i = 0; i < ck->n_shards; i++) {
        const char *base = strrchr(ck->shards[i].path, '/');
        char hex[17];
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)shard_hashes[i]);
        json_array_append_new(files, json_pack("{s:s, s:I, s:s}", "name",
                                               base ? base + 1 : ck->shards[i].path, "size",
                                               (json_int_t)ck->shards[i].file_size, "xxh3", hex));
    }
    return json_pack("{s:s, s:s, s:s, s:s, s:o}", "tool", "dsq", "version", DSQ_TOOL_VERSION,
                     "command", o->command_line ? o->command_line : "", "source_dir", o->hf_dir,
                     "source_files", files);
}

/* Per tensor class that was quantized: relative RMS error, max abs error, weights. */
json_t *quant_error_json(const quant_stats *by_class)
{
    json_t *o = json_object();
    for (int c = 0; c < TC_COUNT; c++)
        if (by_class[c].count)
            json_object_set_new(
                o, tensor_class_name((tensor_class)c),
                json_pack("{s:f, s:f, s:I}", "relative_rmse",
                          by_class[c].sum_sq > 0 ? sqrt(by_class[c].sum_sq_err / by_class[c].sum_sq)
                                                 : 0.0,
                          "max_abs_error", by_class[c].max_abs_err, "weights",
                          (json_int_t)by_class[c].count));
    return o;
}

/* What the commands that open the output will demand of the tokenizer and the chat template,
 * checked by the code they use before anything is written: the tokenizer builds (its split
 * regexes compile with PCRE2 as the runtime compiles them), the template passes the reader's
 * limits, and the metadata fits the reader's cap. */
static int check_commands_accept(const char *dir, const json_t *tok, const json_t *tmpl,
                                 dsq_error *err)
{
    char where[4200];
    snprintf(where, sizeof where, "%s/tokenizer.json", dir);
    tokenizer *t = NULL;
    int rc = tokenizer_load(&t, tok, where, err);
    tokenizer_free(t);
    if (rc)
        return rc;
    snprintf(where, sizeof where, "%s (tokenizer_config.json or chat_template.jinja)", dir);
    if ((rc = chat_template_check(tmpl, where, err)))
        return rc;
    size_t bytes = json_dumpb(tok, NULL, 0, JSON_COMPACT) + json_string_length(tmpl);
    if (bytes > DSQ_MAX_META_RAW)
        return dsq_fail(err, DSQ_EINPUT,
                        "%s: the tokenizer and chat template take %zu bytes of metadata, more "
                        "than the %llu MiB a reader accepts",
                        dir, bytes, DSQ_MAX_META_RAW >> 20);
    return DSQ_OK;
}

/* Refuses a small input that is not a regular file, and an output that is one of the files this
 * conversion reads (output_path.h). */
static int check_output(const convert_options *o, const st_checkpoint *ck, dsq_error *err)
{
    static const char *small[] = {"config.json",         "tokenizer.json",
                                  "tokenizer_config.json", "chat_template.jinja",
                                  "generation_config.json", "model.safetensors.index.json"};
    enum { N_SMALL = sizeof small / sizeof small[0] };
    char *paths[N_SMALL] = {0};
    const char **inputs = calloc(N_SMALL + (size_t)ck->n_shards, sizeof *inputs);
    int rc = inputs ? DSQ_OK : dsq_fail(err, DSQ_ERESOURCE, "out of memory");
    for (int i = 0; !rc && i < N_SMALL; i++)
        if (asprintf(&paths[i], "%s/%s", o->hf_dir, small[i]) < 0) {
            paths[i] = NULL;
            rc = dsq_fail(err, DSQ_ERESOURCE, "out of memory");
        } else {
            inputs[i] = paths[i];
            int fd; /* a small file read only for provenance must be regular too, or absent */
            if (!(rc = input_open(paths[i], 1, &fd, NULL, err)) && fd >= 0)
                close(fd);
        }
    for (int i = 0; !rc && i < ck->n_shards; i++)
        inputs[N_SMALL + i] = ck->shards[i].path;
    if (!rc)
        rc = output_path_check(o->out_path, inputs, N_SMALL + (size_t)ck->n_shards, err);
    for (int i = 0; i < N_SMALL; i++)
        free(paths[i]);
    free(inputs);
    return rc;
}

/* Declares every planned tensor to the writer, in plan order; dest maps source -> dsq index. */
static int declare_tensors(dsq_writer *w, const st_checkpoint *ck, const planned_tensor *plan,
                           const tensor_choice *choices, int n_plan, const st_tensor **src,
                           int *dest, dsq_error *err)
{
    for (int j = 0; j < ck->n_tensors; j++)
        dest[j] = -1;
    for (int i = 0; i < n_plan; i++) {
        uint32_t idx;
        int rc = dsq_writer_add(w, plan[i].name, choices[i].type, plan[i].ndim, plan[i].shape,
                                choices[i].group, &idx, err);
        if (rc)
            return rc;
        dest[src[i] - ck->tensors] = (int)idx;
    }
    return DSQ_OK;
}

int dsq_convert(const convert_options *o, convert_stats *stats, dsq_error *err)
{
    char path[4096], dtype[32];
    dsq_model_config cfg;
    planned_tensor *plan = NULL;
    int n_plan = 0;
    st_checkpoint ck = {0};
    json_t *tok_json = NULL, *chat_template = NULL, *meta = NULL;
    const st_tensor **src = NULL;
    int *dest = NULL;
    dsq_writer *w = NULL;
    stream_state s = {.opt = o, .ck = &ck};
    char *meta_text = NULL;
    tensor_choice *choices = NULL;
    recipe_options recipe = o->recipe;
    if (!recipe.preset)
        recipe.preset = "bf16";
    if (!recipe.group_size)
        recipe.group_size = RECIPE_DEFAULT_GROUP;
    memset(stats, 0, sizeof *stats);
    if (o->threads > 0)
        omp_set_num_threads(o->threads);

    struct stat st;
    if (stat(o->hf_dir, &st) != 0)
        return dsq_fail(err, DSQ_EINPUT, "%s: %s", o->hf_dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return dsq_fail(err, DSQ_EINPUT, "%s: not a folder (give the checkpoint's folder)",
                        o->hf_dir);
    snprintf(path, sizeof path, "%s/config.json", o->hf_dir);
    int rc = hf_config_load(&cfg, dtype, sizeof dtype, path, err);
    if (!rc)
        rc = st_open_dir(&ck, o->hf_dir, err);
    if (!rc)
        rc = check_output(o, &ck, err);
    if (!rc)
        rc = plan_fits_checkpoint(&cfg, &ck, o->hf_dir, err);
    if (!rc)
        rc = tensor_plan_build(&cfg, &plan, &n_plan, err);
    if (!rc && !(choices = calloc((size_t)n_plan, sizeof *choices)))
        rc = dsq_fail(err, DSQ_ERESOURCE, "out of memory");
    if (!rc)
        rc = recipe_resolve(&recipe, plan, n_plan, choices, &stats->unused_overrides, err);
    if (!rc) {
        src = calloc((size_t)n_plan, sizeof *src);
        dest = calloc((size_t)ck.n_tensors + 1, sizeof *dest);
        if (!src || !dest)
            rc = dsq_fail(err, DSQ_ERESOURCE, "out of memory");
    }
    if (!rc)
        rc = match_checkpoint(&ck, plan, n_plan, src, o->hf_dir, err);
    if (!rc)
        rc = tokenizer_import(o->hf_dir, cfg.bos_token_id, cfg.eos_token_id, cfg.vocab_size,
                              &tok_json, &chat_template, err);
    if (!rc)
        rc = check_commands_accept(o->hf_dir, tok_json, chat_template, err);
    if (!rc)
        rc = dsq_writer_create(&w, o->out_path, err);
    if (!rc)
        rc = declare_tensors(w, &ck, plan, choices, n_plan, src, dest, err);
    if (!rc)
        rc = dsq_writer_begin_data(w, err);
    if (!rc) {
        s.w = w;
        s.plan = plan;
        s.in = malloc(CHUNK_BYTES);
        s.out = malloc(2 * (size_t)CHUNK_BYTES); /* bf16 -> f32 doubles the bytes */
        s.file_hash = XXH3_createState();
        s.shard_hashes = calloc((size_t)ck.n_shards, sizeof *s.shard_hashes);
        for (int j = 0; j < ck.n_tensors; j++)
            s.total += ck.tensors[j].size;
        if (!s.in || !s.out || !s.file_hash || !s.shard_hashes)
            rc = dsq_fail(err, DSQ_ERESOURCE, "out of memory for conversion buffers");
    }
    if (!rc)
        rc = stream_shards(&s, dest, err);
    if (!rc) {
        json_t *model = model_config_to_json(&cfg);
        json_object_set_new(model, "source_dtype", json_string(dtype));
        json_t *recipe_json = recipe_to_json(&recipe, plan, n_plan, choices);
        json_object_set_new(recipe_json, "error", quant_error_json(s.class_error));
        meta = json_pack("{s:s, s:o, s:o, s:o, s:o, s:o}", "format", "dsq", "model", model,
                         "tokenizer", tok_json, "chat_template", chat_template, "recipe",
                         recipe_json, "provenance", build_provenance(o, &ck, s.shard_hashes));
        tok_json = chat_template = NULL; /* owned by meta now */
        meta_text = meta ? json_dumps(meta, JSON_COMPACT) : NULL;
        if (!meta_text)
            rc = dsq_fail(err, DSQ_ERESOURCE, "out of memory for metadata");
    }
    if (!rc)
        rc = dsq_writer_finish(w, meta_text, strlen(meta_text), err);
    if (!rc) {
        stats->bytes_read = 0;
        for (int i = 0; i < ck.n_shards; i++)
            stats->bytes_read += ck.shards[i].file_size;
        stats->bytes_written = dsq_writer_data_bytes(w);
        stats->n_tensors = n_plan;
    }
    dsq_writer_free(w);
    free(meta_text);
    json_decref(meta);
    json_decref(tok_json);
    json_decref(chat_template);
    free(s.in);
    free(s.out);
    XXH3_freeState(s.file_hash);
    free(s.shard_hashes);
    free(src);
    free(dest);
    free(choices);
    st_close(&ck);
    free(plan);
    return rc;
}
