/* dsq convert HF_DIR -o OUT.dsq and dsq quantize IN.dsq -o OUT.dsq: the two commands that
 * write .dsq files, sharing the recipe options. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "convert.h"
#include "progress.h"
#include "requantize.h"

static const char recipe_help[] =
    "  -Q, --quant PRESET      bf16 (default for convert), q8, q4 (routed experts q4; attention,\n"
    "                          shared experts, dense FFN, embeddings and head q8), q4-q6 (as\n"
    "                          q4, but attention, shared experts, dense FFN and head q6: fewer\n"
    "                          bytes per decoded token, a little less accurate), q4-all. Norms\n"
    "                          and the router always stay f32.\n"
    "      --override GLOB=TYPE  store the tensors whose dsq name matches GLOB as TYPE (f32,\n"
    "                          f16, bf16, q8, q6, q4); repeatable, later ones win. Names look\n"
    "                          like layers.3.mlp.experts.17.up, layers.*.attn.kv_b, embed,\n"
    "                          output (see dsq info --tensors). A GLOB matching nothing is a\n"
    "                          warning. q6 (6.25 bits per weight at group 64) is meant for\n"
    "                          the output head: --quant q4-all --override output=q6.\n"
    "  -g, --group-size N      quantization group along each row (default 64; multiple of 32\n"
    "                          dividing the row length of every quantized tensor)\n"
    "  -o, --output FILE       the .dsq file to write (required; refused if it names an input\n"
    "                          or an existing file that is not a regular file)\n"
    "  -t, --threads N         worker threads (default: all cores; 1..1024)\n"
    "  -q, --quiet             no progress bar (it is shown only on a terminal anyway)\n"
    "  -h, --help              this text\n";

static const char convert_help[] =
    "usage: dsq convert HF_DIR -o OUT.dsq [--quant PRESET] [--override GLOB=TYPE]... [options]\n"
    "\n"
    "Converts a Hugging Face DeepSeek-MoE / DeepSeek-V2 checkpoint folder into one .dsq file.\n"
    "HF_DIR holds config.json, tokenizer.json, optionally tokenizer_config.json, and the weights\n"
    "as model.safetensors or shards listed in model.safetensors.index.json.\n"
    "\n"
    "Every tensor is checked against the config (names, shapes, dtypes) before anything is\n"
    "written; the output appears only when complete (written to a temporary file beside it,\n"
    "then renamed). Quantization happens while streaming, on all cores, with bounded memory;\n"
    "the recipe applied to each tensor and the quantization error per tensor class are stored\n"
    "in the file (dsq info shows them).\n"
    "\n"
    "Also refused, leaving no output: config values outside the ranges the published models\n"
    "use (the message names the key and the range), a tokenizer or chat template that the\n"
    "other commands could not load, and any NaN or infinite weight (tensor and row named).\n"
    "\n"
    "options:\n";

static const char quantize_help[] =
    "usage: dsq quantize IN.dsq -o OUT.dsq --quant PRESET [--override GLOB=TYPE]... [options]\n"
    "\n"
    "Rewrites a .dsq file under another recipe. Float tensors (bf16, f16, f32) can become any\n"
    "type; a tensor that is already quantized is copied if the recipe keeps its type, and\n"
    "refused otherwise: re-encoding quantized weights adds error to error, so convert from the\n"
    "original checkpoint instead.\n"
    "\n"
    "options:\n";

static void on_progress(void *ctx, uint64_t done, uint64_t total)
{
    progress_update(ctx, done, total);
}

typedef struct {
    const char *input, *output;
    recipe_options recipe;
    long threads;
    int quiet;
} write_options;

/* Parses options shared by convert and quantize; returns -1 to go on, else an exit code. */
static int parse(const char *cmd, const char *help, int argc, char **argv, write_options *w)
{
    static const struct option opts[] = {{"output", required_argument, 0, 'o'},
                                         {"quant", required_argument, 0, 'Q'},
                                         {"override", required_argument, 0, 'O'},
                                         {"group-size", required_argument, 0, 'g'},
                                         {"threads", required_argument, 0, 't'},
                                         {"quiet", no_argument, 0, 'q'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    long group = RECIPE_DEFAULT_GROUP;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:Q:g:t:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            w->output = optarg;
            break;
        case 'Q':
            w->recipe.preset = optarg;
            break;
        case 'O':
            if (w->recipe.n_overrides == RECIPE_MAX_OVERRIDES)
                return cli_usage_error(cmd, "at most %d --override options", RECIPE_MAX_OVERRIDES);
            w->recipe.overrides[w->recipe.n_overrides++] = optarg;
            break;
        case 'g':
            if (!cli_parse_int(cmd, "--group-size", optarg, 32, 4096, &group))
                return DSQ_EUSAGE;
            break;
        case 't':
            if (!cli_parse_int(cmd, "--threads", optarg, 1, 1024, &w->threads))
                return DSQ_EUSAGE;
            break;
        case 'q':
            w->quiet = 1;
            break;
        case 'h':
            fputs(help, stdout);
            fputs(recipe_help, stdout);
            return 0;
        default:
            return cli_usage_error(cmd, "unknown option");
        }
    }
    if (optind != argc - 1)
        return cli_usage_error(cmd, "expected exactly one input");
    if (!w->output)
        return cli_usage_error(cmd, "missing -o OUT.dsq");
    if (!w->recipe.preset) /* convert defaults to bf16; quantize has no default */
        return cli_usage_error(cmd, "missing --quant PRESET");
    w->input = argv[optind];
    w->recipe.group_size = (uint32_t)group;
    dsq_error err;
    if (recipe_check(&w->recipe, &err))
        return cli_usage_error(cmd, "%s", err.msg);
    return -1;
}

static void report(const char *cmd, const char *output, const convert_stats *st, double secs)
{
    if (st->unused_overrides)
        fprintf(stderr, "dsq %s: warning: --override matched no tensor: %s\n", cmd,
                st->unused_overrides);
    fprintf(stderr,
            "wrote %s: %d tensors, %.3f GB of data from %.3f GB read in %.2f s (%.2f GB/s)\n",
            output, st->n_tensors, (double)st->bytes_written / 1e9, (double)st->bytes_read / 1e9,
            secs, secs > 0 ? (double)st->bytes_read / 1e9 / secs : 0.0);
}

typedef int (*write_fn)(const write_options *w, const char *cmdline, progress_bar *bar,
                        convert_stats *st, dsq_error *err);

static int run_convert(const write_options *w, const char *cmdline, progress_bar *bar,
                       convert_stats *st, dsq_error *err)
{
    convert_options o = {.hf_dir = w->input, .out_path = w->output, .threads = (int)w->threads,
                         .command_line = cmdline, .recipe = w->recipe,
                         .progress = w->quiet ? NULL : on_progress, .progress_ctx = bar};
    return dsq_convert(&o, st, err);
}

static int run_requantize(const write_options *w, const char *cmdline, progress_bar *bar,
                          convert_stats *st, dsq_error *err)
{
    requantize_options o = {.in_path = w->input, .out_path = w->output,
                            .threads = (int)w->threads, .command_line = cmdline,
                            .recipe = w->recipe, .progress = w->quiet ? NULL : on_progress,
                            .progress_ctx = bar};
    return dsq_requantize(&o, st, err);
}

/* Parses, runs fn with a progress bar, reports; default_preset NULL makes --quant required. */
static int write_command(const char *cmd, const char *help, const char *label,
                         const char *default_preset, write_fn fn, int argc, char **argv)
{
    char *cmdline = cli_command_line(argc, argv); /* before getopt reorders argv */
    write_options w = {.recipe.preset = default_preset};
    int rc = parse(cmd, help, argc, argv, &w);
    if (rc >= 0) {
        free(cmdline);
        return rc;
    }
    progress_bar bar;
    progress_init(&bar, label);
    convert_stats st = {0};
    dsq_error err = {0};
    double t0 = progress_now();
    rc = fn(&w, cmdline, &bar, &st, &err);
    progress_finish(&bar);
    if (!rc)
        report(cmd, w.output, &st, progress_now() - t0);
    free(st.unused_overrides);
    free(cmdline);
    return rc ? cli_report(cmd, &err) : 0;
}

int cmd_convert(int argc, char **argv)
{
    return write_command("convert", convert_help, "converting", "bf16", run_convert, argc, argv);
}

int cmd_quantize(int argc, char **argv)
{
    return write_command("quantize", quantize_help, "quantizing", NULL, run_requantize, argc,
                         argv);
}
