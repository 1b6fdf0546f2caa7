/* dsq info FILE.dsq [--tensors] [--json] */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_backend.h"
#include "cli_plan.h"
#include "model.h"
#include "model_file.h"
#include "types.h"
#include "placement.h"
#include "vram_plan.h"

static const char help[] =
    "usage: dsq info FILE.dsq [--tensors] [--json] [--ctx N] [--vram BYTES [--expert-stats F]]\n"
    "\n"
    "Prints the model's family and dimensions, parameter counts (total and active per token),\n"
    "bytes and bits per weight by tensor class, the tokenizer, the quantization recipe and\n"
    "where the file came from. Checks the header, index and tensor shapes; 'dsq verify' also\n"
    "checks every tensor's checksum.\n"
    "\n"
    "options:\n"
    "  --tensors   also list every tensor: name, type, shape, bytes, offset\n"
    "  --json      one JSON object on stdout instead of text\n"
    "  --ctx N     context for the memory lines (default 4096 or the model's maximum)\n"
    "  --vram BYTES  also print the GPU / host placement for this much GPU memory (text\n"
    "              only; see 'dsq plan --help'); exit code 3 when the GPU-resident part\n"
    "              does not fit\n"
    "  --expert-stats F  with --vram: the most used experts first ('dsq ppl\n"
    "              --save-expert-stats')\n"
    "  -h, --help  this text\n";

/* 15.706 B, 2.451 M, 270000: readable at any model size. */
static const char *human_count(uint64_t n, char buf[32])
{
    if (n >= 1000000000ull)
        snprintf(buf, 32, "%.3f B", (double)n / 1e9);
    else if (n >= 1000000ull)
        snprintf(buf, 32, "%.3f M", (double)n / 1e6);
    else
        snprintf(buf, 32, "%llu", (unsigned long long)n);
    return buf;
}

typedef struct {
    int tensors;
    uint64_t params, bytes;
    uint32_t types; /* bit per type id (ids < 32) used in the class */
} class_total;

/* "q4", or "q4+q8" when a class mixes types (overrides). */
static const char *class_types(uint32_t bits, char buf[32])
{
    buf[0] = 0;
    for (uint32_t t = 0; t < 32; t++)
        if (bits & (1u << t))
            snprintf(buf + strlen(buf), 32 - strlen(buf), "%s%s", buf[0] ? "+" : "",
                     dsq_type_info(t)->name);
    return buf;
}

static void sum_classes(const model_file *m, class_total *by_class, class_total *all)
{
    memset(by_class, 0, sizeof(class_total) * TC_COUNT);
    memset(all, 0, sizeof *all);
    for (int i = 0; i < m->n_plan; i++) {
        class_total *c = &by_class[m->plan[i].cls];
        uint64_t n = dsq_tensor_numel(m->tensors[i]);
        c->tensors++;
        c->params += n;
        c->bytes += m->tensors[i]->size;
        c->types |= 1u << (m->tensors[i]->type & 31);
        all->tensors++;
        all->params += n;
        all->bytes += m->tensors[i]->size;
    }
}

/* Tokens (non-null), merges and added tokens of the stored tokenizer. */
static void tokenizer_counts(const json_t *tok, size_t *tokens, size_t *merges, size_t *added)
{
    const json_t *list = json_object_get(tok, "tokens");
    *tokens = 0;
    for (size_t i = 0; i < json_array_size(list); i++)
        *tokens += !json_is_null(json_array_get(list, i));
    *merges = json_array_size(json_object_get(tok, "merges"));
    *added = json_array_size(json_object_get(tok, "added_tokens"));
}

static json_t *shape_json(const dsq_tensor_info *t)
{
    json_t *a = json_array();
    for (uint32_t d = 0; d < t->ndim; d++)
        json_array_append_new(a, json_integer((json_int_t)t->shape[d]));
    return a;
}

/* Device memory `--backend cuda` plans for this file at a context of ctx tokens. */
static vram_plan vram_for(const model_file *m, int ctx)
{
    const vram_model v = placement_vram_model(&m->config, m->file.size);
    vram_plan p;
    vram_plan_make(&p, &v, ctx);
    return p;
}

static int print_json(const model_file *m, int list_tensors, int ctx)
{
    class_total by_class[TC_COUNT], all;
    sum_classes(m, by_class, &all);
    uint64_t total, active;
    tensor_plan_params(&m->config, m->plan, m->n_plan, &total, &active);
    json_t *classes = json_object();
    char types[32];
    for (int c = 0; c < TC_COUNT; c++) {
        if (!by_class[c].tensors)
            continue;
        json_object_set_new(
            classes, tensor_class_name((tensor_class)c),
            json_pack("{s:s, s:i, s:I, s:I, s:f}", "type", class_types(by_class[c].types, types),
                      "tensors", by_class[c].tensors, "params", (json_int_t)by_class[c].params,
                      "bytes", (json_int_t)by_class[c].bytes, "bits_per_weight",
                      8.0 * (double)by_class[c].bytes / (double)by_class[c].params));
    }
    size_t ntok, nmerge, nadded;
    const json_t *tok = json_object_get(m->file.meta, "tokenizer");
    tokenizer_counts(tok, &ntok, &nmerge, &nadded);
    const uint32_t minor = m->file.version_minor;
    const char *version = minor == 0 ? "1.0" : minor == 1 ? "1.1" : "1.x";
    json_t *out = json_pack(
        "{s:s, s:I, s:s, s:O, s:{s:I, s:I}, s:{s:I, s:I, s:f}, s:o, s:{s:I, s:I, s:I}, s:O, s:O}",
        "file", m->file.path, "file_size", (json_int_t)m->file.size, "format_version",
        version, "model", json_object_get(m->file.meta, "model"),
        "params", "total", (json_int_t)total, "active", (json_int_t)active, "size", "tensors",
        (json_int_t)all.tensors, "bytes", (json_int_t)all.bytes, "bits_per_weight",
        8.0 * (double)all.bytes / (double)all.params, "classes", classes, "tokenizer", "tokens",
        (json_int_t)ntok, "merges", (json_int_t)nmerge, "added_tokens", (json_int_t)nadded,
        "recipe", json_object_get(m->file.meta, "recipe"), "provenance",
        json_object_get(m->file.meta, "provenance"));
    json_object_set_new(out, "cpu_kv_cache",
                        json_pack("{s:i, s:I, s:I}", "ctx", ctx, "bf16",
                                  (json_int_t)model_cache_bytes(&m->config, ctx, KV_CACHE_BF16),
                                  "f32",
                                  (json_int_t)model_cache_bytes(&m->config, ctx, KV_CACHE_F32)));
    if (m->config.family == DSQ_FAMILY_V1) /* MHA's keys and values take q8 too */
        json_object_set_new(
            json_object_get(out, "cpu_kv_cache"), "q8",
            json_integer((json_int_t)model_cache_bytes(&m->config, ctx, KV_CACHE_Q8)));
    const vram_plan vp = vram_for(m, ctx);
    json_object_set_new(out, "cuda_memory",
                        json_pack("{s:i, s:I, s:I, s:I, s:I}", "ctx", ctx, "bytes",
                                  (json_int_t)vp.total, "weights", (json_int_t)vp.weights,
                                  "kv_cache", (json_int_t)vp.cache_bytes, "work",
                                  (json_int_t)vp.work_bytes));
    if (list_tensors) {
        json_t *list = json_array();
        for (uint32_t i = 0; i < m->file.n_tensors; i++) {
            const dsq_tensor_info *t = &m->file.tensors[i];
            json_array_append_new(
                list, json_pack("{s:s, s:s, s:o, s:I, s:I}", "name", t->name, "type",
                                dsq_type_info(t->type)->name, "shape", shape_json(t), "bytes",
                                (json_int_t)t->size, "offset", (json_int_t)t->offset));
        }
        json_object_set_new(out, "tensors", list);
    }
    json_dumpf(out, stdout, JSON_INDENT(2));
    fputc('\n', stdout);
    json_decref(out);
    return 0;
}

static void print_model(const dsq_model_config *c)
{
    int moe_layers = 0;
    for (int l = 0; l < c->n_layers; l++)
        moe_layers += model_layer_is_moe(c, l);
    printf("family      %s\n", model_family_name(c->family));
    printf("layers      %d (%d dense, %d MoE), hidden %d, vocab %d\n", c->n_layers,
           c->n_layers - moe_layers, moe_layers, c->hidden_size, c->vocab_size);
    if (c->family == DSQ_FAMILY_V1)
        printf("attention   MHA, %d heads x %d (%d kv heads), RoPE NeoX theta %g\n", c->n_heads,
               c->head_dim, c->n_kv_heads, c->rope_theta);
    else
        printf("attention   MLA, %d heads, q %s, kv_lora %d, qk %d nope + %d rope, v %d\n",
               c->n_heads, c->q_lora_rank ? "compressed" : "uncompressed", c->kv_lora_rank,
               c->qk_nope_head_dim, c->qk_rope_head_dim, c->v_head_dim);
    if (c->q_lora_rank)
        printf("            q_lora_rank %d\n", c->q_lora_rank);
    if (c->rope_yarn)
        printf("rope        interleaved, theta %g, YaRN factor %g (original %d, beta %g/%g, "
               "mscale %g/%g)\n",
               c->rope_theta, c->yarn_factor, c->yarn_original_max_position, c->yarn_beta_fast,
               c->yarn_beta_slow, c->yarn_mscale, c->yarn_mscale_all_dim);
    printf("ffn         dense %d; %d routed experts x %d, top-%d, %d shared\n",
           c->intermediate_size, c->n_routed_experts, c->moe_intermediate_size,
           c->n_experts_per_tok, c->n_shared_experts);
    if (c->topk_method == DSQ_TOPK_GROUP_LIMITED)
        printf("routing     softmax, group-limited: %d groups, best %d, scale %g%s\n", c->n_group,
               c->topk_group, c->routed_scaling_factor, c->norm_topk_prob ? ", renormalized" : "");
    else
        printf("routing     softmax, greedy top-k, scale %g%s\n", c->routed_scaling_factor,
               c->norm_topk_prob ? ", renormalized" : "");
    printf("context     %d positions, rms_norm_eps %g, BOS %d, EOS %d\n",
           c->max_position_embeddings, c->rms_norm_eps, c->bos_token_id, c->eos_token_id);
}

static void print_text(const model_file *m, int list_tensors)
{
    class_total by_class[TC_COUNT], all;
    sum_classes(m, by_class, &all);
    uint64_t total, active;
    tensor_plan_params(&m->config, m->plan, m->n_plan, &total, &active);
    printf("file        %s (%.1f MB, format %u.%u)\n", m->file.path, (double)m->file.size / 1e6,
           m->file.version_major, m->file.version_minor);
    print_model(&m->config);
    char total_text[32], active_text[32];
    printf("params      %s total, %s active per token\n", human_count(total, total_text),
           human_count(active, active_text));
    const json_t *errors = json_object_get(json_object_get(m->file.meta, "recipe"), "error");
    printf("\n%-14s %-7s %8s %15s %15s %8s %10s\n", "class", "type", "tensors", "params",
           "bytes", "bits/w", "rel. RMSE");
    for (int c = 0; c < TC_COUNT; c++) {
        if (!by_class[c].tensors)
            continue;
        const char *name = tensor_class_name((tensor_class)c);
        const json_t *e = json_object_get(json_object_get(errors, name), "relative_rmse");
        char types[32], err_text[16] = "-";
        if (json_is_number(e))
            snprintf(err_text, sizeof err_text, "%.5f", json_number_value(e));
        printf("%-14s %-7s %8d %15llu %15llu %8.3f %10s\n", name,
               class_types(by_class[c].types, types), by_class[c].tensors,
               (unsigned long long)by_class[c].params, (unsigned long long)by_class[c].bytes,
               8.0 * (double)by_class[c].bytes / (double)by_class[c].params, err_text);
    }
    printf("%-14s %-7s %8d %15llu %15llu %8.3f\n\n", "total", "", all.tensors,
           (unsigned long long)all.params, (unsigned long long)all.bytes,
           8.0 * (double)all.bytes / (double)all.params);
    size_t ntok, nmerge, nadded;
    tokenizer_counts(json_object_get(m->file.meta, "tokenizer"), &ntok, &nmerge, &nadded);
    const json_t *tmpl = json_object_get(m->file.meta, "chat_template");
    printf("tokenizer   byte-level BPE, %zu tokens, %zu merges, %zu added tokens; chat template %s\n",
           ntok, nmerge, nadded, json_is_string(tmpl) ? "present" : "absent");
    const json_t *recipe = json_object_get(m->file.meta, "recipe");
    const json_t *overrides = json_object_get(recipe, "overrides");
    printf("recipe      preset %s", json_string_value(json_object_get(recipe, "preset")));
    if (json_integer_value(json_object_get(recipe, "group_size")))
        printf(", group size %lld",
               (long long)json_integer_value(json_object_get(recipe, "group_size")));
    for (size_t i = 0; i < json_array_size(overrides); i++)
        printf(", override %s", json_string_value(json_array_get(overrides, i)));
    printf("\n");
    const json_t *prov = json_object_get(m->file.meta, "provenance");
    printf("provenance  %s %s: %s\n", json_string_value(json_object_get(prov, "tool")),
           json_string_value(json_object_get(prov, "version")),
           json_string_value(json_object_get(prov, "command")));
    const json_t *files = json_object_get(prov, "source_files");
    for (size_t i = 0; i < json_array_size(files); i++) {
        const json_t *f = json_array_get(files, i);
        printf("  source    %-40s %14lld bytes  xxh3 %s\n",
               json_string_value(json_object_get(f, "name")),
               (long long)json_integer_value(json_object_get(f, "size")),
               json_string_value(json_object_get(f, "xxh3")));
    }
    if (list_tensors) {
        printf("\n%-40s %-5s %-14s %12s %12s\n", "tensor", "type", "shape", "bytes", "offset");
        for (uint32_t i = 0; i < m->file.n_tensors; i++) {
            const dsq_tensor_info *t = &m->file.tensors[i];
            char shape[64] = "";
            for (uint32_t d = 0; d < t->ndim; d++)
                snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%s%llu",
                         d ? "x" : "", (unsigned long long)t->shape[d]);
            printf("%-40s %-5s %-14s %12llu %12llu\n", t->name, dsq_type_info(t->type)->name,
                   shape, (unsigned long long)t->size, (unsigned long long)t->offset);
        }
    }
}

int cmd_info(int argc, char **argv)
{
    static const struct option opts[] = {{"tensors", no_argument, 0, 't'},
                                         {"json", no_argument, 0, 'j'},
                                         {"ctx", required_argument, 0, 'c'},
                                         {"vram", required_argument, 0, 'v'},
                                         {"expert-stats", required_argument, 0, 'e'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int list_tensors = 0, as_json = 0, c;
    uint64_t vram = 0;
    const char *stats_path = NULL;
    long ctx = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 't')
            list_tensors = 1;
        else if (c == 'j')
            as_json = 1;
        else if (c == 'c') {
            if (!cli_parse_int("info", "--ctx", optarg, 1, 1 << 24, &ctx))
                return DSQ_EUSAGE;
        }
        else if (c == 'v') {
            if (!cli_parse_bytes("info", "--vram", optarg, &vram))
                return DSQ_EUSAGE;
        } else if (c == 'e')
            stats_path = optarg;
        else if (c == 'h') {
            fputs(help, stdout);
            return 0;
        } else
            return cli_usage_error("info", "unknown option");
    }
    if (optind != argc - 1)
        return cli_usage_error("info", "expected exactly one .dsq file");
    if (stats_path && !vram)
        return cli_usage_error("info", "--expert-stats needs --vram BYTES");
    if (vram && as_json)
        return cli_usage_error("info", "--vram prints a text plan: leave out --json");
    model_file m;
    dsq_error err = {0};
    if (model_file_open(&m, argv[optind], &err))
        return cli_report("info", &err);
    if (!ctx)
        ctx = model_default_ctx(&m.config);
    int rc = as_json ? print_json(&m, list_tensors, (int)ctx) : (print_text(&m, list_tensors), 0);
    if (!as_json) {
        const vram_plan vp = vram_for(&m, (int)ctx);
        /* GB, or MB where GB would print a small model's figures as 0.00 */
        const double f32 = (double)model_cache_bytes(&m.config, (int)ctx, KV_CACHE_F32);
        const double unit = (double)vp.total < 1e9 && f32 < 1e9 ? 1e6 : 1e9;
        const char *un = unit == 1e6 ? "MB" : "GB";
        printf("cuda memory %.2f %s at --ctx %ld: weights %.2f, KV cache %.2f, work buffers %.2f\n",
               vp.total / unit, un, ctx, vp.weights / unit, vp.cache_bytes / unit,
               vp.work_bytes / unit);
        printf("cpu KV cache at --ctx %ld: %.2f %s (bf16, the default), %.2f %s (--kv-cache f32)",
               ctx, model_cache_bytes(&m.config, (int)ctx, KV_CACHE_BF16) / unit, un, f32 / unit,
               un);
        if (m.config.family == DSQ_FAMILY_V1)
            printf(", %.2f %s (--kv-cache q8)",
                   model_cache_bytes(&m.config, (int)ctx, KV_CACHE_Q8) / unit, un);
        printf("\n");
    }
    if (vram) {
        uint64_t *bytes = malloc((size_t)m.n_plan * sizeof *bytes);
        for (int i = 0; bytes && i < m.n_plan; i++)
            bytes[i] = m.tensors[i]->size;
        rc = bytes ? cli_placement_report("info", &m.config, m.plan, bytes, m.n_plan, vram,
                                          (int)ctx, stats_path, false)
                   : cli_report("info", &(dsq_error){DSQ_ERESOURCE, "out of memory"});
        free(bytes);
    }
    model_file_close(&m);
    return rc;
}
