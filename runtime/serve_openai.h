/* The OpenAI API as dsq serve speaks it: request bodies of /v1/chat/completions and
 * /v1/completions checked field by field and turned into what to generate, and the JSON of
 * responses, stream chunks and errors ({"error": {"message", "type", "param", "code"}}). */
#ifndef DSQ_SERVE_OPENAI_H
#define DSQ_SERVE_OPENAI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "serve_queue.h"
#include "tokenizer.h"

typedef enum { OPENAI_CHAT, OPENAI_COMPLETION } openai_kind;

typedef struct {
    int status;       /* HTTP status */
    const char *type; /* "invalid_request_error", ... */
    const char *code; /* or NULL */
    char param[64];   /* the field at fault, or "" */
    char message[768];
} openai_error;

/* Sets e and returns status, so callers can `return openai_fail(...)`. */
int openai_fail(openai_error *e, int status, const char *type, const char *code, const char *param,
                const char *fmt, ...) __attribute__((format(printf, 6, 7)));

typedef struct {
    openai_kind kind;
    bool stream, include_usage;
    serve_gen_params gen;
} openai_request;

/* What a request may not exceed, and what the server answers to. */
typedef struct {
    const tokenizer *tok;
    int ctx;                /* tokens of context: prompt + max_tokens must fit */
    const char *model_name; /* a request naming another model gets 404 */
    uint64_t seed;          /* used when the request gives no seed */
} openai_limits;

/* Parses and checks a request body. Returns 0, or an HTTP status with e set (the message names
 * the field and the value or numbers at fault). Unknown fields are ignored. */
int openai_parse_request(openai_kind kind, const char *body, size_t len, const openai_limits *lim,
                         openai_request *out, openai_error *e);
void openai_request_free(openai_request *r);

/* Response bodies (malloc'd, NUL-terminated; NULL when out of memory). */
char *openai_error_body(const openai_error *e);
char *openai_models_body(const char *model_name, long created);

typedef struct {
    openai_kind kind;
    const char *id, *model;
    long created;
} openai_reply;

typedef struct {
    int prompt, cached, completion;
} openai_usage;

const char *openai_finish_reason(serve_finish f); /* "stop", "length" or NULL */
char *openai_response_body(const openai_reply *r, const char *text, size_t len, serve_finish f,
                           const openai_usage *u);
/* One server-sent event "data: {...}\n\n": the assistant role (chat, first), a piece of text, or
 * the end with its finish reason (text NULL). */
char *openai_chunk(const openai_reply *r, bool role, const char *text, size_t len,
                   const char *finish);
char *openai_usage_chunk(const openai_reply *r, const openai_usage *u);
char *openai_error_event(const openai_error *e);

#endif
