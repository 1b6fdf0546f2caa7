/* dsq ppl: perplexity over a text file and KL-divergence against a saved base run, computed as
 * llama.cpp's llama-perplexity computes them (runtime/perplexity.h lists the definitions). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "cli.h"
#include "cli_backend.h"
#include "expert_stats.h"
#include "input_file.h"
#include "logits_file.h"
#include "model.h"
#include "output_path.h"
#include "perplexity.h"
#include "progress.h"
#include "tokenizer.h"

static const char help[] =
    "usage: dsq ppl MODEL.dsq --text FILE [--ctx N] [--save-logits OUT] [--kld-base BASE]\n"
    "\n"
    "Perplexity of the model over a text, measured as llama.cpp's llama-perplexity does: the\n"
    "text is tokenized once (with BOS), cut into n_tokens / ctx windows of ctx tokens that do\n"
    "not overlap; each window is a fresh sequence starting with BOS, and the tokens of its\n"
    "second half are scored (positions ctx/2 .. ctx-2 predict the next token). Prints the\n"
    "running estimate after each window ([1]x,[2]y,...) and 'PPL = X +/- Y' (Y: the standard\n"
    "error of the mean NLL, times PPL).\n"
    "\n"
    "KL-divergence: run the base model (bf16) once with --save-logits base.logits, then each\n"
    "quantized model with --kld-base base.logits on the same text and --ctx. Prints llama.cpp's\n"
    "statistics: PPL(Q) and PPL(base), KLD (mean, percentiles), dp = p_Q - p_base of the correct\n"
    "token (mean, percentiles, RMS, mean |dp|) and top-1 agreement ('Same top p'). The saved\n"
    "file holds 2 bytes per vocabulary entry per scored token (ctx/2 of every window): e.g.\n"
    "~200 KB per token at vocab 102400, each row with a checksum. Both options together\n"
    "compare with BASE and save this model's log-probs too. OUT must not be the model, the\n"
    "text or BASE, nor an existing file that is not a regular file.\n"
    "\n"
    "options:\n"
    "  -f, --text FILE         the text (UTF-8, a regular file of at most 1 GiB; a file with\n"
    "                          NUL bytes is refused)\n"
    "  -c, --ctx N             window in tokens: even, 4 .. the model's maximum (default 512,\n"
    "                          or the ctx of --kld-base)\n"
    "      --save-logits OUT   write the log-probs of every scored token (the base run)\n"
    "      --kld-base BASE     compare with a file written by --save-logits\n"
    "      --save-expert-stats OUT  write how many tokens the router sent to each routed\n"
    "                          expert, per layer (JSON; 'dsq experts OUT' summarizes it,\n"
    "                          'dsq plan --expert-stats OUT' places the hottest on the GPU);\n"
    "                          counted on the cpu backend\n"
    "      --expert-trace      with --save-expert-stats: also every token's expert ids, in\n"
    "                          order, for 'dsq experts --simulate' (k ids per MoE layer per\n"
    "                          token evaluated)\n"
    "  -t, --threads N         threads (default: OMP_NUM_THREADS, else all cores)\n"
    "      --activations A     int8 (default) or f32: how q8/q6/q4 matmuls take their input\n"
    "                          (int8 also rounds bf16 prompts to bf16 with AMX)\n"
    CLI_BACKEND_HELP
    "      --json              one JSON object with the results on stdout; the text report\n"
    "                          goes to stderr (dp and same_top as fractions, not %)\n"
    "  -h, --help              this text\n";

enum {
    OPT_SAVE = 256,
    OPT_BASE,
    OPT_JSON,
    OPT_ACT,
    OPT_STATS,
    OPT_TRACE,
};

typedef struct {
    const char *model_path, *text_path, *save_path, *base_path, *stats_path;
    long ctx;
    int json, trace;
    engine_options engine;
} ppl_cli;

static int parse(int argc, char **argv, ppl_cli *o)
{
    static const struct option opts[] = {{"text", required_argument, 0, 'f'},
                                         {"ctx", required_argument, 0, 'c'},
                                         {"save-logits", required_argument, 0, OPT_SAVE},
                                         {"kld-base", required_argument, 0, OPT_BASE},
                                         {"threads", required_argument, 0, 't'},
                                         {"activations", required_argument, 0, OPT_ACT},
                                         {"json", no_argument, 0, OPT_JSON},
                                         CLI_BACKEND_OPTIONS,
                                         {"save-expert-stats", required_argument, 0, OPT_STATS},
                                         {"expert-trace", no_argument, 0, OPT_TRACE},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "f:c:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            o->text_path = optarg;
            break;
        case 'c':
            if (!cli_parse_int("ppl", "--ctx", optarg, 0, 1 << 24, &o->ctx))
                return DSQ_EUSAGE;
            if (o->ctx < 4)
                return cli_usage_error("ppl",
                                       "--ctx %ld is too small: a window needs at least "
                                       "4 tokens (half context, half scored)",
                                       o->ctx);
            if (o->ctx % 2)
                return cli_usage_error("ppl",
                                       "--ctx %ld is odd: the window is split into two "
                                       "halves (context, scored), so it must be even",
                                       o->ctx);
            break;
        case 't':
            if (!cli_set_threads("ppl", optarg))
                return DSQ_EUSAGE;
            break;
        case OPT_ACT:
            if (!cli_set_activations("ppl", optarg))
                return DSQ_EUSAGE;
            break;
        case OPT_SAVE:
            o->save_path = optarg;
            break;
        case OPT_BASE:
            o->base_path = optarg;
            break;
        case OPT_JSON:
            o->json = 1;
            break;
        case OPT_STATS:
            o->stats_path = optarg;
            break;
        case OPT_TRACE:
            o->trace = 1;
            break;
        case 'h':
            fputs(help, stdout);
            return 0;
        default: {
            const int taken = cli_backend_option("ppl", c, optarg, &o->engine);
            if (taken < 0)
                return DSQ_EUSAGE;
            if (!taken)
                return cli_usage_error("ppl", "unknown option");
        }
        }
    }
    if (optind != argc - 1)
        return cli_usage_error("ppl", "expected exactly one .dsq file");
    o->model_path = argv[optind];
    if (!o->text_path)
        return cli_usage_error("ppl", "missing --text FILE");
    if (o->save_path) { /* before any work: the log-probs must not replace an input */
        const char *inputs[] = {o->model_path, o->text_path, o->base_path};
        dsq_error err;
        if (output_path_check(o->save_path, inputs, 3, &err))
            return cli_usage_error("ppl", "--save-logits %s", err.msg);
    }
    if (o->trace && !o->stats_path)
        return cli_usage_error("ppl", "--expert-trace needs --save-expert-stats FILE");
    if (o->stats_path) {
        const char *inputs[] = {o->model_path, o->text_path, o->base_path, o->save_path};
        dsq_error err;
        if (output_path_check(o->stats_path, inputs, 4, &err))
            return cli_usage_error("ppl", "--save-expert-stats %s", err.msg);
        if (o->save_path && !strcmp(o->save_path, o->stats_path))
            return cli_usage_error("ppl",
                                   "--save-expert-stats and --save-logits name the same "
                                   "file %s",
                                   o->stats_path);
    }
    return -1;
}

/* Reads the whole text (a regular file of at most INPUT_CAP_TEXT bytes); refuses an empty
 * file and a file with NUL bytes. */
static int read_text(const char *path, char **out, size_t *len, dsq_error *err)
{
    int rc = input_read_all(path, INPUT_CAP_TEXT, "the text", 0, out, len, err);
    if (rc)
        return rc;
    const char *nul = memchr(*out, 0, *len);
    if (*len == 0)
        rc = dsq_fail(err, DSQ_EINPUT, "%s: the text is empty: no tokens", path);
    else if (nul)
        rc = dsq_fail(err, DSQ_EINPUT, "%s: contains a NUL byte at offset %zu: not a text file",
                      path, (size_t)(nul - *out));
    if (rc) {
        free(*out);
        *out = NULL;
        *len = 0;
    }
    return rc;
}

/* XXH3-64 of the compact JSON of the tokenizer's "tokens" array: which vocabulary made a file. */
static int tokenizer_hash(const json_t *tok, const char *path, uint64_t *out, dsq_error *err)
{
    char *s = json_dumps(json_object_get(tok, "tokens"), JSON_COMPACT);
    if (!s)
        return dsq_fail(err, DSQ_EINPUT, "%s: the tokenizer has no token list", path);
    *out = XXH3_64bits(s, strlen(s));
    free(s);
    return DSQ_OK;
}

/* ---- output ------------------------------------------------------------------------------- */

typedef struct {
    FILE *out;  /* the text report: stdout, or stderr with --json */
    bool bar;   /* a progress bar on stderr (a terminal) */
    bool defer; /* the bar shares a terminal with the report: print [i] values at the end */
    bool kld;
    double *chunk_ppl;
    int n_done;
} reporter;

static void clear_bar(const reporter *p)
{
    if (p->bar)
        fputs("\r\033[K", stderr);
}

static void draw_bar(const reporter *p, const ppl_progress *g, double ppl)
{
    const int done = g->chunk + 1, total = g->n_chunk;
    double left = g->seconds / done * (total - done);
    left = left >= 0 && left < 359999 ? left : 359999; /* keeps the cast to int defined */
    char bar[31];
    const int filled = (int)(30.0 * done / total);
    for (int i = 0; i < 30; i++)
        bar[i] = i < filled ? '=' : i == filled ? '>' : ' ';
    bar[30] = 0;
    fprintf(stderr, "\rppl %3d%% [%s] %d/%d windows  PPL %.4f  %d:%02d left ", 100 * done / total,
            bar, done, total, ppl, (int)left / 60, (int)left % 60);
    fflush(stderr);
}

static void on_chunk(void *user, const ppl_progress *g)
{
    reporter *p = user;
    const double ppl = exp(g->sum_nll / (double)g->count);
    p->chunk_ppl[g->chunk] = ppl;
    p->n_done = g->chunk + 1;
    if (g->chunk == 0 && !p->bar) {
        double eta = g->seconds * g->n_chunk;
        fprintf(stderr, "dsq ppl: %.2f seconds per pass - ETA %.2f minutes\n", g->seconds,
                eta / 60.0);
    }
    clear_bar(p);
    if (p->kld) {
        kld_stats s;
        kld_stats_from_sums(g->kld, &s);
        if (g->chunk == 0)
            fprintf(p->out, "chunk             PPL               ln(PPL(Q)/PPL(base))          "
                            "KL Divergence              Δp RMS            Same top p\n");
        fprintf(p->out,
                "%4d    %9.4lf ± %9.4lf    %10.5lf ± %10.5lf    %10.5lf ± %10.5lf    "
                "%6.3lf ± %6.3lf %%    %6.3lf ± %6.3lf %%\n",
                g->chunk + 1, s.ppl_q.value, s.ppl_q.uncertainty, s.ln_ppl_ratio.value,
                s.ln_ppl_ratio.uncertainty, s.kld.value, s.kld.uncertainty,
                100.0 * s.p_diff_rms.value, 100.0 * s.p_diff_rms.uncertainty,
                100.0 * s.same_top.value, 100.0 * s.same_top.uncertainty);
    } else if (!p->defer) {
        fprintf(p->out, "[%d]%.4lf,", g->chunk + 1, ppl);
    }
    fflush(p->out);
    if (p->bar)
        draw_bar(p, g, ppl);
}

static void print_kld(FILE *f, const kld_stats *s)
{
    static const char *names[KLD_N_PCT] = {"99.9%", "99.0%", "95.0%", "90.0%", "75.0%", "Median",
                                           "25.0%", "10.0%", " 5.0%", " 1.0%", " 0.1%"};
    if (s->count < 100)
        fprintf(f,
                "\nnote: only %zu scored tokens; llama.cpp prints no statistics below 100 "
                "and no uncertainties up to 10\n",
                s->count);
    fprintf(f, "\n====== Perplexity statistics ======\n");
    fprintf(f, "Mean PPL(Q)                   : %10.6lf ± %10.6lf\n", s->ppl_q.value,
            s->ppl_q.uncertainty);
    fprintf(f, "Mean PPL(base)                : %10.6lf ± %10.6lf\n", s->ppl_base.value,
            s->ppl_base.uncertainty);
    fprintf(f, "Cor(ln(PPL(Q)), ln(PPL(base))): %6.2lf%%\n", 100.0 * s->cor_ln_ppl);
    fprintf(f, "Mean ln(PPL(Q)/PPL(base))     : %10.6lf ± %10.6lf\n", s->ln_ppl_ratio.value,
            s->ln_ppl_ratio.uncertainty);
    fprintf(f, "Mean PPL(Q)/PPL(base)         : %10.6lf ± %10.6lf\n", s->ppl_ratio.value,
            s->ppl_ratio.uncertainty);
    fprintf(f, "Mean PPL(Q)-PPL(base)         : %10.6lf ± %10.6lf\n", s->ppl_diff.value,
            s->ppl_diff.uncertainty);
    fprintf(f, "\n====== KL divergence statistics ======\n");
    fprintf(f, "Mean    KLD: %10.6lf ± %10.6lf\n", s->kld.value, s->kld.uncertainty);
    fprintf(f, "Maximum KLD: %10.6f\n", s->kld_max);
    for (int i = 0; i < KLD_N_PCT; i++) {
        if (kld_pct_fraction[i] == 0.75 || kld_pct_fraction[i] == 0.25)
            continue; /* llama.cpp prints these for dp only */
        fprintf(f, "%-6s  KLD: %10.6f\n", names[i], s->kld_pct[i]);
    }
    fprintf(f, "Minimum KLD: %10.6f\n", s->kld_min);
    fprintf(f, "\n====== Token probability statistics ======\n");
    fprintf(f, "Mean    Δp: %6.3lf ± %5.3lf %%\n", 100.0 * s->p_diff.value,
            100.0 * s->p_diff.uncertainty);
    fprintf(f, "Maximum Δp: %6.3lf%%\n", 100.0 * s->p_diff_max);
    for (int i = 0; i < KLD_N_PCT; i++)
        fprintf(f, "%-6s  Δp: %6.3lf%%\n", names[i], 100.0 * s->p_diff_pct[i]);
    fprintf(f, "Minimum Δp: %6.3lf%%\n", 100.0 * s->p_diff_min);
    fprintf(f, "RMS Δp    : %6.3lf ± %5.3lf %%\n", 100.0 * s->p_diff_rms.value,
            100.0 * s->p_diff_rms.uncertainty);
    fprintf(f, "Mean |Δp| : %6.3lf %%\n", 100.0 * s->p_diff_abs_mean);
    fprintf(f, "Same top p: %6.3lf ± %5.3lf %%\n", 100.0 * s->same_top.value,
            100.0 * s->same_top.uncertainty);
}

/* A JSON number, or null where the value is not finite (JSON has no NaN). */
static json_t *jnum(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static void put(json_t *obj, const char *key, json_t *value);

static json_t *jest(ppl_estimate e)
{
    json_t *o = json_object();
    put(o, "value", jnum(e.value));
    put(o, "stderr", jnum(e.uncertainty));
    return o;
}

static json_t *jorder(double mean, double unc, double max, const double *pct, double min)
{
    static const char *keys[KLD_N_PCT] = {"p99.9", "p99", "p95", "p90", "p75", "median",
                                          "p25",   "p10", "p5",  "p1",  "p0.1"};
    json_t *o = json_object();
    put(o, "mean", jnum(mean));
    put(o, "stderr", jnum(unc));
    put(o, "max", jnum(max));
    for (int i = 0; i < KLD_N_PCT; i++)
        put(o, keys[i], jnum(pct[i]));
    put(o, "min", jnum(min));
    return o;
}

/* Adds key: value to obj (value may be NULL after an allocation failure: then nothing). */
static void put(json_t *obj, const char *key, json_t *value)
{
    if (obj && value)
        json_object_set_new(obj, key, value);
    else
        json_decref(value);
}

static int print_json(const ppl_cli *o, size_t n_tokens, const ppl_result *r, const reporter *rep,
                      const kld_stats *ks)
{
    json_t *root = json_object();
    put(root, "model", json_string(o->model_path));
    put(root, "text", json_string(o->text_path));
    put(root, "ctx", json_integer((json_int_t)o->ctx));
    put(root, "n_tokens", json_integer((json_int_t)n_tokens));
    put(root, "n_chunk", json_integer(r->n_chunk));
    put(root, "scored_per_chunk", json_integer(r->scored_per_chunk));
    put(root, "scored", json_integer((json_int_t)r->count));
    put(root, "ppl", jnum(r->ppl.value));
    put(root, "ppl_stderr", jnum(r->ppl.uncertainty));
    put(root, "nll_mean", jnum(r->sum_nll / (double)r->count));
    put(root, "seconds", jnum(r->seconds));
    json_t *chunks = json_array();
    for (int i = 0; chunks && i < rep->n_done; i++)
        json_array_append_new(chunks, jnum(rep->chunk_ppl[i]));
    put(root, "chunk_ppl", chunks);
    put(root, "save_logits", o->save_path ? json_string(o->save_path) : json_null());
    if (ks) {
        json_t *k = json_object();
        put(k, "base", json_string(o->base_path));
        put(k, "count", json_integer((json_int_t)ks->count));
        put(k, "ppl_q", jest(ks->ppl_q));
        put(k, "ppl_base", jest(ks->ppl_base));
        put(k, "cor_ln_ppl", jnum(ks->cor_ln_ppl));
        put(k, "ln_ppl_ratio", jest(ks->ln_ppl_ratio));
        put(k, "ppl_ratio", jest(ks->ppl_ratio));
        put(k, "ppl_diff", jest(ks->ppl_diff));
        put(k, "kld",
            jorder(ks->kld.value, ks->kld.uncertainty, ks->kld_max, ks->kld_pct, ks->kld_min));
        put(k, "delta_p",
            jorder(ks->p_diff.value, ks->p_diff.uncertainty, ks->p_diff_max, ks->p_diff_pct,
                   ks->p_diff_min));
        put(k, "delta_p_rms", jest(ks->p_diff_rms));
        put(k, "delta_p_abs_mean", jnum(ks->p_diff_abs_mean));
        put(k, "same_top", jest(ks->same_top));
        put(k, "same_top_count", json_integer((json_int_t)r->kld.n_same_top));
        put(root, "kld", k);
    }
    char *s = root ? json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(10)) : NULL;
    json_decref(root);
    if (!s) {
        fprintf(stderr, "dsq ppl: out of memory for the JSON report\n");
        return DSQ_ERESOURCE;
    }
    puts(s);
    free(s);
    return DSQ_OK;
}

/* ---- the command -------------------------------------------------------------------------- */

int cmd_ppl(int argc, char **argv)
{
    ppl_cli o = {0};
    int rc = parse(argc, argv, &o);
    if (rc >= 0)
        return rc;

    dsq_error err = {0};
    char *text = NULL;
    size_t text_len = 0;
    int *ids = NULL;
    size_t n_ids = 0;
    model m;
    engine e = {0};
    bool model_opened = false;
    tokenizer *tok = NULL;
    logits_reader base = {.fd = -1};
    logits_writer save = {0};
    ppl_result res = {0};
    reporter rep = {0};
    kld_stats ks;
    expert_stats stats = {0};

    if ((rc = read_text(o.text_path, &text, &text_len, &err)))
        goto done;
    if (o.base_path) {
        if ((rc = logits_reader_open(&base, o.base_path, &err)))
            goto done;
        if (!o.ctx)
            o.ctx = base.h.ctx;
    }
    {
        model_file probe;
        if ((rc = model_file_open(&probe, o.model_path, &err)))
            goto done;
        const int max_ctx = probe.config.max_position_embeddings;
        model_file_close(&probe);
        if (!o.ctx)
            o.ctx = max_ctx < 512 ? max_ctx - max_ctx % 2 : 512;
        if (o.ctx > max_ctx) {
            rc = cli_usage_error("ppl",
                                 "--ctx %ld exceeds the model's maximum context of %d "
                                 "tokens",
                                 o.ctx, max_ctx);
            goto done_quiet;
        }
        if (o.ctx < 4) {
            rc = dsq_fail(&err, DSQ_EINPUT,
                          "%s: the model's context (%d) is too short for a "
                          "window",
                          o.model_path, max_ctx);
            goto done;
        }
    }
    if ((rc = model_open(&m, o.model_path, (int)o.ctx, &err)))
        goto done;
    model_opened = true;
    if ((rc = engine_open(&e, &m, &o.engine, &err)))
        goto done;
    if (o.stats_path) { /* the CPU forward pass counts through the model's hook */
        if (strcmp(e.ops->name, "cpu")) {
            rc = cli_usage_error("ppl", "--save-expert-stats counts on the cpu backend only: "
                                        "add --backend cpu");
            goto done_quiet;
        }
        if ((rc = expert_stats_init(&stats, m.cfg, o.trace, &err)))
            goto done;
        m.expert_stats = &stats;
    }
    const json_t *tok_json = json_object_get(m.file.file.meta, "tokenizer");
    if ((rc = tokenizer_load(&tok, tok_json, o.model_path, &err)))
        goto done;
    const int add = tokenizer_default_add(tok);
    if (add & TOKENIZER_ADD_EOS) { /* as llama.cpp, which asserts the same */
        rc = dsq_fail(&err, DSQ_EINPUT,
                      "%s: the tokenizer adds EOS to every text; perplexity "
                      "windows would end in it",
                      o.model_path);
        goto done;
    }
    if ((rc = tokenizer_encode(tok, text, text_len, add, &ids, &n_ids, &err)))
        goto done;
    free(text);
    text = NULL;
    const size_t n_bos = (add & TOKENIZER_ADD_BOS) ? 1 : 0;
    if (n_ids <= n_bos) {
        rc = dsq_fail(&err, DSQ_EINPUT, "%s: no tokens", o.text_path);
        goto done;
    }
    if (n_ids < (size_t)o.ctx) {
        rc = dsq_fail(&err, DSQ_EINPUT, "%s: needs at least %ld tokens, has %zu (with --ctx %ld)",
                      o.text_path, o.ctx, n_ids, o.ctx);
        goto done;
    }
    const uint32_t n_chunk = (uint32_t)(n_ids / (size_t)o.ctx);
    logits_header h = {.vocab = (uint32_t)m.cfg->vocab_size,
                       .ctx = (uint32_t)o.ctx,
                       .n_chunk = n_chunk,
                       .scored = (uint32_t)(o.ctx - 1 - o.ctx / 2),
                       .n_tokens = n_ids,
                       .text_hash = logits_hash_tokens(ids, n_ids)};
    if ((rc = tokenizer_hash(tok_json, o.model_path, &h.tokenizer_hash, &err)))
        goto done;
    if (o.base_path && (rc = logits_reader_check(&base, &h, &err)))
        goto done;
    if (o.save_path && (rc = logits_writer_open(&save, o.save_path, &h, &err)))
        goto done;

    rep.out = o.json ? stderr : stdout;
    rep.bar = isatty(STDERR_FILENO);
    rep.defer = rep.bar && (o.json || isatty(STDOUT_FILENO));
    rep.kld = o.base_path != NULL;
    rep.chunk_ppl = calloc(n_chunk, sizeof(double));
    if (!rep.chunk_ppl) {
        rc = dsq_fail(&err, DSQ_ERESOURCE, "out of memory");
        goto done;
    }
    fprintf(rep.out,
            "dsq ppl: %zu tokens, %u chunks of %ld tokens, %u scored per chunk "
            "(%zu in all)\n",
            n_ids, n_chunk, o.ctx, h.scored, (size_t)n_chunk * h.scored);
    fflush(rep.out);
    ppl_options po = {.ctx = (int)o.ctx,
                      .bos = (add & TOKENIZER_ADD_BOS) ? tokenizer_bos(tok) : -1,
                      .save = o.save_path ? &save : NULL,
                      .base = o.base_path ? &base : NULL,
                      .on_chunk = on_chunk,
                      .user = &rep};
    rc = ppl_evaluate(&e, ids, n_ids, &po, &res, &err);
    clear_bar(&rep);
    if (!rc && o.save_path)
        rc = logits_writer_finish(&save, &err);
    if (!rc && o.stats_path) {
        stats.meta =
            json_pack("{s:O, s:s, s:I, s:s, s:i}", "model",
                      json_object_get(m.file.file.meta, "model"), "file", o.model_path, "file_size",
                      (json_int_t)m.file.file.size, "text", o.text_path, "ctx", (int)o.ctx);
        rc = expert_stats_save(&stats, o.stats_path, &err);
    }
    if (rc) {
        if (rep.n_done && !rep.kld && !rep.defer)
            fputc('\n', rep.out);
        goto done;
    }
    if (!rep.kld) {
        if (rep.defer)
            for (int i = 0; i < rep.n_done; i++)
                fprintf(rep.out, "[%d]%.4lf,", i + 1, rep.chunk_ppl[i]);
        fputc('\n', rep.out);
    }
    fprintf(rep.out, "Final estimate: PPL = %.4lf +/- %.5lf\n", res.ppl.value, res.ppl.uncertainty);
    if (o.base_path) {
        kld_stats_compute(&res.kld, res.kld_values, res.p_diff_values, &ks);
        print_kld(rep.out, &ks);
    }
    fprintf(rep.out,
            "\nn_tokens %zu, chunks %d, scored tokens %zu, %.2f seconds (%.1f tokens/s "
            "evaluated)\n",
            n_ids, res.n_chunk, res.count, res.seconds,
            res.seconds > 0 ? (double)res.n_chunk * (double)o.ctx / res.seconds : 0.0);
    if (o.stats_path)
        fprintf(rep.out, "saved the expert statistics of %llu tokens%s to %s\n",
                (unsigned long long)(stats.n_moe ? stats.tokens[0] : 0),
                o.trace ? " with their routing trace" : "", o.stats_path);
    if (o.save_path)
        fprintf(rep.out, "saved the log-probs of %zu tokens to %s\n", res.count, o.save_path);
    fflush(rep.out);
    if (o.json)
        rc = print_json(&o, n_ids, &res, &rep, o.base_path ? &ks : NULL);

done:
    if (rc && err.msg[0])
        rc = cli_report("ppl", &err);
done_quiet:
    logits_writer_abort(&save);
    logits_reader_close(&base);
    ppl_result_free(&res);
    free(rep.chunk_ppl);
    free(ids);
    free(text);
    tokenizer_free(tok);
    engine_close(&e);
    if (model_opened)
        model_close(&m);
    expert_stats_free(&stats);
    return rc;
}
