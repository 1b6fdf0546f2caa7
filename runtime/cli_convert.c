/* dsq convert HF_DIR -o OUT.dsq */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "convert.h"
#include "progress.h"

static const char help[] =
    "usage: dsq convert HF_DIR -o OUT.dsq [--threads N]\n"
    "\n"
    "Converts a Hugging Face DeepSeek-MoE / DeepSeek-V2 checkpoint folder into one .dsq file.\n"
    "HF_DIR holds config.json, tokenizer.json, optionally tokenizer_config.json, and the weights\n"
    "as model.safetensors or shards listed in model.safetensors.index.json.\n"
    "\n"
    "Every tensor is checked against the config (names, shapes, dtypes) before anything is\n"
    "written; the output appears only when complete (written to a temporary file beside it,\n"
    "then renamed). Weights are stored as bf16, norms and router as f32.\n"
    "\n"
    "options:\n"
    "  -o, --output FILE   the .dsq file to write (required)\n"
    "  -t, --threads N     worker threads (default: all cores; 1..1024)\n"
    "  -q, --quiet         no progress bar (it is shown only on a terminal anyway)\n"
    "  -h, --help          this text\n";

static void on_progress(void *ctx, uint64_t done, uint64_t total)
{
    progress_update(ctx, done, total);
}

int cmd_convert(int argc, char **argv)
{
    static const struct option opts[] = {{"output", required_argument, 0, 'o'},
                                         {"threads", required_argument, 0, 't'},
                                         {"quiet", no_argument, 0, 'q'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    convert_options o = {0};
    char *cmdline = cli_command_line(argc, argv); /* before getopt reorders argv */
    long threads = 0;
    int quiet = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:t:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            o.out_path = optarg;
            break;
        case 't':
            if (!cli_parse_int("convert", "--threads", optarg, 1, 1024, &threads)) {
                free(cmdline);
                return DSQ_EUSAGE;
            }
            break;
        case 'q':
            quiet = 1;
            break;
        case 'h':
            free(cmdline);
            fputs(help, stdout);
            return 0;
        default:
            free(cmdline);
            return cli_usage_error("convert", "unknown option");
        }
    }
    if (optind != argc - 1 || !o.out_path) {
        free(cmdline);
        return cli_usage_error("convert", optind != argc - 1
                                              ? "expected exactly one checkpoint folder"
                                              : "missing -o OUT.dsq");
    }
    o.hf_dir = argv[optind];
    o.threads = (int)threads;
    o.command_line = cmdline;
    progress_bar bar;
    progress_init(&bar, "converting");
    if (!quiet) {
        o.progress = on_progress;
        o.progress_ctx = &bar;
    }
    convert_stats stats;
    dsq_error err = {0};
    double t0 = progress_now();
    int rc = dsq_convert(&o, &stats, &err);
    progress_finish(&bar);
    free(cmdline);
    if (rc)
        return cli_report("convert", &err);
    double secs = progress_now() - t0;
    fprintf(stderr, "wrote %s: %d tensors, %.3f GB of data from %.3f GB read in %.2f s (%.2f GB/s)\n",
            o.out_path, stats.n_tensors, (double)stats.bytes_written / 1e9,
            (double)stats.bytes_read / 1e9, secs,
            secs > 0 ? (double)stats.bytes_read / 1e9 / secs : 0.0);
    return 0;
}
