/* dsq serve's log on stderr: one line per request (method, path, status, tokens, time,
 * tokens/s), as text or, with --json-logs, as one JSON object per line. */
#ifndef DSQ_SERVE_LOG_H
#define DSQ_SERVE_LOG_H

#include <stdbool.h>

typedef struct {
    const char *client, *method, *path;
    int status;
    int prompt_tokens, cached_tokens, completion_tokens; /* -1: no generation */
    double seconds;      /* from the request's first byte to its end */
    double gen_seconds;  /* of generation on the model thread, 0 if none */
    const char *outcome; /* "stop", "length", "cancelled", "error" or NULL */
} serve_log_entry;

void serve_log_request(bool json, const serve_log_entry *e);
/* A server event (start, shutdown) in the same format. */
void serve_log_event(bool json, const char *event, const char *detail);

#endif
