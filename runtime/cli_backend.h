/* The engine options run, chat, ppl, bench and serve share: --backend, --vram and
 * --expert-stats. */
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
    "                          when its use count, halving every 256 tokens (lfu:H: every H),\n"   \
    "                          passes the least used there\n"

/* --backend NAME into o; false (with a usage message) for an unknown name. */
bool cli_parse_backend(const char *cmd, const char *text, engine_options *o);

/* --expert-cache static | lfu | lfu:H into o; false (with a usage message) otherwise. */
bool cli_parse_expert_cache(const char *cmd, const char *text, engine_options *o);

/* --vram: a byte count with an optional K, M, G or T suffix (powers of 1024). */
bool cli_parse_bytes(const char *cmd, const char *opt, const char *text, uint64_t *out);

#endif
