/* dsq bench: prefill and decode speed on the CPU backend, next to a memory-read baseline
 * measured in the same run (decode streams the active weights once per token). */
#include <getopt.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "backend_cpu.h"
#include "dot.h"
#include "qdot.h"
#include "model.h"
#include "progress.h"

static const char help[] =
    "usage: dsq bench MODEL.dsq [--prompt N] [--gen N] [--depth D] [--threads N] [options]\n"
    "\n"
    "Times a prefill of N prompt tokens from an empty cache, then N decode steps that start\n"
    "with D tokens in the cache (token ids drawn from a fixed seed, so runs compare), and, as a\n"
    "baseline in the same run, a read of every weight byte with the same threads. Prints\n"
    "tokens/s, the weight bytes one decode step reads and the bandwidth that makes.\n"
    "\n"
    "options:\n"
    "  --prompt N       prompt tokens (default 128)\n"
    "  --gen N          decode steps (default 32)\n"
    "  --depth D        tokens in the cache when decode starts (default: the prompt's N; with\n"
    "                   another D the cache is cleared and D tokens are run untimed first)\n"
    "  -t, --threads N  threads (default: OMP_NUM_THREADS, else all cores)\n"
    "  --activations A  int8 (default) or f32: how q8/q4 matmuls take their input\n"
    "  --json           one JSON object on stdout\n"
    "  -h, --help       this text\n";

/* Bytes of weights one decode token reads: everything but the unused routed experts and all
 * of the embedding table but one row. */
static double bytes_per_token(const model *m)
{
    const dsq_model_config *c = m->cfg;
    double total = 0;
    for (int i = 0; i < m->file.n_plan; i++) {
        double b = (double)m->file.tensors[i]->size;
        if (m->file.plan[i].cls == TC_ROUTED_EXPERT)
            b *= (double)c->n_experts_per_tok / c->n_routed_experts;
        else if (m->file.plan[i].cls == TC_EMBEDDING)
            b /= c->vocab_size;
        total += b;
    }
    return total;
}

/* Reads every tensor byte (a sum, so the reads cannot be skipped): once untimed, so the
 * mapping is paged in as it is for decode, then repeatedly until a quarter second has passed
 * so small models time reliably; returns GB/s. */
static double read_bandwidth(const model *m)
{
    volatile uint64_t sink = 0;
    double bytes = 0, t0 = progress_now();
    for (int pass = 0; pass < 2 || progress_now() - t0 < 0.25; pass++) {
        if (pass == 1) {
            bytes = 0;
            t0 = progress_now();
        }
        for (uint32_t i = 0; i < m->file.file.n_tensors; i++) {
            const dsq_tensor_info *t = &m->file.file.tensors[i];
            const uint64_t *p = dsq_file_data(&m->file.file, t);
            uint64_t n = t->size / 8, acc = 0;
#pragma omp parallel for reduction(+ : acc) if (n > (1u << 16))
            for (uint64_t k = 0; k < n; k++)
                acc += p[k];
            sink += acc;
            bytes += (double)t->size;
        }
    }
    (void)sink;
    return bytes / (progress_now() - t0) / 1e9;
}

int cmd_bench(int argc, char **argv)
{
    static const struct option opts[] = {{"prompt", required_argument, 0, 'p'},
                                         {"gen", required_argument, 0, 'g'},
                                         {"depth", required_argument, 0, 'd'},
                                         {"threads", required_argument, 0, 't'},
                                         {"activations", required_argument, 0, 'a'},
                                         {"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    long n_prompt = 128, n_gen = 32, depth = -1;
    int as_json = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "t:h", opts, NULL)) != -1) {
        if (c == 'p' && !cli_parse_int("bench", "--prompt", optarg, 1, 1 << 20, &n_prompt))
            return DSQ_EUSAGE;
        if (c == 'g' && !cli_parse_int("bench", "--gen", optarg, 1, 1 << 20, &n_gen))
            return DSQ_EUSAGE;
        if (c == 'd' && !cli_parse_int("bench", "--depth", optarg, 0, 1 << 20, &depth))
            return DSQ_EUSAGE;
        if (c == 't' && !cli_set_threads("bench", optarg))
            return DSQ_EUSAGE;
        if (c == 'a' && !cli_set_activations("bench", optarg))
            return DSQ_EUSAGE;
        if (c == 'j')
            as_json = 1;
        if (c == 'h') {
            fputs(help, stdout);
            return 0;
        }
        if (c == '?')
            return cli_usage_error("bench", "unknown option");
    }
    if (optind != argc - 1)
        return cli_usage_error("bench", "expected exactly one .dsq file");
    if (depth < 0)
        depth = n_prompt;
    model m;
    dsq_error err = {0};
    if (model_open(&m, argv[optind], (int)((depth > n_prompt ? depth : n_prompt) + n_gen), &err))
        return cli_report("bench", &err);
    const int vocab = m.cfg->vocab_size;
    const long n_tokens = (depth > n_prompt ? depth : n_prompt) + n_gen;
    int *tokens = malloc((size_t)n_tokens * sizeof(int));
    float *logits = malloc((size_t)vocab * sizeof(float));
    if (!tokens || !logits) {
        free(tokens);
        free(logits);
        model_close(&m);
        return cli_report("bench", &(dsq_error){DSQ_ERESOURCE, "out of memory"});
    }
    uint64_t rng = 12345;
    for (long i = 0; i < n_tokens; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        tokens[i] = (int)((rng >> 33) % (uint64_t)vocab);
    }
    double baseline = read_bandwidth(&m); /* also brings the file into the page cache */
    double t0 = progress_now();
    int rc = model_forward(&m, tokens, (int)n_prompt, logits, false, &err);
    double t1 = progress_now();
    if (!rc && depth != n_prompt) { /* refill the cache to the asked depth, untimed */
        model_reset(&m);
        if (depth)
            rc = model_forward(&m, tokens, (int)depth, logits, false, &err);
        t1 = progress_now();
    }
    for (long i = 0; !rc && i < n_gen; i++)
        rc = model_forward(&m, &tokens[depth + i], 1, logits, false, &err);
    double t2 = progress_now();
    if (!rc) {
        double prefill = n_prompt / (t1 - t0), decode = n_gen / (t2 - t1);
        double per_token = bytes_per_token(&m), effective = per_token * decode / 1e9;
        char activations[64] = "f32";
        if (dsq_cpu_int8_activations())
            snprintf(activations, sizeof activations, "int8 (%s)",
                     dsq_qdot_path_name(dsq_qdot_current()));
        if (as_json)
            printf("{\"model\": \"%s\", \"backend\": \"%s (%s)\", \"activations\": \"%s\", "
                   "\"prompt_tokens\": %ld, "
                   "\"prefill_tok_s\": %.3f, \"gen_tokens\": %ld, \"depth\": %ld, \"threads\": %d, "
                   "\"decode_tok_s\": %.3f, "
                   "\"bytes_per_token\": %.0f, \"decode_gb_s\": %.3f, "
                   "\"read_baseline_gb_s\": %.3f}\n",
                   argv[optind], m.be->name, dsq_dot_path(), activations, n_prompt, prefill, n_gen, depth,
                   omp_get_max_threads(), decode, per_token, effective, baseline);
        else
            printf("%s (backend %s, %s float kernels, q8/q4 with %s activations, %d threads)\n"
                   "prefill  %ld tokens: %.2f tok/s\n"
                   "decode   %ld tokens after %ld: %.2f tok/s, %.1f MB of weights per token, "
                   "%.2f GB/s\n"
                   "baseline one read of every weight byte: %.2f GB/s (decode reaches %.0f%%)\n",
                   argv[optind], m.be->name, dsq_dot_path(), activations, omp_get_max_threads(),
                   n_prompt,
                   prefill, n_gen, depth, decode, per_token / 1e6,
                   effective, baseline, 100 * effective / baseline);
    }
    free(tokens);
    free(logits);
    model_close(&m);
    return rc ? cli_report("bench", &err) : 0;
}
