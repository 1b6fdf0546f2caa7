/* dsq serve: the OpenAI-compatible HTTP server's options, startup and clean shutdown. */
#include <getopt.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "cli_backend.h"
#include "serve_engine.h"
#include "serve_http.h"
#include "serve_log.h"
#include "serve_queue.h"

static const char serve_help[] =
    "usage: dsq serve MODEL.dsq [options]\n"
    "\n"
    "Serves the model over the OpenAI HTTP API, with the tokenizer, chat format and sampler of\n"
    "dsq run and dsq chat:\n"
    "  GET  /v1/models            the one model served (its id: --model-name)\n"
    "  POST /v1/chat/completions  messages (system, developer, user, assistant) in the model's\n"
    "                             chat format, as dsq chat builds it\n"
    "  POST /v1/completions       prompt: a string or an array of token ids (BOS added as in\n"
    "                             dsq run)\n"
    "  GET  /health               {\"status\": \"ok\", \"waiting\": N, \"running\": N}\n"
    "Both completion endpoints take \"stream\": true (server-sent events, one chunk per decoded\n"
    "piece of text, ending with 'data: [DONE]'; \"stream_options\": {\"include_usage\": true} "
    "adds\n"
    "a usage chunk), max_tokens (max_completion_tokens), temperature (default 1, 0 = greedy),\n"
    "top_p, top_k, min_p, seed, stop (up to 4 strings, caught across token boundaries and left\n"
    "out of the text), frequency_penalty, presence_penalty, repetition_penalty and\n"
    "repeat_last_n. Greedy or seeded output equals dsq run's for the same prompt and options.\n"
    "max_tokens defaults to the rest of the context for chat and 16 for completions. Answers\n"
    "carry usage (prompt, completion and cached prompt tokens) and finish_reason 'stop' or\n"
    "'length'. Unknown fields are ignored; a field of the wrong type or out of range gets 400\n"
    "with an OpenAI-style error naming it; n > 1, logprobs, echo, tools and logit_bias are\n"
    "refused with 400.\n"
    "\n"
    "The model runs one request at a time; others wait in a queue (429 when it is full). A\n"
    "client that disconnects stops its generation at the next token. The cache keeps the\n"
    "previous request's tokens: a prompt that extends them (the next turn of a chat) runs only\n"
    "its new part.\n"
    "\n"
    "Each request is logged on stderr in one line: client, method, path, status, time, and for\n"
    "generations the prompt, cached and completion tokens, tokens/s and how it ended. SIGINT or\n"
    "SIGTERM stops taking requests, answers 503 to those waiting, lets the running one finish\n"
    "(a second signal stops it at its next token) and exits 0.\n"
    "\n"
    "options:\n"
    "      --host ADDR         numeric address to listen on (default 127.0.0.1, this machine\n"
    "                          only; 0.0.0.0 or :: opens it to the network)\n"
    "      --port N            TCP port (default 8080; 0 = any free port, printed at start)\n"
    "      --api-key KEY       require 'Authorization: Bearer KEY' on every request (else 401)\n"
    "      --api-key-file F    the same, the key read from the first line of F (keeps it out\n"
    "                          of the process list)\n"
    "      --model-name NAME   the model id (default: the file name without .dsq)\n"
    "  -c, --ctx N             context size in tokens (default 4096 or the model's maximum);\n"
    "                          prompt + max_tokens must fit (else 400 with the numbers)\n"
    "      --threads N         compute threads of the model (default: all cores)\n"
    "      --queue N           requests that may wait for the model (default 32)\n"
    "      --max-body BYTES    largest request body (default 1048576; else 413)\n"
    "      --max-header BYTES  largest request line + headers (default 16384; else 431)\n"
    "      --max-connections N open connections at most (default 64)\n"
    "      --timeout S         seconds a connection may stay idle (default 30)\n"
    "      --http-threads N    HTTP threads (default 2)\n"
    "      --json-logs         log lines as JSON objects\n"
    CLI_BACKEND_HELP
    "  -h, --help              this text\n";

enum {
    OPT_HOST = 256,
    OPT_PORT,
    OPT_KEY,
    OPT_KEY_FILE,
    OPT_NAME,
    OPT_THREADS,
    OPT_QUEUE,
    OPT_BODY,
    OPT_HEADER,
    OPT_CONNS,
    OPT_TIMEOUT,
    OPT_HTTP_THREADS,
    OPT_JSON,
};

/* The first line of path, malloc'd; NULL with a message. */
static char *read_key_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        return NULL;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, f);
    fclose(f);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = 0;
    if (n <= 0) {
        fprintf(stderr, "dsq serve: %s: the first line (the key) is empty\n", path);
        free(line);
        return NULL;
    }
    return line;
}

static char *default_model_name(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (n > 4 && !strcmp(base + n - 4, ".dsq"))
        n -= 4;
    return strndup(base, n);
}

/* Waits up to ms for one of the signals in set; true if one came. */
static bool wait_signal(const sigset_t *set, long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    return sigtimedwait(set, NULL, &ts) > 0;
}

int cmd_serve(int argc, char **argv)
{
    static const struct option opts[] = {{"host", required_argument, 0, OPT_HOST},
                                         {"port", required_argument, 0, OPT_PORT},
                                         {"api-key", required_argument, 0, OPT_KEY},
                                         {"api-key-file", required_argument, 0, OPT_KEY_FILE},
                                         {"model-name", required_argument, 0, OPT_NAME},
                                         {"ctx", required_argument, 0, 'c'},
                                         {"threads", required_argument, 0, OPT_THREADS},
                                         {"queue", required_argument, 0, OPT_QUEUE},
                                         {"max-body", required_argument, 0, OPT_BODY},
                                         {"max-header", required_argument, 0, OPT_HEADER},
                                         {"max-connections", required_argument, 0, OPT_CONNS},
                                         {"timeout", required_argument, 0, OPT_TIMEOUT},
                                         {"http-threads", required_argument, 0, OPT_HTTP_THREADS},
                                         {"json-logs", no_argument, 0, OPT_JSON},
                                         CLI_BACKEND_OPTIONS,
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    serve_http_options o = {.host = "127.0.0.1",
                            .port = 8080,
                            .max_body = 1 << 20,
                            .max_header = 16 << 10,
                            .max_connections = 64,
                            .idle_timeout = 30,
                            .threads = 2};
    engine_options eo = {0};
    long v, ctx = 0, threads = 0, queue = 32;
    const char *key_file = NULL, *name = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        bool ok = true;
        switch (c) {
        case OPT_HOST:
            o.host = optarg;
            break;
        case OPT_PORT:
            ok = cli_parse_int("serve", "--port", optarg, 0, 65535, &v);
            o.port = (int)v;
            break;
        case OPT_KEY:
            o.api_key = optarg;
            break;
        case OPT_KEY_FILE:
            key_file = optarg;
            break;
        case OPT_NAME:
            name = optarg;
            break;
        case 'c':
            ok = cli_parse_int("serve", "--ctx", optarg, 1, 1 << 24, &ctx);
            break;
        case OPT_THREADS:
            ok = cli_parse_int("serve", "--threads", optarg, 1, 1024, &threads);
            break;
        case OPT_QUEUE:
            ok = cli_parse_int("serve", "--queue", optarg, 1, 100000, &queue);
            break;
        case OPT_BODY:
            ok = cli_parse_int("serve", "--max-body", optarg, 1024, 1L << 30, &v);
            o.max_body = (size_t)v;
            break;
        case OPT_HEADER:
            ok = cli_parse_int("serve", "--max-header", optarg, 1024, 1L << 20, &v);
            o.max_header = (size_t)v;
            break;
        case OPT_CONNS:
            ok = cli_parse_int("serve", "--max-connections", optarg, 1, 100000, &v);
            o.max_connections = (int)v;
            break;
        case OPT_TIMEOUT:
            ok = cli_parse_int("serve", "--timeout", optarg, 1, 86400, &v);
            o.idle_timeout = (int)v;
            break;
        case OPT_HTTP_THREADS:
            ok = cli_parse_int("serve", "--http-threads", optarg, 1, 256, &v);
            o.threads = (int)v;
            break;
        case OPT_JSON:
            o.json_logs = true;
            break;
        case 'h':
            fputs(serve_help, stdout);
            return 0;
        default: {
            const int taken = cli_backend_option("serve", c, optarg, &eo);
            if (!taken)
                return cli_usage_error("serve", "unknown option");
            ok = taken > 0;
        }
        }
        if (!ok)
            return DSQ_EUSAGE;
    }
    if (optind != argc - 1)
        return cli_usage_error("serve", "expected exactly one .dsq file");
    if (o.api_key && key_file)
        return cli_usage_error("serve", "give --api-key or --api-key-file, not both");
    if (o.api_key && !o.api_key[0])
        return cli_usage_error("serve", "--api-key is empty");
    const char *path = argv[optind];
    char *key = key_file ? read_key_file(key_file) : NULL;
    if (key_file && !key)
        return DSQ_EUSAGE;
    if (key)
        o.api_key = key;
    char *model_name = name ? strdup(name) : default_model_name(path);
    o.model_name = model_name;
    if (threads)
        omp_set_num_threads((int)threads);

    /* Signals are taken by this thread alone (sigtimedwait); every thread started from here on
     * inherits the mask. Writes to a closed socket return an error instead of killing us. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    dsq_error err = {0};
    serve_engine se;
    serve_queue queue_;
    serve_http *http = NULL;
    int rc = serve_engine_open(&se, path, (int)ctx, &eo, &err);
    if (rc) {
        free(key);
        free(model_name);
        return cli_report("serve", &err);
    }
    if ((rc = serve_queue_start(&queue_, &se, (int)queue, &err)) ||
        (rc = serve_http_start(&http, &o, &se, &queue_, &err))) {
        serve_queue_join(&queue_);
        serve_engine_close(&se);
        free(key);
        free(model_name);
        return cli_report("serve", &err);
    }
    /* chat requests are rendered in DeepSeek's format (as dsq chat does); say so when the
     * file's own template looks otherwise */
    const char *tmpl = json_string_value(json_object_get(se.m.file.file.meta, "chat_template"));
    if (tmpl && (!strstr(tmpl, "User: ") || !strstr(tmpl, "Assistant:")))
        serve_log_event(o.json_logs, "warning",
                        "the file's chat template is not DeepSeek's 'User: ... Assistant:' "
                        "format, which /v1/chat/completions uses");
    char detail[512];
    int port = serve_http_port(http);
    snprintf(detail, sizeof detail,
             "http://%s%s%s:%d/v1 (model %s, context %d tokens, queue %ld, %d compute threads%s)",
             strchr(o.host, ':') ? "[" : "", o.host, strchr(o.host, ':') ? "]" : "", port,
             model_name, serve_engine_ctx(&se), queue, omp_get_max_threads(),
             o.api_key ? ", API key required" : "");
    serve_log_event(o.json_logs, "listening", detail);

    int sig = 0;
    sigwait(&stop_signals, &sig);
    serve_log_event(o.json_logs, "shutting down",
                    "no new requests; waiting ones get 503; the running one finishes (signal "
                    "again to stop it)");
    serve_http_refuse_new(http);
    serve_queue_stop(&queue_);
    while (!serve_queue_stopped(&queue_))
        if (wait_signal(&stop_signals, 100)) {
            serve_queue_cancel_running(&queue_);
            serve_log_event(o.json_logs, "shutting down", "stopping the running request");
        }
    /* answers and streams already produced go out; at most 10 s for slow readers */
    for (int i = 0; i < 100 && serve_http_jobs_open(http) > 0; i++)
        wait_signal(&stop_signals, 100);
    serve_http_stop(http);
    serve_queue_join(&queue_);
    serve_engine_close(&se);
    serve_log_event(o.json_logs, "stopped", "");
    free(key);
    free(model_name);
    return 0;
}
