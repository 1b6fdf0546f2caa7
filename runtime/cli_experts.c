/* dsq experts STATS.json: what `dsq ppl --save-expert-stats` measured (per-layer routing entropy
 * and the share of the most used experts), and replays of its routing trace against the expert
 * cache policies (runtime/expert_cache.h). */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "expert_cache.h"
#include "expert_stats.h"

static const char help[] =
    "usage: dsq experts STATS.json [--simulate SLOTS[,SLOTS...]] [--profile F] [--half-life N]\n"
    "                         [--margin M]\n"
    "\n"
    "Summarizes expert statistics written by 'dsq ppl --save-expert-stats': per MoE layer the\n"
    "tokens routed, the entropy of the routing distribution in bits (log2 of the expert count\n"
    "when uniform), and the share of routed uses taken by the k most used experts (k: experts\n"
    "per token) and by the most used quarter.\n"
    "\n"
    "--simulate replays the routing trace (saved with --expert-trace) against a cache of SLOTS\n"
    "expert slots shared by all MoE layers (a count, or a percentage of all routed experts such\n"
    "as 25%) under three policies, and prints the hit rate (uses served from the cache) and\n"
    "loads per token (experts copied in): static (the most used experts of the profile),\n"
    "LRU, and LFU with decayed counts (a miss loaded only when its count passes the coldest\n"
    "resident's by more than the margin). The first fraction F of the traced tokens (default 0.5)\n"
    "is the profile: it picks the static set and warms LRU and LFU; only the rest is counted.\n"
    "\n"
    "options:\n"
    "      --simulate LIST    cache sizes to replay\n"
    "      --profile F        fraction of the trace used as profile, in (0, 1) (default 0.5)\n"
    "      --half-life N      LFU: tokens for a use count to halve (default 32)\n"
    "      --margin M         LFU: uses by which a miss must pass the coldest resident to be\n"
    "                         loaded (default 8; 0 loads whenever it passes at all)\n"
    "  -h, --help             this text\n";

static void print_summary(const expert_stats *s, const char *path)
{
    const json_t *meta = s->meta, *model = json_object_get(meta, "model");
    printf("expert statistics %s\n", path);
    printf("model       %s (%lld bytes), %d layers, %d routed experts, top-%d\n",
           json_string_value(json_object_get(meta, "file")) ?: "?",
           (long long)json_integer_value(json_object_get(meta, "file_size")), s->n_layers,
           s->n_experts, s->k);
    if (json_is_string(json_object_get(model, "family")))
        printf("family      %s\n", json_string_value(json_object_get(model, "family")));
    printf("text        %s, --ctx %lld, %llu tokens routed per MoE layer%s\n",
           json_string_value(json_object_get(meta, "text")) ?: "?",
           (long long)json_integer_value(json_object_get(meta, "ctx")),
           (unsigned long long)(s->n_moe ? s->tokens[0] : 0),
           s->keep_trace ? ", with a trace" : "");
    const int quarter = s->n_experts / 4 > 0 ? s->n_experts / 4 : 1;
    printf("\n%-6s %10s %9s %9s %12s %12s\n", "layer", "tokens", "entropy", "max", "top-k share",
           "top-25% share");
    for (int m = 0; m < s->n_moe; m++)
        printf("%-6d %10llu %9.3f %9.3f %11.1f%% %11.1f%%\n", s->moe_layer[m],
               (unsigned long long)s->tokens[m], expert_stats_entropy(s, m), log2(s->n_experts),
               100.0 * expert_stats_top_share(s, m, s->k),
               100.0 * expert_stats_top_share(s, m, quarter));
}

/* "12" or "25%" of n_keys, into slots; false on a bad item. */
static bool parse_slots(const char *item, int n_keys, int *slots)
{
    char *end;
    const double v = strtod(item, &end);
    if (end == item || v < 0)
        return false;
    if (*end == '%' && end[1] == 0 && v <= 100) {
        *slots = (int)lround(v / 100.0 * n_keys);
        return true;
    }
    if (*end || v != floor(v) || v > n_keys)
        return false;
    *slots = (int)v;
    return true;
}

static int simulate(const expert_stats *s, const char *list, double profile, double half_life,
                    double margin)
{
    const int n_keys = s->n_moe * s->n_experts;
    const size_t profile_tokens = (size_t)(profile * (double)s->trace_tokens);
    printf("\ncache replay: %zu traced tokens, profile the first %zu, counted %zu; %d routed "
           "experts in all, %d uses per token\n",
           s->trace_tokens, profile_tokens, s->trace_tokens - profile_tokens, n_keys,
           s->n_moe * s->k);
    printf("%-8s %7s  %-10s %9s %16s\n", "slots", "share", "policy", "hit rate", "loads per token");
    char *copy = strdup(list), *save = NULL;
    if (!copy)
        return cli_report("experts", &(dsq_error){DSQ_ERESOURCE, "out of memory"});
    int rc = 0;
    for (char *item = strtok_r(copy, ",", &save); !rc && item; item = strtok_r(NULL, ",", &save)) {
        int slots;
        if (!parse_slots(item, n_keys, &slots)) {
            rc = cli_usage_error("experts",
                                 "--simulate: '%s' is not a slot count in 0..%d or a "
                                 "percentage",
                                 item, n_keys);
            break;
        }
        for (int p = EXPERT_CACHE_STATIC; !rc && p <= EXPERT_CACHE_LFU; p++) {
            expert_cache_result r;
            dsq_error err = {0};
            if (expert_cache_replay(s, profile_tokens, (expert_cache_policy)p, slots, half_life,
                                    margin, &r, &err)) {
                rc = cli_report("experts", &err);
                break;
            }
            printf("%-8d %6.1f%%  %-10s %8.2f%% %16.3f\n", slots, 100.0 * slots / n_keys,
                   expert_cache_policy_name((expert_cache_policy)p),
                   100.0 * (double)r.hits / (double)r.lookups, (double)r.loads / (double)r.tokens);
        }
    }
    free(copy);
    return rc;
}

enum { OPT_SIMULATE = 256, OPT_PROFILE, OPT_HALF_LIFE, OPT_MARGIN };

int cmd_experts(int argc, char **argv)
{
    static const struct option opts[] = {{"simulate", required_argument, 0, OPT_SIMULATE},
                                         {"profile", required_argument, 0, OPT_PROFILE},
                                         {"half-life", required_argument, 0, OPT_HALF_LIFE},
                                         {"margin", required_argument, 0, OPT_MARGIN},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *list = NULL;
    double profile = 0.5, half_life = EXPERT_CACHE_HALF_LIFE, margin = EXPERT_CACHE_MARGIN;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        char *end = NULL;
        if (c == OPT_SIMULATE)
            list = optarg;
        else if (c == OPT_PROFILE) {
            profile = strtod(optarg, &end);
            if (end == optarg || *end || !(profile > 0 && profile < 1))
                return cli_usage_error("experts", "--profile must be a fraction in (0, 1)");
        } else if (c == OPT_HALF_LIFE) {
            half_life = strtod(optarg, &end);
            if (end == optarg || *end || !(half_life >= 1 && half_life <= 1e9))
                return cli_usage_error("experts", "--half-life must be a token count >= 1");
        } else if (c == OPT_MARGIN) {
            margin = strtod(optarg, &end);
            if (end == optarg || *end || !(margin >= 0 && margin <= 1e9))
                return cli_usage_error("experts", "--margin must be a use count in 0..1e9");
        } else if (c == 'h') {
            fputs(help, stdout);
            return 0;
        } else
            return cli_usage_error("experts", "unknown option");
    }
    if (optind != argc - 1)
        return cli_usage_error("experts", "expected exactly one statistics file");
    expert_stats s;
    dsq_error err = {0};
    if (expert_stats_load(&s, argv[optind], &err))
        return cli_report("experts", &err);
    print_summary(&s, argv[optind]);
    int rc = 0;
    if (list && !s.keep_trace) {
        err.code = DSQ_EINPUT;
        snprintf(err.msg, sizeof err.msg,
                 "%s: no routing trace to replay (save it with 'dsq ppl --save-expert-stats "
                 "FILE --expert-trace')",
                 argv[optind]);
        rc = cli_report("experts", &err);
    } else if (list)
        rc = simulate(&s, list, profile, half_life, margin);
    expert_stats_free(&s);
    return rc;
}
