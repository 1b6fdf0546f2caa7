/* dsq bench: prefill and decode speed on either backend, next to a baseline measured in the same
 * run (decode streams the active weights once per token): a read of the mapped weights on the
 * CPU, a device-to-device copy on the GPU. */
#include <getopt.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "backend_cpu.h"
#include "bf16pack.h"
#include "cli_backend.h"
#include "dot.h"
#include "expert_swap.h"
#include "host_experts.h"
#include "model.h"
#include "offload.h"
#include "perplexity.h"
#include "progress.h"
#include "qdot.h"
#include "random_model.h"

static const char help[] =
    "usage: dsq bench MODEL.dsq [--prompt N] [--gen N] [--depth D] [--threads N] [options]\n"
    "       dsq bench --random v2-lite|moe-16b|v2 [--quant Q] [--layers N] ...\n"
    "\n"
    "Times a prefill of N prompt tokens from an empty cache, then N decode steps that start\n"
    "with D tokens in the cache (token ids drawn from a fixed seed, so runs compare; on cuda\n"
    "each step also draws a greedy token on the device, as run does), and, as a\n"
    "baseline in the same run, a read of every weight byte with the same threads (cpu) or a\n"
    "device-to-device copy (cuda). Prints tokens/s, the weight bytes one decode step reads and\n"
    "the bandwidth that makes; cuda adds the load time and device memory used, cpu the time\n"
    "to pack weights for its kernels and the bytes of packed copies left out for lack of\n"
    "memory. The spin of waiting threads (GOMP_SPINCOUNT) is chosen at start from the load.\n"
    "\n"
    "options:\n"
    "  --prompt N       prompt tokens (default 128)\n"
    "  --gen N          decode steps (default 32)\n"
    "  --depth D        tokens in the cache when decode starts (default: the prompt's N; with\n"
    "                   another D the cache is cleared and D tokens are run untimed first)\n"
    "  --repeat N       time prefill and decode N times in this one process and print the\n"
    "                   median with the slowest and fastest (default 1; a busy machine\n"
    "                   varies by 10-20% from run to run)\n"
    "  -t, --threads N  threads (default: OMP_NUM_THREADS, else all cores)\n"
    "  --activations A  int8 (default) or f32: how q8/q6/q4 matmuls take their input (cpu)\n"
    "                   (int8 also rounds bf16 prompts to bf16 on CPUs with AMX)\n"
    "  --json           one JSON object on stdout\n"
    "  --random M       instead of a file, a full-size model with random weights built in\n"
    "                   memory from the published config of M (v2-lite, moe-16b, v2); cuda\n"
    "                   unless --backend cpu\n"
    "  --quant Q        its weights, as the convert preset of that name: q4 (default), q4-q6,\n"
    "                   q8, bf16\n"
    "  --layers N       keep only the first N layers (V2 does not fit one GPU whole)\n"
    "  --gpu-experts P  (cuda) keep P% of the routed experts' bytes on the GPU and compute the\n"
    "                   others in host memory (a --vram budget to that end; docs/OFFLOAD.md);\n"
    "                   prints the host experts' share of the decode time\n"
    "  --batch N        decode N sequences together (cuda), each after its own prompt; tokens/s\n"
    "                   counts all of them, GB/s one token's weights per step\n" CLI_BACKEND_HELP
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

/* GB/s of one read of a buffer (a random model's weights), as read_bandwidth. */
static double read_buffer_bandwidth(const uint8_t *buf, size_t size)
{
    volatile uint64_t sink = 0;
    double bytes = 0, t0 = progress_now();
    for (int pass = 0; pass < 2 || progress_now() - t0 < 0.25; pass++) {
        if (pass == 1) {
            bytes = 0;
            t0 = progress_now();
        }
        const uint64_t *p = (const uint64_t *)buf, n = size / 8;
        uint64_t acc = 0;
#pragma omp parallel for reduction(+ : acc)
        for (uint64_t k = 0; k < n; k++)
            acc += p[k];
        sink += acc;
        bytes += (double)size;
    }
    (void)sink;
    return bytes / (progress_now() - t0) / 1e9;
}

/* A decode step as generate runs it: an engine that samples keeps its logits and draws the
 * token itself (greedy here: the draw's cost without a filter's), else the logits come out. */
static int decode_step(engine *e, const int *token, float *logits, sampler *greedy, dsq_error *err)
{
    if (!engine_samples(e))
        return engine_forward(e, token, 1, logits, false, err);
    int next, rc = engine_forward(e, token, 1, NULL, false, err);
    return rc ? rc : engine_sample(e, greedy, NULL, 0, &next, err);
}

/* One sequence: a prompt, then decode steps of one token starting at depth tokens in the
 * cache; a warm-up first so the first launches and the decode graph's capture stay out of the
 * timings. */
static int time_one(engine *e, const int *tokens, int n_prompt, int depth, int n_gen, float *logits,
                    double *prefill_s, double *decode_s, double *host_s, dsq_error *err)
{
    sampler greedy = {0};
    const sampler_params sp = sampler_defaults();
    int rc = sampler_init(&greedy, &sp, e->desc->vocab, err);
    for (int i = 0; !rc && i < 2; i++)
        rc = decode_step(e, tokens + i, logits, &greedy, err);
    engine_reset(e);
    double t = progress_now();
    if (!rc)
        rc = engine_forward(e, tokens, n_prompt, logits, false, err);
    *prefill_s = progress_now() - t;
    if (!rc && depth != n_prompt) { /* refill the cache to the asked depth, untimed */
        engine_reset(e);
        if (depth)
            rc = engine_forward(e, tokens, depth, logits, false, err);
    }
    t = progress_now();
    const double h = host_experts_seconds(e->host_experts);
    for (int i = 0; !rc && i < n_gen; i++)
        rc = decode_step(e, &tokens[depth + i], logits, &greedy, err);
    *decode_s = progress_now() - t;
    *host_s = host_experts_seconds(e->host_experts) - h; /* the routed experts on the CPU */
    sampler_free(&greedy);
    return rc;
}

/* batch sequences: each its prompt (the same tokens), then steps of one token for each. */
static int time_batch(engine *e, int batch, const int *tokens, int n_prompt, int n_gen,
                      float *logits, double *prefill_s, double *decode_s, dsq_error *err)
{
    int *seq = malloc((size_t)(n_prompt > batch ? n_prompt : batch) * sizeof(int));
    int *step = malloc((size_t)batch * sizeof(int));
    if (!seq || !step) {
        free(seq);
        free(step);
        return dsq_fail(err, DSQ_ERESOURCE, "out of memory");
    }
    for (int s = 0; s < batch; s++) {
        seq[s] = s;
        step[s] = tokens[s % n_prompt];
    }
    int rc = engine_forward_seqs(e, seq, step, batch, logits, err); /* warm-up, graph capture */
    for (int s = 0; s < batch; s++)
        engine_reset_seq(e, s);
    double t = progress_now();
    for (int s = 0; !rc && s < batch; s++) {
        for (int i = 0; i < n_prompt; i++)
            seq[i] = s;
        rc = engine_forward_seqs(e, seq, tokens, n_prompt, logits, err);
    }
    *prefill_s = progress_now() - t;
    t = progress_now();
    for (int s = 0; s < batch; s++)
        seq[s] = s;
    for (int i = 0; !rc && i < n_gen; i++) {
        for (int s = 0; s < batch; s++)
            step[s] = tokens[n_prompt + i];
        rc = engine_forward_seqs(e, seq, step, batch, logits, err);
    }
    *decode_s = progress_now() - t;
    free(seq);
    free(step);
    return rc;
}

/* Tokens/s over the repeats: the median (ppl_median: the mean of the middle two for an even
 * count), the slowest and the fastest. */
typedef struct {
    double median, min, max;
} rate;

static int by_value(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static rate summarize(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, by_value);
    return (rate){ppl_median(v, (size_t)n), v[0], v[n - 1]};
}

/* " (median of N, slowest-fastest)" after a rate when there were repeats, else nothing. */
static const char *spread(rate r, int repeat, char *buf, size_t size)
{
    buf[0] = 0;
    if (repeat > 1)
        snprintf(buf, size, " (median of %d, %.2f-%.2f)", repeat, r.min, r.max);
    return buf;
}

int cmd_bench(int argc, char **argv)
{
    static const struct option opts[] = {{"prompt", required_argument, 0, 'p'},
                                         {"gen", required_argument, 0, 'g'},
                                         {"depth", required_argument, 0, 'd'},
                                         {"threads", required_argument, 0, 't'},
                                         {"activations", required_argument, 0, 'a'},
                                         {"json", no_argument, 0, 'j'},
                                         CLI_BACKEND_OPTIONS,
                                         {"gpu-experts", required_argument, 0, 'G'},
                                         {"random", required_argument, 0, 'R'},
                                         {"quant", required_argument, 0, 'Q'},
                                         {"layers", required_argument, 0, 'L'},
                                         {"batch", required_argument, 0, 'B'},
                                         {"repeat", required_argument, 0, 'r'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    long n_prompt = 128, n_gen = 32, layers = 0, batch = 1, depth = -1, repeat = 1;
    long gpu_experts = -1; /* % of the routed experts' bytes on the GPU; < 0: as fits */
    const char *random_name = NULL, *quant = "q4";
    int as_json = 0, c;
    engine_options eo = {0};
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
        if (cli_backend_option("bench", c, optarg, &eo) < 0)
            return DSQ_EUSAGE;
        if (c == 'G' && !cli_parse_int("bench", "--gpu-experts", optarg, 0, 100, &gpu_experts))
            return DSQ_EUSAGE;
        if (c == 'R')
            random_name = optarg;
        if (c == 'Q')
            quant = optarg;
        if (c == 'L' && !cli_parse_int("bench", "--layers", optarg, 1, 1000, &layers))
            return DSQ_EUSAGE;
        if (c == 'B' && !cli_parse_int("bench", "--batch", optarg, 1, 64, &batch))
            return DSQ_EUSAGE;
        if (c == 'r' && !cli_parse_int("bench", "--repeat", optarg, 1, 1000, &repeat))
            return DSQ_EUSAGE;
        if (c == 'h') {
            fputs(help, stdout);
            return 0;
        }
        if (c == '?')
            return cli_usage_error("bench", "unknown option");
    }
    if (optind != argc - (random_name ? 0 : 1))
        return cli_usage_error("bench", random_name ? "--random takes no .dsq file"
                                                    : "expected exactly one .dsq file");
    if (depth >= 0 && batch > 1)
        return cli_usage_error("bench", "--depth applies to one sequence, not --batch");
    if (depth < 0)
        depth = n_prompt;
    const long longest = depth > n_prompt ? depth : n_prompt;
    const bool cuda_by_default = random_name && !eo.backend;
    if (cuda_by_default)
        eo.backend = "cuda";
    eo.n_seq = (int)batch;
    if (gpu_experts >= 0 && (!eo.backend || strcmp(eo.backend, "cuda") || eo.vram))
        return cli_usage_error("bench", "--gpu-experts takes --backend cuda and no --vram");
    /* before building gigabytes of weights */
    if (random_name && !strcmp(eo.backend, "cuda") && engine_cuda_devices() < 1) {
        dsq_error e;
        dsq_fail(&e, DSQ_ERESOURCE, "--random needs a CUDA device; none is available%s",
                 cuda_by_default ? " (--random runs on cuda unless given --backend cpu)" : "");
        return cli_report("bench", &e);
    }
    static random_model rm;
    model m;
    dsq_error err = {0};
    engine e;
    const int ctx = (int)(longest + n_gen + 2); /* + 2: the warm-up steps */
    const char *label = random_name ? random_name : argv[optind];
    if (random_name ? random_model_build(&rm, random_name, quant, (int)layers, ctx, &err)
                    : model_open(&m, argv[optind], ctx, &err))
        return cli_report("bench", &err);
    model *mp = random_name ? &rm.m : &m;
    if (gpu_experts >= 0)
        offload_budget(mp, (int)batch, gpu_experts / 100.0, &eo.vram, &err);
    if (err.code || engine_open(&e, mp, &eo, &err)) {
        random_name ? random_model_free(&rm) : model_close(&m);
        return cli_report("bench", &err);
    }
    const int vocab = mp->cfg->vocab_size;
    const long n_tokens = longest + n_gen;
    int *tokens = malloc((size_t)n_tokens * sizeof(int));
    const long rows = batch > 1 ? (n_prompt > batch ? n_prompt : batch) : 1;
    float *logits = malloc((size_t)rows * vocab * sizeof(float));
    int rc = tokens && logits ? DSQ_OK : dsq_fail(&err, DSQ_ERESOURCE, "out of memory");
    uint64_t rng = 12345;
    for (long i = 0; !rc && i < n_tokens; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        tokens[i] = (int)((rng >> 33) % (uint64_t)vocab);
    }
    /* the CPU read also brings the file into the page cache */
    double baseline = 0, prefill_s = 0, decode_s = 0, host_s = 0, host_share = 0;
    const char *base_name = e.ops->copy_bandwidth ? "device-to-device copy (read + write)"
                                                  : "one read of every weight byte";
    if (!rc)
        baseline = e.ops->copy_bandwidth ? e.ops->copy_bandwidth(&e)
                   : random_name         ? read_buffer_bandwidth(rm.buf, rm.size)
                                         : read_bandwidth(mp);
    rate prefill = {0}, decode = {0};
    double *runs = malloc(2 * (size_t)repeat * sizeof(double));
    if (!rc && !runs)
        rc = dsq_fail(&err, DSQ_ERESOURCE, "out of memory");
    for (long i = 0; !rc && i < repeat; i++) {
        if (batch > 1)
            rc = time_batch(&e, (int)batch, tokens, (int)n_prompt, (int)n_gen, logits,
                            &prefill_s, &decode_s, &err);
        else
            rc = time_one(&e, tokens, (int)n_prompt, (int)depth, (int)n_gen, logits, &prefill_s,
                          &decode_s, &host_s, &err);
        host_share += host_s / decode_s / (double)repeat; /* batch: not measured, 0 */
        engine_reset(&e); /* every repeat's warm-up starts from an empty cache, as the first's */
        for (int q = 0; q < batch; q++)
            engine_reset_seq(&e, q);
        runs[i] = batch * n_prompt / prefill_s;
        runs[repeat + i] = batch * n_gen / decode_s;
    }
    if (!rc) {
        prefill = summarize(runs, (int)repeat);
        decode = summarize(runs + repeat, (int)repeat);
        double per_token = random_name ? random_model_bytes_per_token(&rm) : bytes_per_token(&m);
        double effective = per_token * decode.median / batch / 1e9;
        const char *kernels = e.ops->copy_bandwidth ? "cuda" : dsq_dot_path();
        const double load_gb_s = e.load_seconds > 0 ? e.load_bytes / e.load_seconds / 1e9 : 0;
        const uint64_t unpacked = e.model ? e.model->w.unpacked_bytes : 0;
        char activations[64] = "f32", prefill_spread[80], decode_spread[80];
        if (!e.ops->copy_bandwidth && dsq_cpu_int8_activations())
            snprintf(activations, sizeof activations, "int8 (%s)",
                     dsq_qdot_path_name(dsq_qdot_current()));
        /* bf16 prompts on AMX tiles take their activations rounded to bf16 */
        const bool amx =
            !e.ops->copy_bandwidth && dsq_cpu_int8_activations() && dsq_bf16pack_amx_have();
        /* the CPU's KV cache (the CUDA engine keeps its own, fp32) */
        const char *kv_cache = e.ops->copy_bandwidth || !e.model               ? "f32"
                               : e.model->latent_bf16 && e.model->latent_tiles ? "bf16 (amx)"
                               : e.model->latent_bf16 || e.model->keys_bf16    ? "bf16"
                               : e.model->keys_q8                              ? "q8"
                                                                               : "f32";
        if (as_json)
            printf("{\"model\": \"%s\", \"backend\": \"%s (%s)\", \"activations\": \"%s\", "
                   "\"bf16_prompt_activations\": \"%s\", \"kv_cache\": \"%s\", \"threads\": %d, "
                   "\"gomp_spincount\": "
                   "\"%s\", \"prompt_tokens\": %ld, "
                   "\"repeat\": %ld, \"prefill_tok_s\": %.3f, \"prefill_tok_s_min\": %.3f, "
                   "\"prefill_tok_s_max\": %.3f, \"gen_tokens\": %ld, \"depth\": %ld, "
                   "\"decode_tok_s\": %.3f, \"decode_tok_s_min\": %.3f, "
                   "\"decode_tok_s_max\": %.3f, "
                   "\"bytes_per_token\": %.0f, \"decode_gb_s\": %.3f, "
                   "\"read_baseline_gb_s\": %.3f, \"baseline\": \"%s\", "
                   "\"load_s\": %.3f, \"load_gb_s\": %.3f, \"device_bytes\": %llu, "
                   "\"unpacked_bytes\": %llu, \"batch\": %ld, \"host_experts\": %s, "
                   "\"host_experts_decode_share\": %.4f, \"expert_cache\": \"%s\", "
                   "\"expert_loads\": %llu, \"graph_steps\": %llu}\n",
                   label, e.ops->name, kernels, activations, amx ? "bf16 (amx)" : "f32", kv_cache,
                   omp_get_max_threads(),
                   getenv("GOMP_SPINCOUNT") ? getenv("GOMP_SPINCOUNT") : "default", n_prompt,
                   repeat, prefill.median, prefill.min, prefill.max, n_gen, depth, decode.median,
                   decode.min, decode.max, per_token, effective, baseline, base_name,
                   e.load_seconds, load_gb_s, (unsigned long long)e.device_bytes,
                   (unsigned long long)unpacked, batch, e.host_experts ? "true" : "false",
                   host_share, e.expert_swap ? "lfu" : "static",
                   (unsigned long long)expert_swap_loads(e.expert_swap),
                   (unsigned long long)e.graph_launches);
        else {
            printf("%s (backend %s, %s kernels, q8/q4 with %s activations%s, %s KV cache, "
                   "%d threads, %ld sequence%s)\n"
                   "prefill  %ld tokens: %.2f tok/s%s\n"
                   "decode   %ld tokens after %ld: %.2f tok/s%s, %.1f MB of weights per token, "
                   "%.2f GB/s\n"
                   "baseline %s: %.2f GB/s (decode reaches %.0f%%)\n",
                   label, e.ops->name, kernels, activations,
                   amx ? ", bf16 prompts on amx with bf16 activations" : "", kv_cache,
                   omp_get_max_threads(), batch, batch > 1 ? "s decoded together" : "", n_prompt,
                   prefill.median,
                   spread(prefill, (int)repeat, prefill_spread, sizeof prefill_spread), n_gen,
                   depth, decode.median,
                   spread(decode, (int)repeat, decode_spread, sizeof decode_spread),
                   per_token / 1e6, effective, base_name, baseline, 100 * effective / baseline);
            if (e.load_seconds > 0 && e.ops->copy_bandwidth)
                printf("load     %.2f GB in %.2f s (%.2f GB/s); device memory %.2f GB\n",
                       e.load_bytes / 1e9, e.load_seconds, load_gb_s, e.device_bytes / 1e9);
            else if (e.load_seconds > 0) /* the CPU's load is the packing of its weights */
                printf("packed   %.2f GB of weights for the CPU kernels in %.2f s\n",
                       e.load_bytes / 1e9, e.load_seconds);
            if (e.host_experts && batch == 1)
                printf("host     routed experts in host memory, on the CPU: %.0f%% of the decode "
                       "time (%.2f ms of %.2f per token); expert cache %s, %llu experts copied "
                       "to the GPU in the whole run\n",
                       100 * host_share, 1e3 * host_share / decode.median, 1e3 / decode.median,
                       e.expert_swap ? "lfu" : "static",
                       (unsigned long long)expert_swap_loads(e.expert_swap));
            if (unpacked)
                printf("unpacked %.2f GB of packed copies left out for lack of memory: those "
                       "matrices run on the planar kernels\n",
                       unpacked / 1e9);
        }
    }
    free(runs);
    free(tokens);
    free(logits);
    engine_close(&e);
    if (random_name)
        random_model_free(&rm);
    else
        model_close(&m);
    return rc ? cli_report("bench", &err) : 0;
}
