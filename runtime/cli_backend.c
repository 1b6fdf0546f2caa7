/* Parsing of --backend and --vram. */
#include "cli_backend.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

bool cli_parse_backend(const char *cmd, const char *text, engine_options *o)
{
    if (strcmp(text, "cpu") != 0 && strcmp(text, "cuda") != 0) {
        cli_usage_error(cmd, "--backend must be cpu or cuda, not '%s'", text);
        return false;
    }
    o->backend = text;
    return true;
}

bool cli_parse_expert_cache(const char *cmd, const char *text, engine_options *o)
{
    char *end = NULL;
    double h = 0;
    if (!strcmp(text, "static")) {
        o->expert_cache = false;
        return true;
    }
    if (!strcmp(text, "lfu") ||
        (!strncmp(text, "lfu:", 4) && (h = strtod(text + 4, &end)) >= 1 && h <= 1e9 && !*end)) {
        o->expert_cache = true;
        o->expert_half_life = h;
        return true;
    }
    cli_usage_error(cmd,
                    "--expert-cache must be static, lfu or lfu:H (a half-life of 1 to 1e9 "
                    "tokens), not '%s'",
                    text);
    return false;
}

bool cli_parse_bytes(const char *cmd, const char *opt, const char *text, uint64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    double unit = 1;
    if (*end && !end[1]) {
        const char *units = "KMGT";
        const char *u = strchr(units, *end & ~0x20);
        if (u) {
            for (const char *p = units; p <= u; p++)
                unit *= 1024;
            end++;
        }
    }
    if (errno || end == text || *end || !(v > 0) || v * unit > 1e18) {
        cli_usage_error(cmd, "%s needs a positive byte count such as 40G or 512M, not '%s'", opt,
                        text);
        return false;
    }
    *out = (uint64_t)(v * unit);
    return true;
}
