/* dsq: one binary, subcommands. */
#include <malloc.h>
#include <omp.h>
#include <stdbool.h>
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

/* OpenMP threads that reach a barrier spin (libgomp: 300,000 iterations) before they sleep,
 * and waking a sleeping thread is slow in a virtual machine: on the 2-core VM of docs/BENCH.md
 * a parallel region after a 10 us serial gap took 170 us with a spin of 1,000 and 6 us with
 * 100,000, and the tiny model's decode after 512 tokens ran at 320 tok/s against 2,200-3,500.
 * But on a busy machine the thread they wait for is often descheduled and the spinning takes
 * the core it needs: at load average 8, ppl on the tiny model ran 7x slower with 2 threads
 * than with 1 under the long spin, and 1.5x faster than 1 thread under the short one. libgomp
 * reads its settings only when it loads, so unless the user chose a wait policy, dsq looks at
 * how many other tasks are running and runs itself again with the spin that fits. */
#define DSQ_GOMP_SPIN_SHORT "1000"
#define DSQ_GOMP_SPIN_LONG "100000"

/* Tasks running or ready to run on the whole machine now (/proc/stat, or the file named by
 * DSQ_PROC_STAT, which the tests set), or -1. */
static int procs_running(void)
{
    const char *path = getenv("DSQ_PROC_STAT");
    FILE *f = fopen(path ? path : "/proc/stat", "r");
    if (!f)
        return -1;
    char line[256];
    int n = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "procs_running %d", &n) == 1)
            break;
    fclose(f);
    return n;
}

/* Whether other work holds cores our threads need: the fewest tasks seen running in ten
 * looks 3 ms apart, less this one, plus our threads, exceed the cores. The fewest, so that a
 * passing task (a pipe's reader starting up beside us) does not count; unknown counts as
 * busy. */
static bool machine_is_busy(void)
{
    const long cores = sysconf(_SC_NPROCESSORS_ONLN);
    const char *env = getenv("OMP_NUM_THREADS");
    const long threads = env && atol(env) > 0 ? atol(env) : cores;
    int fewest = -1;
    for (int i = 0; i < 10 && fewest != 1; i++) {
        if (i)
            usleep(3000);
        const int n = procs_running();
        if (n < 1)
            return true;
        fewest = fewest < 0 || n < fewest ? n : fewest;
    }
    return cores < 1 || fewest - 1 + threads > cores;
}

/* The commands that run a model, where barriers come every few microseconds. */
static bool runs_model(const char *cmd)
{
    static const char *const cmds[] = {"run", "chat", "ppl", "bench", "serve"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(cmd, cmds[i]))
            return true;
    return false;
}

static void choose_barrier_spin(int argc, char **argv)
{
    if (argc < 2 || !runs_model(argv[1]) || getenv("OMP_WAIT_POLICY") ||
        getenv("GOMP_SPINCOUNT"))
        return;
    const char *spin = machine_is_busy() ? DSQ_GOMP_SPIN_SHORT : DSQ_GOMP_SPIN_LONG;
    if (setenv("GOMP_SPINCOUNT", spin, 1) == 0)
        execv("/proc/self/exe", argv); /* returns only on failure: keep libgomp's default */
}

int main(int argc, char **argv)
{
    choose_barrier_spin(argc, argv);
    /* Run on exactly the threads asked for (--threads, else OMP_NUM_THREADS, else every core):
     * a dynamic team shrinks to one thread whenever the load average is above zero. */
    omp_set_dynamic(0);
    /* No fastbins: a decode step's small frees (routing lists, job plans, libgomp's teams)
     * otherwise fill them, and the step's next large allocation sweeps them all back
     * (malloc_consolidate, 4% of the tiny model's decode samples at 600 cached tokens). */
    mallopt(M_MXFAST, 0);
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
