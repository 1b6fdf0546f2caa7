/* Request log lines, each written to stderr with one write so lines from threads never mix. */
#include "serve_log.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void timestamp(char *buf, size_t n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t k = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + k, n - k, ".%03ldZ", ts.tv_nsec / 1000000);
}

static void write_line(const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, s, n);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

static void write_json(json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (!s)
        return;
    size_t n = strlen(s);
    char *line = malloc(n + 2);
    if (line) {
        memcpy(line, s, n);
        line[n] = '\n';
        write_line(line, n + 1);
    }
    free(line);
    free(s);
}

void serve_log_request(bool json, const serve_log_entry *e)
{
    char ts[40];
    timestamp(ts, sizeof ts);
    double tps =
        e->gen_seconds > 0 && e->completion_tokens > 0 ? e->completion_tokens / e->gen_seconds : 0;
    if (json) {
        /* status null: libmicrohttpd answered or closed the connection itself */
        json_t *o = json_pack(
            "{s:s, s:s, s:s, s:s, s:o, s:f}", "time", ts, "client", e->client ? e->client : "",
            "method", e->method ? e->method : "", "path", e->path ? e->path : "", "status",
            e->status ? json_integer(e->status) : json_null(), "seconds", e->seconds);
        if (o && e->prompt_tokens >= 0) {
            json_object_set_new(o, "prompt_tokens", json_integer(e->prompt_tokens));
            json_object_set_new(o, "cached_tokens", json_integer(e->cached_tokens));
            json_object_set_new(o, "completion_tokens", json_integer(e->completion_tokens));
            json_object_set_new(o, "tokens_per_second", json_real(tps));
        }
        if (o && e->outcome)
            json_object_set_new(o, "finish", json_string(e->outcome));
        write_json(o);
        return;
    }
    char line[1024];
    char status[16] = "-";
    if (e->status)
        snprintf(status, sizeof status, "%d", e->status);
    int n = snprintf(line, sizeof line, "%s %s %s %.200s %s %.3fs", ts, e->client ? e->client : "-",
                     e->method ? e->method : "-", e->path ? e->path : "-", status, e->seconds);
    if (e->prompt_tokens >= 0 && n > 0 && (size_t)n < sizeof line)
        n += snprintf(line + n, sizeof line - (size_t)n,
                      " prompt=%d cached=%d completion=%d %.1f tok/s", e->prompt_tokens,
                      e->cached_tokens, e->completion_tokens, tps);
    if (e->outcome && n > 0 && (size_t)n < sizeof line)
        n += snprintf(line + n, sizeof line - (size_t)n, " %s", e->outcome);
    if (n > 0 && (size_t)n < sizeof line - 1) {
        line[n++] = '\n';
        write_line(line, (size_t)n);
    }
}

void serve_log_event(bool json, const char *event, const char *detail)
{
    char ts[40];
    timestamp(ts, sizeof ts);
    if (json) {
        write_json(json_pack("{s:s, s:s, s:s}", "time", ts, "event", event, "detail", detail));
        return;
    }
    char line[1024];
    int n = snprintf(line, sizeof line, "%s dsq serve: %s%s%.900s\n", ts, event,
                     detail[0] ? ": " : "", detail);
    if (n > 0)
        write_line(line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}
