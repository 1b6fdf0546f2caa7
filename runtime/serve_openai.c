/* OpenAI request checking and response JSON for dsq serve. */
#include "serve_openai.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_template.h"
#include "json_error.h"
#include "tokenizer_bpe.h"

#define INVALID "invalid_request_error"
#define MAX_MESSAGES 4096

int openai_fail(openai_error *e, int status, const char *type, const char *code, const char *param,
                const char *fmt, ...)
{
    e->status = status;
    e->type = type;
    e->code = code;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    /* the message quotes the client's bytes (a role, a model name, the JSON parser's "near"
     * text), cut to length anywhere: each byte that is not part of a whole UTF-8 character
     * becomes '?', since the JSON error body cannot carry it */
    unsigned char *m = (unsigned char *)e->message;
    const size_t len = strlen(e->message);
    for (size_t i = 0; i < len;) {
        const int n = utf8_check(m + i, len - i);
        if (n > 0) {
            i += (size_t)n;
        } else {
            m[i] = '?';
            i++;
        }
    }
    return status;
}

/* Optional fields: 0 absent or null, 1 present (value stored), or an HTTP status. */
static int opt_number(const json_t *o, const char *key, double lo, double hi, bool lo_open,
                      double *out, openai_error *e)
{
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_number(v))
        return openai_fail(e, 400, INVALID, NULL, key, "'%s' must be a number, not %s", key,
                           dsq_json_type_name(v));
    double x = json_number_value(v);
    if (!(lo_open ? x > lo : x >= lo) || !(x <= hi))
        return openai_fail(e, 400, INVALID, NULL, key, "'%s' must be in %s%g, %g], not %g", key,
                           lo_open ? "(" : "[", lo, hi, x);
    *out = x;
    return 1;
}

static int opt_int(const json_t *o, const char *key, long long lo, long long hi, long long *out,
                   openai_error *e)
{
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v))
        return openai_fail(e, 400, INVALID, NULL, key, "'%s' must be an integer, not %s", key,
                           dsq_json_type_name(v));
    long long x = json_integer_value(v);
    if (x < lo || x > hi)
        return openai_fail(e, 400, INVALID, NULL, key, "'%s' must be from %lld to %lld, not %lld",
                           key, lo, hi, x);
    *out = x;
    return 1;
}

static int opt_bool(const json_t *o, const char *key, bool *out, openai_error *e)
{
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v))
        return openai_fail(e, 400, INVALID, NULL, key, "'%s' must be a boolean, not %s", key,
                           dsq_json_type_name(v));
    *out = json_is_true(v);
    return 1;
}

/* Features the server does not have: refused rather than silently ignored when asked for. */
static int refuse_unsupported(const json_t *o, openai_error *e)
{
    static const char *const flags[] = {"logprobs", "echo"};
    for (size_t i = 0; i < sizeof flags / sizeof *flags; i++) {
        const json_t *v = json_object_get(o, flags[i]);
        if (v && !json_is_null(v) && !json_is_false(v) &&
            !(json_is_integer(v) && json_integer_value(v) == 0))
            return openai_fail(e, 400, INVALID, NULL, flags[i], "'%s' is not supported", flags[i]);
    }
    long long v;
    int rc;
    if ((rc = opt_int(o, "n", 1, 1, &v, e)) > 1)
        return openai_fail(e, 400, INVALID, NULL, "n",
                           "'n' must be 1: one choice per request is supported");
    if ((rc = opt_int(o, "best_of", 1, 1, &v, e)) > 1)
        return openai_fail(e, 400, INVALID, NULL, "best_of", "'best_of' must be 1");
    const json_t *tools = json_object_get(o, "tools");
    if (tools && !json_is_null(tools) && !(json_is_array(tools) && json_array_size(tools) == 0))
        return openai_fail(e, 400, INVALID, NULL, "tools",
                           "'tools' (function calling) is not "
                           "supported");
    const json_t *bias = json_object_get(o, "logit_bias");
    if (bias && !json_is_null(bias) && !(json_is_object(bias) && json_object_size(bias) == 0))
        return openai_fail(e, 400, INVALID, NULL, "logit_bias", "'logit_bias' is not supported");
    const json_t *fmt = json_object_get(o, "response_format");
    if (fmt && !json_is_null(fmt)) {
        const json_t *t = json_is_object(fmt) ? json_object_get(fmt, "type") : NULL;
        if (!json_is_string(t) || strcmp(json_string_value(t), "text") != 0)
            return openai_fail(e, 400, INVALID, NULL, "response_format",
                               "'response_format' supports only {\"type\": \"text\"}");
    }
    return 0;
}

static int parse_stop(const json_t *o, serve_gen_params *g, openai_error *e)
{
    const json_t *v = json_object_get(o, "stop");
    if (!v || json_is_null(v))
        return 0;
    const json_t *one[1] = {v};
    size_t n = json_is_string(v) ? 1 : json_is_array(v) ? json_array_size(v) : 0;
    if (!json_is_string(v) && !json_is_array(v))
        return openai_fail(e, 400, INVALID, NULL, "stop",
                           "'stop' must be a string or an array of strings, not %s", dsq_json_type_name(v));
    if (n > SERVE_MAX_STOP)
        return openai_fail(e, 400, INVALID, NULL, "stop",
                           "'stop' holds %zu strings; at most %d are allowed", n, SERVE_MAX_STOP);
    for (size_t i = 0; i < n; i++) {
        const json_t *s = json_is_string(v) ? one[0] : json_array_get(v, i);
        if (!json_is_string(s))
            return openai_fail(e, 400, INVALID, NULL, "stop",
                               "'stop[%zu]' must be a string, not %s", i, dsq_json_type_name(s));
        size_t len = json_string_length(s);
        if (len == 0 || len > SERVE_MAX_STOP_BYTES)
            return openai_fail(e, 400, INVALID, NULL, "stop",
                               "'stop' strings must have 1 to %d bytes; this one has %zu",
                               SERVE_MAX_STOP_BYTES, len);
        if (!(g->stop[g->n_stop] = strdup(json_string_value(s))))
            return openai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        g->n_stop++;
    }
    return 0;
}

static int parse_sampling(const json_t *o, const openai_limits *lim, serve_gen_params *g,
                          openai_error *e)
{
    sampler_params *p = &g->sampling;
    *p = sampler_defaults();
    p->temperature = 1; /* OpenAI's default */
    p->seed = lim->seed;
    double x;
    long long i;
    int rc;
    if ((rc = opt_number(o, "temperature", 0, 2, false, &x, e)) > 1)
        return rc;
    if (rc == 1)
        p->temperature = (float)x;
    if ((rc = opt_number(o, "top_p", 0, 1, true, &x, e)) > 1)
        return rc;
    if (rc == 1)
        p->top_p = (float)x;
    if ((rc = opt_int(o, "top_k", -1, 1 << 30, &i, e)) > 1)
        return rc;
    if (rc == 1)
        p->top_k = i < 0 ? 0 : (int)i; /* -1 means off, as vLLM has it */
    if ((rc = opt_number(o, "min_p", 0, 1, false, &x, e)) > 1)
        return rc;
    if (rc == 1 && x >= 1)
        return openai_fail(e, 400, INVALID, NULL, "min_p", "'min_p' must be in [0, 1), not %g", x);
    if (rc == 1)
        p->min_p = (float)x;
    if ((rc = opt_int(o, "seed", INT64_MIN, INT64_MAX, &i, e)) > 1)
        return rc;
    if (rc == 1)
        p->seed = (uint64_t)i;
    if ((rc = opt_number(o, "frequency_penalty", -2, 2, false, &x, e)) > 1)
        return rc;
    if (rc == 1)
        g->penalties.frequency = (float)x;
    if ((rc = opt_number(o, "presence_penalty", -2, 2, false, &x, e)) > 1)
        return rc;
    if (rc == 1)
        g->penalties.presence = (float)x;
    static const char *const repeat_names[] = {"repetition_penalty", "repeat_penalty"};
    for (int k = 0; k < 2; k++) {
        if ((rc = opt_number(o, repeat_names[k], 0, 10, true, &x, e)) > 1)
            return rc;
        if (rc == 1)
            p->repeat_penalty = (float)x;
    }
    if ((rc = opt_int(o, "repeat_last_n", 0, 1 << 24, &i, e)) > 1)
        return rc;
    if (rc == 1)
        p->repeat_last_n = (int)i;
    (void)lim;
    return 0;
}

/* A message's text: a string, or an array of {"type": "text", "text": ...} parts (joined). */
static int message_text(const json_t *content, size_t idx, char **text, size_t *len,
                        openai_error *e)
{
    char param[64];
    snprintf(param, sizeof param, "messages[%zu].content", idx);
    if (!content)
        return openai_fail(e, 400, INVALID, NULL, param, "'%s' is required", param);
    if (json_is_string(content)) {
        *len = json_string_length(content);
        *text = malloc(*len + 1);
        if (*text)
            memcpy(*text, json_string_value(content), *len + 1);
    } else if (json_is_array(content)) {
        size_t total = 0, n = json_array_size(content);
        for (size_t k = 0; k < n; k++) {
            const json_t *part = json_array_get(content, k);
            const json_t *type = json_object_get(part, "type"), *t = json_object_get(part, "text");
            if (!json_is_object(part) || !json_is_string(type) ||
                strcmp(json_string_value(type), "text") != 0 || !json_is_string(t))
                return openai_fail(e, 400, INVALID, NULL, param,
                                   "'%s[%zu]' must be {\"type\": \"text\", \"text\": \"...\"}: "
                                   "only text parts are supported",
                                   param, k);
            total += json_string_length(t);
        }
        *text = malloc(total + 1);
        *len = 0;
        for (size_t k = 0; *text && k < n; k++) {
            const json_t *t = json_object_get(json_array_get(content, k), "text");
            memcpy(*text + *len, json_string_value(t), json_string_length(t));
            *len += json_string_length(t);
        }
        if (*text)
            (*text)[*len] = 0;
    } else {
        return openai_fail(e, 400, INVALID, NULL, param,
                           "'%s' must be a string or an array of text parts, not %s", param,
                           dsq_json_type_name(content));
    }
    if (!*text)
        return openai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    return 0;
}

static int chat_prompt(const json_t *o, const openai_limits *lim, token_list *out, openai_error *e)
{
    const json_t *msgs = json_object_get(o, "messages");
    if (!msgs || json_is_null(msgs))
        return openai_fail(e, 400, INVALID, NULL, "messages", "'messages' is required");
    if (!json_is_array(msgs))
        return openai_fail(e, 400, INVALID, NULL, "messages", "'messages' must be an array, not %s",
                           dsq_json_type_name(msgs));
    size_t n = json_array_size(msgs);
    if (n == 0 || n > MAX_MESSAGES)
        return openai_fail(e, 400, INVALID, NULL, "messages",
                           "'messages' must hold 1 to %d messages, not %zu", MAX_MESSAGES, n);
    chat_message *cm = calloc(n, sizeof *cm);
    char **texts = calloc(n, sizeof *texts);
    int rc = cm && texts ? 0 : openai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    for (size_t i = 0; !rc && i < n; i++) {
        const json_t *m = json_array_get(msgs, i);
        char param[64];
        snprintf(param, sizeof param, "messages[%zu]", i);
        if (!json_is_object(m)) {
            rc = openai_fail(e, 400, INVALID, NULL, param, "'%s' must be an object, not %s", param,
                             dsq_json_type_name(m));
            break;
        }
        const json_t *role = json_object_get(m, "role");
        snprintf(param, sizeof param, "messages[%zu].role", i);
        const char *r = json_string_value(role);
        if (!r) {
            rc = openai_fail(e, 400, INVALID, NULL, param, "'%s' must be a string", param);
            break;
        }
        if (!strcmp(r, "system") || !strcmp(r, "developer"))
            cm[i].role = CHAT_SYSTEM;
        else if (!strcmp(r, "user"))
            cm[i].role = CHAT_USER;
        else if (!strcmp(r, "assistant"))
            cm[i].role = CHAT_ASSISTANT;
        else {
            rc = openai_fail(e, 400, INVALID, NULL, param,
                             "'%s' is '%.40s'; the roles are system, developer, user and "
                             "assistant",
                             param, r);
            break;
        }
        rc = message_text(json_object_get(m, "content"), i, &texts[i], &cm[i].len, e);
        cm[i].text = texts[i];
    }
    dsq_error err = {0};
    if (!rc && chat_template_tokens(lim->tok, cm, (int)n, out, &err))
        rc = openai_fail(e, 500, "server_error", NULL, NULL, "%s", err.msg);
    for (size_t i = 0; texts && i < n; i++)
        free(texts[i]);
    free(texts);
    free(cm);
    return rc;
}

static int completion_prompt(const json_t *o, const openai_limits *lim, token_list *out,
                             openai_error *e)
{
    const json_t *p = json_object_get(o, "prompt");
    if (!p || json_is_null(p))
        return openai_fail(e, 400, INVALID, NULL, "prompt", "'prompt' is required");
    if (json_is_array(p) && json_array_size(p) == 1 && json_is_string(json_array_get(p, 0)))
        p = json_array_get(p, 0);
    if (json_is_string(p)) {
        int *ids = NULL;
        size_t n = 0;
        dsq_error err = {0};
        int rc = tokenizer_encode(lim->tok, json_string_value(p), json_string_length(p),
                                  tokenizer_default_add(lim->tok), &ids, &n, &err);
        for (size_t i = 0; !rc && i < n; i++)
            rc = token_list_push(out, ids[i]);
        free(ids);
        return rc ? openai_fail(e, 500, "server_error", NULL, NULL, "%s",
                                err.msg[0] ? err.msg : "out of memory")
                  : 0;
    }
    if (!json_is_array(p))
        return openai_fail(e, 400, INVALID, NULL, "prompt",
                           "'prompt' must be a string, an array of one string or an array of "
                           "token ids, not %s",
                           dsq_json_type_name(p));
    size_t n = json_array_size(p);
    const int vocab = tokenizer_n_tokens(lim->tok);
    for (size_t i = 0; i < n; i++) {
        const json_t *t = json_array_get(p, i);
        if (json_is_string(t))
            return openai_fail(e, 400, INVALID, NULL, "prompt",
                               "'prompt' holds %zu strings; one prompt per request is supported",
                               n);
        if (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) >= vocab)
            return openai_fail(e, 400, INVALID, NULL, "prompt",
                               "'prompt[%zu]' must be a token id from 0 to %d", i, vocab - 1);
        if (token_list_push(out, (int)json_integer_value(t)))
            return openai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    }
    return 0;
}

int openai_parse_request(openai_kind kind, const char *body, size_t len, const openai_limits *lim,
                         openai_request *out, openai_error *e)
{
    *out = (openai_request){.kind = kind};
    json_error_t jerr;
    json_t *o = json_loadb(body, len, 0, &jerr);
    if (!o)
        return openai_fail(e, 400, INVALID, NULL, NULL,
                           "the body is not valid JSON: %s (line %d, column %d)", jerr.text,
                           jerr.line, jerr.column);
    token_list prompt = {0};
    int rc = 0;
    const json_t *name = json_object_get(o, "model");
    if (!json_is_object(o))
        rc = openai_fail(e, 400, INVALID, NULL, NULL, "the body must be a JSON object, not %s",
                         dsq_json_type_name(o));
    else if (name && !json_is_null(name) && !json_is_string(name))
        rc = openai_fail(e, 400, INVALID, NULL, "model", "'model' must be a string, not %s",
                         dsq_json_type_name(name));
    else if (json_is_string(name) && strcmp(json_string_value(name), lim->model_name) != 0)
        rc = openai_fail(e, 404, INVALID, "model_not_found", "model",
                         "the model '%.100s' does not exist; this server has '%s'",
                         json_string_value(name), lim->model_name);
    if (!rc && (rc = refuse_unsupported(o, e)) == 0 &&
        (rc = opt_bool(o, "stream", &out->stream, e)) <= 1)
        rc = 0;
    const json_t *so = json_object_get(o, "stream_options");
    if (!rc && so && !json_is_null(so)) {
        if (!json_is_object(so))
            rc = openai_fail(e, 400, INVALID, NULL, "stream_options",
                             "'stream_options' must be an object, not %s", dsq_json_type_name(so));
        else if ((rc = opt_bool(so, "include_usage", &out->include_usage, e)) <= 1)
            rc = 0;
    }
    if (!rc)
        rc = parse_sampling(o, lim, &out->gen, e);
    if (!rc)
        rc = parse_stop(o, &out->gen, e);
    long long max_tokens = 0;
    const char *max_name = "max_tokens";
    if (!rc && kind == OPENAI_CHAT && json_object_get(o, "max_completion_tokens") &&
        !json_is_null(json_object_get(o, "max_completion_tokens")))
        max_name = "max_completion_tokens";
    int have_max = 0;
    if (!rc && (have_max = opt_int(o, max_name, 1, INT64_MAX, &max_tokens, e)) > 1)
        rc = have_max;
    if (!rc)
        rc = kind == OPENAI_CHAT ? chat_prompt(o, lim, &prompt, e)
                                 : completion_prompt(o, lim, &prompt, e);
    const char *prompt_name = kind == OPENAI_CHAT ? "messages" : "prompt";
    if (!rc && prompt.n == 0)
        rc = openai_fail(e, 400, INVALID, NULL, prompt_name, "the prompt is empty");
    if (!rc && prompt.n >= lim->ctx)
        rc = openai_fail(e, 400, INVALID, "context_length_exceeded", prompt_name,
                         "the prompt has %d tokens but the context holds %d (--ctx), leaving no "
                         "room for the completion",
                         prompt.n, lim->ctx);
    if (!rc && have_max && max_tokens > lim->ctx - prompt.n)
        rc = openai_fail(e, 400, INVALID, "context_length_exceeded", max_name,
                         "'%s' is %lld but the context holds %d tokens (--ctx) and the prompt "
                         "takes %d of them, so at most %d can be generated",
                         max_name, max_tokens, lim->ctx, prompt.n, lim->ctx - prompt.n);
    if (!rc) {
        int room = lim->ctx - prompt.n;
        out->gen.max_tokens = have_max              ? (int)max_tokens
                              : kind == OPENAI_CHAT ? room
                                                    : (room < 16 ? room : 16);
        out->gen.prompt = prompt.ids;
        out->gen.n_prompt = prompt.n;
        out->gen.strip_leading_space = kind == OPENAI_CHAT;
        prompt = (token_list){0};
    }
    token_list_free(&prompt);
    json_decref(o);
    if (rc)
        openai_request_free(out);
    return rc;
}

void openai_request_free(openai_request *r)
{
    serve_gen_params_free(&r->gen);
}

/* Serializes o (stolen) as compact JSON, optionally wrapped as one server-sent event. */
static char *dump(json_t *o, bool event)
{
    if (!o)
        return NULL;
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s || !event)
        return s;
    size_t n = strlen(s);
    char *ev = malloc(n + 9);
    if (ev)
        snprintf(ev, n + 9, "data: %s\n\n", s);
    free(s);
    return ev;
}

static json_t *error_object(const openai_error *e)
{
    return json_pack("{s:{s:s, s:s, s:s*, s:s*}}", "error", "message", e->message, "type",
                     e->type ? e->type : INVALID, "param", e->param[0] ? e->param : NULL, "code",
                     e->code);
}

char *openai_error_body(const openai_error *e)
{
    return dump(error_object(e), false);
}

char *openai_error_event(const openai_error *e)
{
    return dump(error_object(e), true);
}

char *openai_models_body(const char *model_name, long created)
{
    return dump(json_pack("{s:s, s:[{s:s, s:s, s:I, s:s}]}", "object", "list", "data", "id",
                          model_name, "object", "model", "created", (json_int_t)created, "owned_by",
                          "dsq"),
                false);
}

const char *openai_finish_reason(serve_finish f)
{
    return f == FINISH_STOP ? "stop" : f == FINISH_LENGTH ? "length" : NULL;
}

static json_t *usage_object(const openai_usage *u)
{
    return json_pack("{s:i, s:i, s:i, s:{s:i}}", "prompt_tokens", u->prompt, "completion_tokens",
                     u->completion, "total_tokens", u->prompt + u->completion,
                     "prompt_tokens_details", "cached_tokens", u->cached);
}

static json_t *reply_object(const openai_reply *r, bool chunk)
{
    const char *object = r->kind == OPENAI_CHAT
                             ? (chunk ? "chat.completion.chunk" : "chat.completion")
                             : "text_completion";
    return json_pack("{s:s, s:s, s:I, s:s, s:n}", "id", r->id, "object", object, "created",
                     (json_int_t)r->created, "model", r->model, "system_fingerprint");
}

char *openai_response_body(const openai_reply *r, const char *text, size_t len, serve_finish f,
                           const openai_usage *u)
{
    json_t *o = reply_object(r, false);
    json_t *choice = r->kind == OPENAI_CHAT
                         ? json_pack("{s:i, s:{s:s, s:s%}, s:n, s:s*}", "index", 0, "message",
                                     "role", "assistant", "content", text, len, "logprobs",
                                     "finish_reason", openai_finish_reason(f))
                         : json_pack("{s:i, s:s%, s:n, s:s*}", "index", 0, "text", text, len,
                                     "logprobs", "finish_reason", openai_finish_reason(f));
    if (!o || !choice || json_object_set_new(o, "choices", json_pack("[o]", choice)) ||
        json_object_set_new(o, "usage", usage_object(u))) {
        json_decref(o);
        return NULL;
    }
    return dump(o, false);
}

char *openai_chunk(const openai_reply *r, bool role, const char *text, size_t len,
                   const char *finish)
{
    json_t *o = reply_object(r, true), *choice;
    if (r->kind == OPENAI_CHAT) {
        json_t *delta = role   ? json_pack("{s:s, s:s}", "role", "assistant", "content", "")
                        : text ? json_pack("{s:s%}", "content", text, len)
                               : json_object();
        choice = json_pack("{s:i, s:o, s:n, s:o}", "index", 0, "delta", delta, "logprobs",
                           "finish_reason", finish ? json_string(finish) : json_null());
    } else {
        choice =
            json_pack("{s:i, s:s%, s:n, s:o}", "index", 0, "text", text ? text : "", text ? len : 0,
                      "logprobs", "finish_reason", finish ? json_string(finish) : json_null());
    }
    if (!o || !choice || json_object_set_new(o, "choices", json_pack("[o]", choice))) {
        json_decref(o);
        return NULL;
    }
    return dump(o, true);
}

char *openai_usage_chunk(const openai_reply *r, const openai_usage *u)
{
    json_t *o = reply_object(r, true);
    if (!o || json_object_set_new(o, "choices", json_array()) ||
        json_object_set_new(o, "usage", usage_object(u))) {
        json_decref(o);
        return NULL;
    }
    return dump(o, true);
}
