/* dsq plan (MODEL.dsq | --config CONFIG.json) --vram BYTES: the GPU / host placement of a model
 * larger than the GPU (runtime/placement.h); `dsq info --vram` prints the same. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_backend.h"
#include "cli_plan.h"
#include "hf_config.h"
#include "model.h"
#include "model_file.h"
#include "placement.h"

static const char help[] =
    "usage: dsq plan (MODEL.dsq | --config CONFIG.json [--preset P] [--group N]) --vram BYTES\n"
    "                [--ctx N] [--expert-stats FILE] [--layers]\n"
    "\n"
    "Prints where a model would live on a GPU with BYTES of memory: attention, dense layers,\n"
    "shared experts, norms, routers, embeddings, head, the KV cache for --ctx tokens and the\n"
    "work buffers on the GPU (the CUDA engine's plan, as 'dsq info' prints it); then as many\n"
    "routed experts as fit in the rest, hottest first by --expert-stats (a file written by\n"
    "'dsq ppl --save-expert-stats'), else the same number in every layer; the other routed\n"
    "experts stay in host memory. Fails with exit code 3, saying how much is needed, when the\n"
    "GPU-resident part alone does not fit. A Hugging Face config.json gives the plan without\n"
    "the weights: tensor sizes as 'dsq convert --quant P' would write them.\n"
    "\n"
    "options:\n"
    "      --vram BYTES         GPU memory for the model, e.g. 40G (K, M, G, T: powers of 1024)\n"
    "  -c, --ctx N              tokens of KV cache (default 4096 or the model's maximum)\n"
    "      --config FILE        plan a Hugging Face config.json instead of a .dsq file\n"
    "      --preset P           with --config: the conversion preset (default q4)\n"
    "      --group N            with --config: the quantization group size (default 64)\n"
    "      --expert-stats FILE  put the most used experts on the GPU first\n"
    "      --layers             also print the routed experts on the GPU per MoE layer\n"
    "  -h, --help               this text\n";

int cli_placement_report(const char *cmd, const dsq_model_config *c, const planned_tensor *plan,
                         const uint64_t *bytes, int n, uint64_t vram, int ctx,
                         const char *stats_path, bool per_layer)
{
    dsq_error err = {0};
    expert_stats stats = {0};
    int rc = DSQ_OK;
    if (stats_path) {
        rc = expert_stats_load(&stats, stats_path, &err);
        if (!rc)
            rc = expert_stats_check(&stats, c, stats_path, &err);
        if (rc) {
            expert_stats_free(&stats);
            return cli_report(cmd, &err);
        }
    }
    placement p;
    rc = placement_make(&p, c, plan, bytes, n, vram, ctx, stats_path ? &stats : NULL, &err);
    expert_stats_free(&stats);
    if (rc)
        return cli_report(cmd, &err);
    printf("placement   --vram %.2f GB (%llu bytes), --ctx %d\n", vram / 1e9,
           (unsigned long long)vram, ctx);
    printf("  on the GPU %27s\n", "bytes");
    for (int k = 0; k < TC_COUNT; k++)
        if (k != TC_ROUTED_EXPERT && p.class_bytes[k])
            printf("    %-24s %15llu\n", tensor_class_name((tensor_class)k),
                   (unsigned long long)p.class_bytes[k]);
    printf("    %-24s %15llu  (%llu per token)\n", "kv_cache", (unsigned long long)p.kv_cache,
           (unsigned long long)(p.kv_cache / (uint64_t)ctx));
    printf("    %-24s %15llu\n", "work_buffers", (unsigned long long)p.work);
    printf("    %-24s %15llu  (%.2f GB)\n", "resident_total", (unsigned long long)p.resident,
           p.resident / 1e9);
    printf("    %-24s %15llu  %d of %d", "routed_expert", (unsigned long long)p.experts_gpu_bytes,
           p.experts_gpu, p.experts_total);
    if (p.by_stats)
        printf(", hottest first: %.1f%% of the profile's routed uses\n",
               100.0 * p.routed_share_gpu);
    else
        printf(", spread evenly over the MoE layers (no statistics)\n");
    printf("    %-24s %15llu\n", "unused",
           (unsigned long long)(vram - p.resident - p.experts_gpu_bytes));
    printf("  in host memory\n");
    printf("    %-24s %15llu  %d of %d (%.2f GB)\n", "routed_expert",
           (unsigned long long)p.experts_host_bytes, p.experts_total - p.experts_gpu,
           p.experts_total, p.experts_host_bytes / 1e9);
    if (per_layer)
        for (int m = 0; m < p.n_moe; m++)
            printf("    layer %-4d %4d of %d routed experts on the GPU\n", p.moe_layer[m],
                   p.gpu_per_layer[m], p.n_experts);
    placement_free(&p);
    return 0;
}

enum { OPT_VRAM = 256, OPT_CONFIG, OPT_PRESET, OPT_GROUP, OPT_STATS, OPT_LAYERS };

int cmd_plan(int argc, char **argv)
{
    static const struct option opts[] = {{"vram", required_argument, 0, OPT_VRAM},
                                         {"ctx", required_argument, 0, 'c'},
                                         {"config", required_argument, 0, OPT_CONFIG},
                                         {"preset", required_argument, 0, OPT_PRESET},
                                         {"group", required_argument, 0, OPT_GROUP},
                                         {"expert-stats", required_argument, 0, OPT_STATS},
                                         {"layers", no_argument, 0, OPT_LAYERS},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *config_path = NULL, *stats_path = NULL;
    recipe_options recipe = {.preset = "q4", .group_size = RECIPE_DEFAULT_GROUP};
    uint64_t vram = 0;
    long ctx = 0, group = 0;
    bool per_layer = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        if (c == OPT_VRAM) {
            if (!cli_parse_bytes("plan", "--vram", optarg, &vram))
                return DSQ_EUSAGE;
        } else if (c == 'c') {
            if (!cli_parse_int("plan", "--ctx", optarg, 1, 1 << 24, &ctx))
                return DSQ_EUSAGE;
        } else if (c == OPT_CONFIG)
            config_path = optarg;
        else if (c == OPT_PRESET)
            recipe.preset = optarg;
        else if (c == OPT_GROUP) {
            if (!cli_parse_int("plan", "--group", optarg, 1, 1 << 20, &group))
                return DSQ_EUSAGE;
            recipe.group_size = (uint32_t)group;
        } else if (c == OPT_STATS)
            stats_path = optarg;
        else if (c == OPT_LAYERS)
            per_layer = true;
        else if (c == 'h') {
            fputs(help, stdout);
            return 0;
        } else
            return cli_usage_error("plan", "unknown option");
    }
    if (!vram)
        return cli_usage_error("plan", "missing --vram BYTES");
    if (!!config_path == (optind < argc) || argc - optind > 1)
        return cli_usage_error("plan", "expected one .dsq file or --config CONFIG.json");
    dsq_error err = {0};
    int rc;
    if (config_path) {
        dsq_model_config cfg;
        char dtype[32];
        planned_tensor *plan = NULL;
        uint64_t *bytes = NULL;
        int n = 0;
        if ((rc = recipe_check(&recipe, &err)))
            return cli_usage_error("plan", "%s", err.msg);
        if ((rc = hf_config_load(&cfg, dtype, sizeof dtype, config_path, &err)) ||
            (rc = placement_bytes_from_config(&cfg, &recipe, &plan, &bytes, &n, &err)))
            return cli_report("plan", &err);
        if (!ctx)
            ctx = model_default_ctx(&cfg);
        printf("model       %s (%s preset, group %u)\n", config_path, recipe.preset,
               recipe.group_size);
        rc = cli_placement_report("plan", &cfg, plan, bytes, n, vram, (int)ctx, stats_path,
                                  per_layer);
        free(plan);
        free(bytes);
        return rc;
    }
    model_file m;
    if ((rc = model_file_open(&m, argv[optind], &err)))
        return cli_report("plan", &err);
    uint64_t *bytes = malloc((size_t)m.n_plan * sizeof *bytes);
    if (!bytes) {
        model_file_close(&m);
        return cli_report("plan", &(dsq_error){DSQ_ERESOURCE, "out of memory"});
    }
    for (int i = 0; i < m.n_plan; i++)
        bytes[i] = m.tensors[i]->size;
    if (!ctx)
        ctx = model_default_ctx(&m.config);
    printf("model       %s\n", argv[optind]);
    rc = cli_placement_report("plan", &m.config, m.plan, bytes, m.n_plan, vram, (int)ctx,
                              stats_path, per_layer);
    free(bytes);
    model_file_close(&m);
    return rc;
}
