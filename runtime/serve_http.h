/* dsq serve's HTTP side on GNU libmicrohttpd: routes, API key, limits on bodies, headers,
 * connections and idle time, request bodies into jobs, answers and event streams out of them,
 * and one log line per request. */
#ifndef DSQ_SERVE_HTTP_H
#define DSQ_SERVE_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "serve_engine.h"
#include "serve_queue.h"

typedef struct {
    const char *host;       /* numeric IPv4 or IPv6 address */
    int port;               /* 0: any free port */
    const char *api_key;    /* NULL: no key needed */
    const char *model_name; /* the id /v1/models lists and requests must name */
    size_t max_body;        /* bytes of a request body */
    size_t max_header;      /* bytes of the request line and headers */
    int max_connections;
    int idle_timeout; /* seconds a connection may stay silent */
    int threads;      /* HTTP threads */
    bool json_logs;
} serve_http_options;

typedef struct serve_http serve_http;

int serve_http_start(serve_http **out, const serve_http_options *o, serve_engine *e, serve_queue *q,
                     dsq_error *err);
int serve_http_port(const serve_http *h);
/* From now on new requests get 503. */
void serve_http_refuse_new(serve_http *h);
/* Requests whose job has not yet been answered and released. */
int serve_http_jobs_open(serve_http *h);
/* Closes every connection and frees; call once the model thread has ended. */
void serve_http_stop(serve_http *h);

#endif
