/* The engine options run, chat, ppl, bench and serve share: --backend, --vram, --expert-stats,
 * --expert-cache and --kv-cache. */
#ifndef DSQ_CLI_BACKEND_H
#define DSQ_CLI_BACKEND_H

#include <stdbool.h>

#include "engine.h"

#define CLI_BACKEND_HELP                                                                           \
    "      --backend cpu|cuda  where the model runs (default: cuda when a GPU is present, else\n"  \
    "                          cpu; cuda without a usable GPU fails with exit code 3)\n"           \
    "      --vram BYTES        device memory the cuda backend may take, e.g. 40G (default:\n"      \
    "                          the free memory); routed experts that do not fit stay in host\n"    \
    "                          memory and run on the CPU (docs/OFFLOAD.md); a model whose\n"       \
    "                          other parts do not fit fails before allocating, saying why\n"       \
    "      --expert-stats FILE with experts in host memory, keep the most used on the GPU, by\n"   \
    "                          counts from 'dsq ppl --save-expert-stats' (default: the same\n"     \
    "                          number of every layer's experts)\n"                                 \
    "      --expert-cache P    with experts in host memory: static (default) keeps the\n"          \
    "                          placement; lfu copies an expert to the GPU between decode steps\n"  \
    "                          when its use count, halving every 32 tokens, passes the least\n"    \
    "                          used there by more than 8 uses (lfu:H: every H tokens; lfu:H:M:\n"  \
    "                          by more than M)\n"                                                  \
    "      --kv-cache T        (cpu) how the KV cache is kept: bf16 (default; half the memory,\n"  \
    "                          faster at long contexts), f32 (the reference arithmetic) or,\n"     \
    "                          for DeepSeek-MoE's MHA only, q8 (int8 with a scale per 32\n"        \
    "                          values: 0.56 of bf16's bytes, a little faster at long contexts)\n"

/* getopt_long codes of the shared options, above any command's own. */
enum {
    CLI_OPT_BACKEND = 0x4000,
    CLI_OPT_VRAM,
    CLI_OPT_EXPERT_STATS,
    CLI_OPT_EXPERT_CACHE,
    CLI_OPT_KV_CACHE
};

/* The shared options' entries for a command's struct option table. */
// clang-format off
#define CLI_BACKEND_OPTIONS                                                                        \
    {"backend", required_argument, 0, CLI_OPT_BACKEND},                                            \
    {"vram", required_argument, 0, CLI_OPT_VRAM},                                                  \
    {"expert-stats", required_argument, 0, CLI_OPT_EXPERT_STATS},                                  \
    {"expert-cache", required_argument, 0, CLI_OPT_EXPERT_CACHE},                                  \
    {"kv-cache", required_argument, 0, CLI_OPT_KV_CACHE}
// clang-format on

/* getopt's code c and its argument into o (--kv-cache: model_set_kv_cache) when c is a shared
 * option: 1 taken, -1 a bad value
 * (a usage message printed for cmd), 0 not a shared option. */
int cli_backend_option(const char *cmd, int c, const char *arg, engine_options *o);

/* --vram: a byte count with an optional K, M, G or T suffix (powers of 1024). */
bool cli_parse_bytes(const char *cmd, const char *opt, const char *text, uint64_t *out);

#endif
