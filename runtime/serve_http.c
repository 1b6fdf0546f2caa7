/* libmicrohttpd wiring for dsq serve. A request waiting for the model has its connection
 * suspended (no thread is held); the model thread resumes it when there is output. */
#include "serve_http.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "progress.h"
#include "serve_log.h"
#include "serve_openai.h"

struct serve_http {
    struct MHD_Daemon *d;
    serve_http_options o;
    serve_engine *engine;
    serve_queue *queue;
    long created;
    atomic_bool refusing;
    atomic_int jobs_open;
    atomic_ullong counter; /* ids and default seeds */
    uint64_t seed_base;
};

typedef enum { ROUTE_NONE, ROUTE_HEALTH, ROUTE_MODELS, ROUTE_CHAT, ROUTE_COMPLETIONS } route;

typedef struct {
    serve_http *h;
    struct MHD_Connection *conn;
    char method[16], path[256], client[64];
    double t0;
    bool started;
    route rt;
    int status;          /* what was queued (0: nothing yet) */
    int deferred_status; /* an error to answer once the body has been read */
    openai_error deferred;
    char *body;
    size_t body_len;
    bool body_too_large;
    openai_kind kind;
    bool stream, include_usage;
    int n_prompt;
    char id[48];
    serve_job *job;
    /* event stream state (MHD thread only) */
    char *ev;
    size_t ev_len, ev_off;
    int pieces_sent;
    bool role_sent, end_sent, usage_sent, done_sent, cancelled;
} http_req;

/* ---- answers ------------------------------------------------------------------------------ */

static enum MHD_Result queue_body(http_req *r, int status, char *body, const char *type)
{
    if (!body) {
        status = 500;
        body = strdup("{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\","
                      "\"param\":null,\"code\":null}}");
        if (!body)
            return MHD_NO;
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (status == 405)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW,
                                r->rt == ROUTE_CHAT || r->rt == ROUTE_COMPLETIONS ? "POST" : "GET");
    if (status == 401)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    r->status = status;
    enum MHD_Result ok = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ok;
}

static enum MHD_Result queue_json(http_req *r, int status, char *body)
{
    return queue_body(r, status, body, "application/json");
}

static enum MHD_Result queue_error(http_req *r, const openai_error *e)
{
    return queue_json(r, e->status, openai_error_body(e));
}

static enum MHD_Result fail(http_req *r, int status, const char *type, const char *code,
                            const char *fmt, const char *arg)
{
    openai_error e;
    openai_fail(&e, status, type, code, NULL, fmt, arg);
    return queue_error(r, &e);
}

/* ---- routes, key, body -------------------------------------------------------------------- */

static route route_of(const char *path)
{
    if (!strcmp(path, "/health"))
        return ROUTE_HEALTH;
    if (!strcmp(path, "/v1/models"))
        return ROUTE_MODELS;
    if (!strcmp(path, "/v1/chat/completions"))
        return ROUTE_CHAT;
    if (!strcmp(path, "/v1/completions"))
        return ROUTE_COMPLETIONS;
    return ROUTE_NONE;
}

/* Compares in time that depends on the lengths only. */
static bool same_secret(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    unsigned char diff = (unsigned char)(na != nb);
    for (size_t i = 0; i < na; i++)
        diff |= (unsigned char)(a[i] ^ b[i % (nb ? nb : 1)]);
    return diff == 0;
}

static bool authorized(http_req *r)
{
    if (!r->h->o.api_key)
        return true;
    const char *auth =
        MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    return auth && !strncmp(auth, "Bearer ", 7) && same_secret(auth + 7, r->h->o.api_key);
}

static enum MHD_Result answer_health(http_req *r)
{
    int waiting, running;
    serve_queue_counts(r->h->queue, &waiting, &running);
    bool refusing = atomic_load(&r->h->refusing);
    json_t *o = json_pack("{s:s, s:i, s:i}", "status", refusing ? "shutting down" : "ok", "waiting",
                          waiting, "running", running);
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return queue_json(r, refusing ? 503 : 200, body);
}

static enum MHD_Result add_header_size(void *cls, enum MHD_ValueKind kind, const char *key,
                                       const char *value)
{
    (void)kind;
    *(size_t *)cls += strlen(key) + (value ? strlen(value) : 0) + 4; /* ": " and CRLF */
    return MHD_YES;
}

/* Called on the first access (headers read): decides everything the body cannot change. */
static enum MHD_Result on_headers(http_req *r, const char *method)
{
    snprintf(r->method, sizeof r->method, "%s", method);
    r->rt = route_of(r->path);
    const bool post = !strcmp(method, "POST"), get = !strcmp(method, "GET");
    openai_error *e = &r->deferred;
    size_t header_bytes = strlen(r->path);
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, add_header_size, &header_bytes);
    if (header_bytes > r->h->o.max_header) {
        openai_fail(e, 431, "invalid_request_error", "headers_too_large", NULL,
                    "the request line and headers have about %zu bytes; the limit is %zu "
                    "(--max-header)",
                    header_bytes, r->h->o.max_header);
        return queue_error(r, e);
    }
    if (!authorized(r))
        r->deferred_status = openai_fail(e, 401, "invalid_request_error", "invalid_api_key", NULL,
                                         "missing or wrong API key: send the header "
                                         "'Authorization: Bearer KEY'");
    else if (r->rt == ROUTE_NONE)
        r->deferred_status = openai_fail(e, 404, "invalid_request_error", "not_found", NULL,
                                         "no such path: %.200s (the paths are /v1/models, "
                                         "/v1/chat/completions, /v1/completions, /health)",
                                         r->path);
    else if ((r->rt <= ROUTE_MODELS && !get) || (r->rt >= ROUTE_CHAT && !post))
        r->deferred_status = openai_fail(e, 405, "invalid_request_error", "method_not_allowed",
                                         NULL, "%s takes %s, not %.20s", r->path,
                                         r->rt <= ROUTE_MODELS ? "GET" : "POST", method);
    else if (atomic_load(&r->h->refusing) && r->rt != ROUTE_HEALTH)
        r->deferred_status = openai_fail(e, 503, "server_error", "shutting_down", NULL,
                                         "the server is shutting down");
    const char *cl =
        MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoull(cl, NULL, 10) > r->h->o.max_body) {
        if (r->deferred_status)
            return queue_error(r, e);
        char msg[160];
        snprintf(msg, sizeof msg, "the body has %s bytes; the limit is %zu (--max-body)", cl,
                 r->h->o.max_body);
        return fail(r, 413, "invalid_request_error", "body_too_large", "%s", msg);
    }
    if (r->deferred_status && !cl && !post)
        return queue_error(r, e);
    if (!r->deferred_status && r->rt == ROUTE_HEALTH)
        return answer_health(r);
    if (!r->deferred_status && r->rt == ROUTE_MODELS)
        return queue_json(r, 200, openai_models_body(r->h->o.model_name, r->h->created));
    return MHD_YES; /* read the body */
}

static bool add_body(http_req *r, const char *data, size_t n)
{
    if (r->body_too_large || r->deferred_status)
        return true; /* read and dropped */
    if (r->body_len + n > r->h->o.max_body) {
        r->body_too_large = true;
        free(r->body);
        r->body = NULL;
        return true;
    }
    char *b = realloc(r->body, r->body_len + n + 1);
    if (!b)
        return false;
    memcpy(b + r->body_len, data, n);
    r->body = b;
    r->body_len += n;
    return true;
}

/* ---- generation requests ------------------------------------------------------------------ */

static void resume_connection(void *conn)
{
    MHD_resume_connection(conn);
}

static openai_reply reply_of(const http_req *r)
{
    return (openai_reply){
        .kind = r->kind, .id = r->id, .model = r->h->o.model_name, .created = r->h->created};
}

static openai_usage usage_of(const http_req *r)
{
    return (openai_usage){.prompt = r->n_prompt,
                          .cached = atomic_load(&r->job->n_cached),
                          .completion = atomic_load(&r->job->n_generated)};
}

/* Under job->mu with the job done: the whole answer of a non-streaming request. */
static enum MHD_Result answer_done(http_req *r)
{
    serve_job *j = r->job;
    if (j->finish == FINISH_CANCELLED)
        return MHD_NO; /* the client is gone: close */
    if (j->finish == FINISH_ERROR) {
        openai_error e;
        openai_fail(&e, j->status, "server_error", j->code, NULL, "%s", j->error);
        return queue_error(r, &e);
    }
    openai_reply rep = reply_of(r);
    openai_usage u = usage_of(r);
    return queue_json(r, 200, openai_response_body(&rep, j->text, j->text_len, j->finish, &u));
}

/* Under job->mu: the next event of a stream into r->ev; false when none is ready yet. */
static bool next_event(http_req *r)
{
    serve_job *j = r->job;
    openai_reply rep = reply_of(r);
    char *ev = NULL;
    if (r->kind == OPENAI_CHAT && !r->role_sent && !(j->done && j->finish == FINISH_ERROR)) {
        ev = openai_chunk(&rep, true, NULL, 0, NULL);
        r->role_sent = true;
    } else if (r->pieces_sent < j->n_pieces) {
        size_t from = serve_job_piece_start(j, r->pieces_sent), to = j->piece_end[r->pieces_sent];
        ev = openai_chunk(&rep, false, j->text + from, to - from, NULL);
        r->pieces_sent++;
    } else if (!j->done) {
        return false;
    } else if (j->finish == FINISH_CANCELLED) {
        r->cancelled = true; /* the client is gone: end without the closing events */
        return false;
    } else if (!r->end_sent) {
        r->end_sent = true;
        if (j->finish == FINISH_ERROR) {
            openai_error e;
            openai_fail(&e, j->status, "server_error", j->code, NULL, "%s", j->error);
            ev = openai_error_event(&e);
        } else {
            ev = openai_chunk(&rep, false, NULL, 0, openai_finish_reason(j->finish));
        }
    } else if (r->include_usage && !r->usage_sent) {
        openai_usage u = usage_of(r);
        ev = openai_usage_chunk(&rep, &u);
        r->usage_sent = true;
    } else if (!r->done_sent) {
        ev = strdup("data: [DONE]\n\n");
        r->done_sent = true;
    } else {
        return false;
    }
    free(r->ev);
    r->ev = ev;
    r->ev_len = ev ? strlen(ev) : 0;
    r->ev_off = 0;
    return true;
}

static ssize_t read_stream(void *cls, uint64_t pos, char *buf, size_t max)
{
    http_req *r = cls;
    serve_job *j = r->job;
    (void)pos;
    pthread_mutex_lock(&j->mu);
    ssize_t n = 0;
    for (;;) {
        if (r->ev_off < r->ev_len) {
            size_t k = r->ev_len - r->ev_off < max ? r->ev_len - r->ev_off : max;
            memcpy(buf, r->ev + r->ev_off, k);
            r->ev_off += k;
            n = (ssize_t)k;
            break;
        }
        if (!next_event(r)) {
            if (r->cancelled) {
                n = MHD_CONTENT_READER_END_WITH_ERROR;
            } else if (r->done_sent) {
                n = MHD_CONTENT_READER_END_OF_STREAM;
            } else { /* nothing yet: park until the model thread has output */
                j->suspended = true;
                MHD_suspend_connection(r->conn);
                n = 0;
            }
            break;
        }
        if (!r->ev) { /* out of memory: end the stream as an error */
            n = MHD_CONTENT_READER_END_WITH_ERROR;
            break;
        }
    }
    pthread_mutex_unlock(&j->mu);
    return n;
}

static enum MHD_Result start_stream(http_req *r)
{
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, read_stream, r, NULL);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    r->status = 200;
    enum MHD_Result ok = MHD_queue_response(r->conn, 200, resp);
    MHD_destroy_response(resp);
    return ok;
}

static enum MHD_Result submit(http_req *r)
{
    serve_http *h = r->h;
    r->kind = r->rt == ROUTE_CHAT ? OPENAI_CHAT : OPENAI_COMPLETION;
    unsigned long long k = atomic_fetch_add(&h->counter, 1);
    openai_limits lim = {.tok = h->engine->tok,
                         .ctx = serve_engine_ctx(h->engine),
                         .model_name = h->o.model_name,
                         .seed = h->seed_base ^ (k * 0x9e3779b97f4a7c15ull)};
    openai_request req;
    openai_error e;
    if (openai_parse_request(r->kind, r->body ? r->body : "", r->body_len, &lim, &req, &e))
        return queue_error(r, &e);
    snprintf(r->id, sizeof r->id, "%s-%08llx%06llx", r->kind == OPENAI_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long long)(h->seed_base & 0xffffffffu), k);
    r->stream = req.stream;
    r->include_usage = req.include_usage;
    r->n_prompt = req.gen.n_prompt;
    serve_job *j = serve_job_new(&req.gen);
    openai_request_free(&req);
    if (!j)
        return fail(r, 503, "server_error", NULL, "%s", "out of memory");
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    j->conn = r->conn;
    j->fd = ci ? ci->connect_fd : -1;
    j->resume = resume_connection;
    int q = serve_queue_submit(h->queue, j);
    if (q != SERVE_QUEUED) {
        serve_job_release(j);
        return q == SERVE_QUEUE_FULL
                   ? fail(r, 429, "rate_limit_error", "queue_full", "%s",
                          "too many requests are waiting for the model; retry later")
                   : fail(r, 503, "server_error", "shutting_down", "%s",
                          "the server is shutting down");
    }
    r->job = j;
    atomic_fetch_add(&h->jobs_open, 1);
    if (r->stream)
        return start_stream(r);
    pthread_mutex_lock(&j->mu);
    enum MHD_Result ok = MHD_YES;
    if (j->done) {
        ok = answer_done(r);
    } else {
        j->suspended = true;
        MHD_suspend_connection(r->conn);
    }
    pthread_mutex_unlock(&j->mu);
    return ok;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
    http_req *r = *con_cls;
    (void)cls, (void)url, (void)version;
    if (!r)
        return MHD_NO;
    r->conn = conn;
    if (!r->started) {
        r->started = true;
        return on_headers(r, method);
    }
    if (*upload_size) {
        bool ok = add_body(r, upload_data, *upload_size);
        *upload_size = 0;
        return ok ? MHD_YES : MHD_NO;
    }
    if (r->status) /* already answered (a resumed stream never comes here) */
        return MHD_YES;
    if (r->deferred_status)
        return queue_error(r, &r->deferred);
    if (r->body_too_large) {
        char msg[120];
        snprintf(msg, sizeof msg, "the body exceeds the limit of %zu bytes (--max-body)",
                 r->h->o.max_body);
        return fail(r, 413, "invalid_request_error", "body_too_large", "%s", msg);
    }
    if (!r->job)
        return submit(r);
    /* resumed by the model thread: the job is done */
    pthread_mutex_lock(&r->job->mu);
    enum MHD_Result ok = MHD_YES;
    if (r->job->done) {
        ok = answer_done(r);
    } else {
        r->job->suspended = true;
        MHD_suspend_connection(conn);
    }
    pthread_mutex_unlock(&r->job->mu);
    return ok;
}

/* ---- request start and end ---------------------------------------------------------------- */

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    http_req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->h = cls;
    r->conn = conn;
    r->t0 = progress_now();
    size_t n = strcspn(uri, "?");
    snprintf(r->path, sizeof r->path, "%.*s", (int)(n < 255 ? n : 255), uri);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, r->client,
                      sizeof r->client);
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, r->client,
                      sizeof r->client);
    }
    return r;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode how)
{
    serve_http *h = cls;
    http_req *r = *con_cls;
    (void)conn;
    if (!r)
        return;
    *con_cls = NULL;
    serve_log_entry e = {.client = r->client,
                         .method = r->method[0] ? r->method : NULL,
                         .path = r->path,
                         .status = r->status,
                         .prompt_tokens = -1,
                         .seconds = progress_now() - r->t0};
    serve_job *j = r->job;
    if (j) {
        bool finished = atomic_load(&j->finished);
        if (!finished || how != MHD_REQUEST_TERMINATED_COMPLETED_OK)
            atomic_store(&j->cancelled, true); /* the model thread stops at its next token */
        e.prompt_tokens = r->n_prompt;
        e.cached_tokens = atomic_load(&j->n_cached);
        e.completion_tokens = atomic_load(&j->n_generated);
        if (finished && j->t_done > j->t_started)
            e.gen_seconds = j->t_done - j->t_started;
        e.outcome =
            !finished || how != MHD_REQUEST_TERMINATED_COMPLETED_OK || j->finish == FINISH_CANCELLED
                ? "cancelled"
            : j->finish == FINISH_ERROR ? "error"
                                        : openai_finish_reason(j->finish);
        serve_job_release(j);
        atomic_fetch_sub(&h->jobs_open, 1);
    } else if (how != MHD_REQUEST_TERMINATED_COMPLETED_OK && !r->status) {
        e.outcome = "closed";
    }
    serve_log_request(h->o.json_logs, &e);
    free(r->body);
    free(r->ev);
    free(r);
}

static void log_mhd(void *cls, const char *fmt, va_list ap)
{
    serve_http *h = cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = 0;
    serve_log_event(h->o.json_logs, "http", msg);
}

/* ---- daemon ------------------------------------------------------------------------------- */

int serve_http_start(serve_http **out, const serve_http_options *o, serve_engine *e, serve_queue *q,
                     dsq_error *err)
{
    *out = NULL;
    struct sockaddr_storage ss = {0};
    socklen_t ss_len;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_EPOLL |
                     MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, o->host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)o->port);
        ss_len = sizeof *v4;
    } else if (inet_pton(AF_INET6, o->host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)o->port);
        ss_len = sizeof *v6;
        flags |= MHD_USE_IPv6;
    } else {
        return dsq_fail(err, DSQ_EUSAGE, "--host %s is not a numeric IPv4 or IPv6 address",
                        o->host);
    }
    (void)ss_len;
    serve_http *h = calloc(1, sizeof *h);
    if (!h)
        return dsq_fail(err, DSQ_ERESOURCE, "out of memory");
    h->o = *o;
    h->engine = e;
    h->queue = q;
    h->created = (long)time(NULL);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    h->seed_base = (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec;
    atomic_init(&h->refusing, false);
    atomic_init(&h->jobs_open, 0);
    atomic_init(&h->counter, 1);
    /* the connection's memory pool holds the request line and headers, then the read and
     * write buffers; headers past max_header are answered by libmicrohttpd with 431 */
    size_t pool = o->max_header + 16 * 1024;
    h->d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, log_mhd, h,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)o->threads, MHD_OPTION_CONNECTION_LIMIT, (unsigned)o->max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)o->idle_timeout,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, pool, MHD_OPTION_URI_LOG_CALLBACK, on_uri, h,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_END);
    if (!h->d) {
        free(h);
        return dsq_fail(err, DSQ_EUSAGE,
                        "cannot listen on %s port %d (in use, or not an "
                        "address of this machine?)",
                        o->host, o->port);
    }
    *out = h;
    return DSQ_OK;
}

int serve_http_port(const serve_http *h)
{
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    return di ? di->port : -1;
}

void serve_http_refuse_new(serve_http *h)
{
    atomic_store(&h->refusing, true);
}

int serve_http_jobs_open(serve_http *h)
{
    return atomic_load(&h->jobs_open);
}

void serve_http_stop(serve_http *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->d);
    free(h);
}
