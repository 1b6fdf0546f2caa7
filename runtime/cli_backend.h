/* The engine options run, chat, ppl and bench share: --backend and --vram. */
#ifndef DSQ_CLI_BACKEND_H
#define DSQ_CLI_BACKEND_H

#include <stdbool.h>

#include "engine.h"

#define CLI_BACKEND_HELP                                                                           \
    "      --backend cpu|cuda  where the model runs (default: cuda when a GPU is present, else\n"  \
    "                          cpu; cuda without a usable GPU fails with exit code 3)\n"           \
    "      --vram BYTES        device memory the cuda backend may take, e.g. 40G (default:\n"      \
    "                          the free memory); a model that does not fit fails before\n"         \
    "                          allocating and says what would\n"

/* --backend NAME into o; false (with a usage message) for an unknown name. */
bool cli_parse_backend(const char *cmd, const char *text, engine_options *o);

/* --vram: a byte count with an optional K, M, G or T suffix (powers of 1024). */
bool cli_parse_bytes(const char *cmd, const char *opt, const char *text, uint64_t *out);

#endif
