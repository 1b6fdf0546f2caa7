/* dsq run and dsq chat: text generation from the command line, with shared sampling options. */
#include <float.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cli_backend.h"
#include "generate.h"
#include "input_file.h"
#include "model.h"

static const char sampling_help[] =
    "  -n, --n-predict N       tokens to generate at most (default 128; run stops at EOS)\n"
    "      --temp T            temperature, 0 = greedy (default 0)\n"
    "      --top-k K           keep the K most likely tokens, 0 = off (default 0)\n"
    "      --top-p P           nucleus: smallest set with probability >= P, 1 = off\n"
    "      --min-p P           drop tokens below P x the top probability, 0 = off\n"
    "      --repeat-penalty R  penalize the last --repeat-last-n tokens (default 1 = off)\n"
    "      --repeat-last-n N   (default 64)\n"
    "      --seed S            random seed (default: from the clock, printed with -v)\n"
    "  -c, --ctx N             context size in tokens (default 4096 or the model's maximum)\n"
    CLI_BACKEND_HELP
    "  -t, --threads N         threads (default: OMP_NUM_THREADS, else all cores)\n"
    "      --activations A     int8 (default) or f32: how q8/q6/q4 matmuls take their input\n"
    "                          (int8 also rounds bf16 prompts to bf16 with AMX)\n"
    "  -v, --verbose           print the prompt's tokens, the seed and timings\n"
    "  -h, --help              this text\n";

typedef struct {
    const char *model_path;
    const char *prompt;
    const char *system;
    long n_predict, ctx;
    sampler_params sampling;
    int verbose;
    engine_options engine;
} gen_options;

enum {
    OPT_TEMP = 256,
    OPT_TOPK,
    OPT_TOPP,
    OPT_MINP,
    OPT_PENALTY,
    OPT_LASTN,
    OPT_SEED,
    OPT_SYSTEM,
    OPT_ACT,
};

static bool parse_float(const char *cmd, const char *opt, const char *text, float *out)
{
    char *end;
    double v = strtod(text, &end);
    if (end == text || *end || !(fabs(v) <= FLT_MAX)) { /* also NaN, inf, beyond float */
        cli_usage_error(cmd, "%s needs a finite number, not '%s'", opt, text);
        return false;
    }
    *out = (float)v;
    return true;
}

/* Parses the options run and chat share; returns -1 to go on, else an exit code. */
static int parse_options(const char *cmd, const char *help, int argc, char **argv,
                         gen_options *o)
{
    static const struct option opts[] = {{"prompt", required_argument, 0, 'p'},
                                         {"n-predict", required_argument, 0, 'n'},
                                         {"ctx", required_argument, 0, 'c'},
                                         {"temp", required_argument, 0, OPT_TEMP},
                                         {"top-k", required_argument, 0, OPT_TOPK},
                                         {"top-p", required_argument, 0, OPT_TOPP},
                                         {"min-p", required_argument, 0, OPT_MINP},
                                         {"repeat-penalty", required_argument, 0, OPT_PENALTY},
                                         {"repeat-last-n", required_argument, 0, OPT_LASTN},
                                         {"seed", required_argument, 0, OPT_SEED},
                                         CLI_BACKEND_OPTIONS,
                                         {"threads", required_argument, 0, 't'},
                                         {"activations", required_argument, 0, OPT_ACT},
                                         {"system", required_argument, 0, OPT_SYSTEM},
                                         {"verbose", no_argument, 0, 'v'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    o->n_predict = 128;
    o->ctx = 0;
    o->sampling = sampler_defaults();
    o->sampling.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    long v;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "p:n:c:t:vh", opts, NULL)) != -1) {
        bool ok = true;
        switch (c) {
        case 'p':
            o->prompt = optarg;
            break;
        case 'n':
            ok = cli_parse_int(cmd, "--n-predict", optarg, 1, 1 << 24, &o->n_predict);
            break;
        case 'c':
            ok = cli_parse_int(cmd, "--ctx", optarg, 1, 1 << 24, &o->ctx);
            break;
        case OPT_TEMP:
            ok = parse_float(cmd, "--temp", optarg, &o->sampling.temperature);
            break;
        case OPT_TOPK:
            ok = cli_parse_int(cmd, "--top-k", optarg, 0, 1 << 24, &v);
            o->sampling.top_k = (int)v;
            break;
        case OPT_TOPP:
            ok = parse_float(cmd, "--top-p", optarg, &o->sampling.top_p);
            break;
        case OPT_MINP:
            ok = parse_float(cmd, "--min-p", optarg, &o->sampling.min_p);
            break;
        case OPT_PENALTY:
            ok = parse_float(cmd, "--repeat-penalty", optarg, &o->sampling.repeat_penalty);
            break;
        case OPT_LASTN:
            ok = cli_parse_int(cmd, "--repeat-last-n", optarg, 0, 1 << 24, &v);
            o->sampling.repeat_last_n = (int)v;
            break;
        case OPT_SEED:
            ok = cli_parse_int(cmd, "--seed", optarg, 0, 0x7fffffffffffffffl, &v);
            o->sampling.seed = (uint64_t)v;
            break;
        case 't':
            ok = cli_set_threads(cmd, optarg);
            break;
        case OPT_ACT:
            ok = cli_set_activations(cmd, optarg);
            break;
        case OPT_SYSTEM:
            o->system = optarg;
            break;
        case 'v':
            o->verbose = 1;
            o->engine.verbose = true;
            break;
        case 'h':
            fputs(help, stdout);
            fputs(sampling_help, stdout);
            return 0;
        default: {
            const int taken = cli_backend_option(cmd, c, optarg, &o->engine);
            if (!taken)
                return cli_usage_error(cmd, "unknown option");
            ok = taken > 0;
        }
        }
        if (!ok)
            return DSQ_EUSAGE;
    }
    if (optind != argc - 1)
        return cli_usage_error(cmd, "expected exactly one .dsq file");
    o->model_path = argv[optind];
    dsq_error err;
    if (sampler_check(&o->sampling, &err))
        return cli_usage_error(cmd, "%s", err.msg);
    return -1;
}

/* Opens model, engine, tokenizer and sampler; ctx 0 means min(4096, the model's maximum). */
static int open_all(const char *cmd, const gen_options *o, model *m, engine *e, tokenizer **tok,
                    sampler *s)
{
    dsq_error err = {0};
    model_file probe;
    if (model_file_open(&probe, o->model_path, &err))
        return cli_report(cmd, &err);
    int ctx = o->ctx ? (int)o->ctx : model_default_ctx(&probe.config);
    model_file_close(&probe);
    if (model_open(m, o->model_path, ctx, &err))
        return cli_report(cmd, &err);
    if (engine_open(e, m, &o->engine, &err)) {
        model_close(m);
        return cli_report(cmd, &err);
    }
    if (tokenizer_load(tok, json_object_get(m->file.file.meta, "tokenizer"), o->model_path, &err) ||
        sampler_init(s, &o->sampling, m->cfg->vocab_size, &err)) {
        engine_close(e);
        model_close(m);
        tokenizer_free(*tok);
        return cli_report(cmd, &err);
    }
    return -1;
}

static void write_stdout(void *ctx, const char *text, size_t len)
{
    (void)ctx;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
}

static void print_stats(const gen_stats *st)
{
    fprintf(stderr, "\nprompt %d tokens in %.2f s (%.1f tok/s); generated %d tokens in %.2f s "
                    "(%.1f tok/s)%s\n",
            st->n_prompt, st->prompt_seconds,
            st->prompt_seconds > 0 ? st->n_prompt / st->prompt_seconds : 0.0, st->n_generated,
            st->generate_seconds,
            st->generate_seconds > 0 ? st->n_generated / st->generate_seconds : 0.0,
            st->hit_context ? " (context full)" : "");
}

static const char run_help[] =
    "usage: dsq run MODEL.dsq -p TEXT [options]\n"
    "\n"
    "Continues TEXT with the model (BOS is added as the model's tokenizer says), streaming the\n"
    "text to stdout; statistics go to stderr.\n"
    "\n"
    "options:\n"
    "  -p, --prompt TEXT       the text to continue (required)\n";

int cmd_run(int argc, char **argv)
{
    gen_options o = {0};
    int rc = parse_options("run", run_help, argc, argv, &o);
    if (rc >= 0)
        return rc;
    if (!o.prompt)
        return cli_usage_error("run", "missing -p TEXT");
    model m;
    engine e;
    tokenizer *tok = NULL;
    sampler s;
    if ((rc = open_all("run", &o, &m, &e, &tok, &s)) >= 0)
        return rc;
    dsq_error err = {0};
    int *ids = NULL;
    size_t n = 0;
    token_list history = {0};
    gen_stats st;
    rc = tokenizer_encode(tok, o.prompt, strlen(o.prompt), tokenizer_default_add(tok), &ids, &n,
                          &err);
    if (!rc && o.verbose) {
        fprintf(stderr, "backend %s; seed %llu; prompt tokens:", e.ops->name,
                (unsigned long long)o.sampling.seed);
        for (size_t i = 0; i < n; i++)
            fprintf(stderr, " %d", ids[i]);
        fputc('\n', stderr);
    }
    if (!rc) /* refused before anything is printed */
        rc = generate_check_prompt(&e, (int)n, &err);
    if (!rc) {
        fputs(o.prompt, stdout);
        rc = generate(&e, tok, &s, ids, (int)n, (int)o.n_predict, write_stdout, NULL, &history,
                      &st, &err);
    }
    if (!rc)
        print_stats(&st);
    free(ids);
    token_list_free(&history);
    sampler_free(&s);
    tokenizer_free(tok);
    engine_close(&e);
    model_close(&m);
    return rc ? cli_report("run", &err) : 0;
}

static const char chat_help[] =
    "usage: dsq chat MODEL.dsq [--system TEXT] [options]\n"
    "\n"
    "Multi-turn chat in the model's own template (BOS, optional system prompt, then\n"
    "'User: ...' and 'Assistant: ...<EOS>' turns). Each line on stdin is one user turn, so a\n"
    "conversation can be scripted: printf 'Hi\\nAnd then?\\n' | dsq chat model.dsq\n"
    "The cache is kept across turns; chat stops when stdin ends or the context is full. A line\n"
    "longer than 1 MiB or with a NUL byte is refused (exit 2).\n"
    "\n"
    "options:\n"
    "      --system TEXT       system prompt\n";

/* Writes the answer, dropping the space the template puts after "Assistant:". */
typedef struct {
    bool started;
} answer_sink;

static void write_answer(void *ctx, const char *text, size_t len)
{
    answer_sink *a = ctx;
    if (!a->started && len > 0 && text[0] == ' ') {
        text++;
        len--;
    }
    a->started = a->started || len > 0;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
}

/* Tokens of one user turn: what the last answer left unfed (its final token, and EOS if it
 * ended otherwise), BOS and system prompt on the first turn, then "User: ...\n\nAssistant:". */
static int turn_tokens(const tokenizer *tok, const char *system, const char *user, int pending,
                       token_list *out, dsq_error *err)
{
    const int eos = tokenizer_eos(tok);
    out->n = 0;
    int rc = DSQ_OK;
    if (pending >= 0) {
        rc |= token_list_push(out, pending);
        if (pending != eos)
            rc |= token_list_push(out, eos);
    } else {
        rc |= token_list_push(out, tokenizer_bos(tok));
    }
    size_t len = strlen(user) + (system ? strlen(system) : 0) + 32;
    char *text = malloc(len);
    if (rc || !text) {
        free(text);
        return dsq_fail(err, DSQ_ERESOURCE, "out of memory");
    }
    snprintf(text, len, "%s%sUser: %s\n\nAssistant:", pending < 0 && system ? system : "",
             pending < 0 && system ? "\n\n" : "", user);
    int *ids = NULL;
    size_t n = 0;
    rc = tokenizer_encode(tok, text, strlen(text), 0, &ids, &n, err);
    for (size_t i = 0; !rc && i < n; i++)
        if (token_list_push(out, ids[i]))
            rc = dsq_fail(err, DSQ_ERESOURCE, "out of memory");
    free(ids);
    free(text);
    return rc;
}

int cmd_chat(int argc, char **argv)
{
    gen_options o = {0};
    int rc = parse_options("chat", chat_help, argc, argv, &o);
    if (rc >= 0)
        return rc;
    model m;
    engine e;
    tokenizer *tok = NULL;
    sampler s;
    if ((rc = open_all("chat", &o, &m, &e, &tok, &s)) >= 0)
        return rc;
    const bool interactive = isatty(STDIN_FILENO);
    dsq_error err = {0};
    token_list history = {0}, turn = {0};
    char *line = NULL;
    size_t cap = 0, len, line_no = 0;
    int pending = -1;
    rc = DSQ_OK;
    for (;;) {
        if (interactive)
            fputs("> ", stderr);
        /* a capped line: stdin without newlines (/dev/zero) is an error, not unbounded memory */
        rc = input_read_line(stdin, "stdin", ++line_no, INPUT_CAP_LINE, &line, &cap, &len, &err);
        if (rc < 0) {
            rc = DSQ_OK;
            break;
        }
        if (!rc && strlen(line) != len)
            rc = dsq_fail(&err, DSQ_EINPUT, "stdin: line %zu contains a NUL byte", line_no);
        if (rc)
            break;
        while (len > 0 && line[len - 1] == '\r')
            line[--len] = 0;
        if (len == 0)
            continue;
        if ((rc = turn_tokens(tok, o.system, line, pending, &turn, &err)))
            break;
        gen_stats st;
        answer_sink sink = {0};
        rc = generate(&e, tok, &s, turn.ids, turn.n, (int)o.n_predict, write_answer, &sink,
                      &history, &st, &err);
        fputc('\n', stdout);
        fflush(stdout);
        if (rc)
            break;
        pending = history.ids[history.n - 1];
        if (o.verbose)
            print_stats(&st);
        if (st.hit_context) {
            fprintf(stderr, "dsq chat: the context (--ctx %d) is full; ending the chat\n", e.ctx);
            break;
        }
    }
    free(line);
    token_list_free(&turn);
    token_list_free(&history);
    sampler_free(&s);
    tokenizer_free(tok);
    engine_close(&e);
    model_close(&m);
    return rc ? cli_report("chat", &err) : 0;
}
