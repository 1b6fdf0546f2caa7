/* Parsing of the engine options commands share (cli_backend.h). */
#include "cli_backend.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "expert_cache.h"
#include "model.h"

static bool parse_backend(const char *cmd, const char *text, engine_options *o)
{
    if (strcmp(text, "cpu") != 0 && strcmp(text, "cuda") != 0) {
        cli_usage_error(cmd, "--backend must be cpu or cuda, not '%s'", text);
        return false;
    }
    o->backend = text;
    return true;
}

/* ":NUMBER" at *at in lo..hi, a plain decimal (digits, a point, an exponent), into *out;
 * *at moves past it. */
static bool colon_number(const char **at, double lo, double hi, double *out)
{
    const char *p = *at + 1;
    const size_t plain = strspn(p, "0123456789.eE+-");
    char *end;
    if (**at != ':' || !(isdigit((unsigned char)*p) || *p == '.'))
        return false;
    *out = strtod(p, &end);
    *at = end;
    return end == p + plain && *out >= lo && *out <= hi;
}

static bool parse_expert_cache(const char *cmd, const char *text, engine_options *o)
{
    if (!strcmp(text, "static")) {
        o->expert_cache = false;
        return true;
    }
    double h = EXPERT_CACHE_HALF_LIFE, m = EXPERT_CACHE_MARGIN;
    bool ok = !strncmp(text, "lfu", 3);
    const char *at = ok ? text + 3 : text;
    if (ok && *at)
        ok = colon_number(&at, 1, 1e9, &h);
    if (ok && *at)
        ok = colon_number(&at, 0, 1e9, &m);
    if (ok && !*at) {
        o->expert_cache = true;
        o->expert_half_life = h;
        o->expert_margin = m;
        return true;
    }
    cli_usage_error(cmd,
                    "--expert-cache must be static, lfu, lfu:H or lfu:H:M (a half-life of 1 to "
                    "1e9 tokens, a margin of 0 to 1e9 uses), not '%s'",
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

int cli_backend_option(const char *cmd, int c, const char *arg, engine_options *o)
{
    bool ok;
    switch (c) {
    case CLI_OPT_BACKEND:
        ok = parse_backend(cmd, arg, o);
        break;
    case CLI_OPT_VRAM:
        ok = cli_parse_bytes(cmd, "--vram", arg, &o->vram);
        break;
    case CLI_OPT_EXPERT_STATS:
        o->expert_stats = arg;
        ok = true;
        break;
    case CLI_OPT_EXPERT_CACHE:
        ok = parse_expert_cache(cmd, arg, o);
        break;
    case CLI_OPT_KV_CACHE:
        ok = !strcmp(arg, "bf16") || !strcmp(arg, "f32") || !strcmp(arg, "q8");
        if (ok)
            model_set_kv_cache(!strcmp(arg, "bf16")  ? KV_CACHE_BF16
                               : !strcmp(arg, "f32") ? KV_CACHE_F32
                                                     : KV_CACHE_Q8);
        else
            cli_usage_error(cmd, "--kv-cache must be bf16, f32 or q8, not '%s'", arg);
        break;
    default:
        return 0;
    }
    return ok ? 1 : -1;
}
