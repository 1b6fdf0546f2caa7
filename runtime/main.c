/* dsq: one binary, subcommands. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "qpack.h"
#include "version.h"

static const char usage[] =
    "usage: dsq <command> [options]\n"
    "\n"
    "Converts DeepSeek mixture-of-experts checkpoints (DeepSeek-MoE, DeepSeek-V2, V2-Lite) from\n"
    "Hugging Face safetensors into one self-describing .dsq file, inspects it, and runs it.\n"
    "\n"
    "commands:\n"
    "  convert HF_DIR -o OUT.dsq   convert a checkpoint folder (config.json, tokenizer.json,\n"
    "                              *.safetensors with or without an index); --quant q8|q4|...\n"
    "  quantize IN.dsq -o OUT.dsq  re-encode a .dsq under another recipe (--quant PRESET)\n"
    "  info    FILE.dsq            model config, parameter counts, sizes, tokenizer, provenance\n"
    "  verify  FILE.dsq            check every checksum and bound; names the first bad tensor\n"
    "  run     FILE.dsq -p TEXT    continue TEXT (greedy or sampled), streaming to stdout\n"
    "  chat    FILE.dsq            chat in the model's template; one user turn per stdin line\n"
    "  ppl     FILE.dsq --text F   perplexity over a text file; KL-divergence against a base\n"
    "  bench   FILE.dsq            prefill and decode speed next to a memory-read baseline\n"
    "  serve   FILE.dsq            OpenAI-compatible HTTP server (chat, completions, streaming)\n"
    "  plan    FILE.dsq --vram B   GPU / host placement of a model larger than the GPU\n"
    "  experts STATS.json          expert routing statistics; expert cache replays\n"
    "\n"
    "'dsq <command> --help' describes a command's options.\n"
    "exit codes: 0 ok, 1 usage error, 2 bad input file, 3 out of memory or disk\n";

/* OpenMP threads that reach a barrier first spin (libgomp: 300,000 iterations) before they
 * sleep. On a busy machine the thread they wait for is often descheduled and the spinning takes
 * the core it needs: on a 2-core VM at load average 8, ppl on the tiny model ran 7x slower with
 * 2 threads than with 1, and 1.5x faster than 1 thread once the spin was short. libgomp reads
 * its settings only when it loads, so unless the user chose a wait policy, dsq runs itself
 * again with a short spin. */
#define DSQ_GOMP_SPINCOUNT "1000"

static void prefer_short_spin(char **argv)
{
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT"))
        return;
    if (setenv("GOMP_SPINCOUNT", DSQ_GOMP_SPINCOUNT, 1) == 0)
        execv("/proc/self/exe", argv); /* returns only on failure: keep libgomp's default */
}

int main(int argc, char **argv)
{
    prefer_short_spin(argv);
    /* Run on exactly the threads asked for (--threads, else OMP_NUM_THREADS, else every core):
     * a dynamic team shrinks to one thread whenever the load average is above zero. */
    omp_set_dynamic(0);
    const char *kernels = getenv("DSQ_INT8_KERNELS"); /* benchmarks: README, docs/BENCH.md */
    if (kernels && *kernels && !dsq_int8_kernels_select(kernels)) {
        fprintf(stderr, "dsq: DSQ_INT8_KERNELS=%s: not a kernel set this CPU runs (avx512vnni, "
                        "avxvnni, avx2, each also with -planar, or scalar)\n", kernels);
        return 1;
    }
    if (argc < 2) {
        fputs(usage, stderr);
        return 1;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        fputs(usage, stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        printf("dsq %s\n", DSQ_TOOL_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "convert"))
        return cmd_convert(argc - 1, argv + 1);
    if (!strcmp(cmd, "quantize"))
        return cmd_quantize(argc - 1, argv + 1);
    if (!strcmp(cmd, "info"))
        return cmd_info(argc - 1, argv + 1);
    if (!strcmp(cmd, "verify"))
        return cmd_verify(argc - 1, argv + 1);
    if (!strcmp(cmd, "run"))
        return cmd_run(argc - 1, argv + 1);
    if (!strcmp(cmd, "chat"))
        return cmd_chat(argc - 1, argv + 1);
    if (!strcmp(cmd, "plan"))
        return cmd_plan(argc - 1, argv + 1);
    if (!strcmp(cmd, "experts"))
        return cmd_experts(argc - 1, argv + 1);
    if (!strcmp(cmd, "ppl"))
        return cmd_ppl(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench"))
        return cmd_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "serve"))
        return cmd_serve(argc - 1, argv + 1);
    fprintf(stderr, "dsq: unknown command '%s'\n\n%s", cmd, usage);
    return 1;
}
