/* Bounded FIFO of jobs and the model thread that runs them one at a time. */
#include "serve_queue.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "progress.h"
#include "stop_strings.h"

void serve_gen_params_free(serve_gen_params *p)
{
    free(p->prompt);
    for (int i = 0; i < p->n_stop; i++)
        free(p->stop[i]);
    *p = (serve_gen_params){0};
}

serve_job *serve_job_new(serve_gen_params *params)
{
    serve_job *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->gen = *params;
    *params = (serve_gen_params){0};
    j->fd = -1;
    pthread_mutex_init(&j->mu, NULL);
    atomic_init(&j->refs, 1);
    atomic_init(&j->cancelled, false);
    atomic_init(&j->finished, false);
    atomic_init(&j->n_cached, 0);
    atomic_init(&j->n_generated, 0);
    j->t_queued = progress_now();
    return j;
}

void serve_job_release(serve_job *j)
{
    if (!j || atomic_fetch_sub(&j->refs, 1) != 1)
        return;
    serve_gen_params_free(&j->gen);
    free(j->text);
    free(j->piece_end);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

/* Under j->mu: lets a connection waiting for output go on. */
static void wake(serve_job *j)
{
    if (j->suspended) {
        j->suspended = false;
        j->resume(j->conn);
    }
}

/* Under j->mu: the client is gone if it said so to the HTTP side, or, while its connection is
 * parked (the HTTP library then watches nothing), its socket shows a hang-up. */
static bool client_gone(serve_job *j)
{
    if (atomic_load(&j->cancelled))
        return true;
    if (j->suspended && j->fd >= 0) {
        struct pollfd p = {.fd = j->fd, .events = POLLRDHUP};
        if (poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))) {
            atomic_store(&j->cancelled, true);
            return true;
        }
    }
    return false;
}

typedef struct {
    serve_queue *q;
    serve_job *j;
} cancel_ctx;

static bool should_stop(void *ctx)
{
    cancel_ctx *c = ctx;
    if (atomic_load(&c->q->cancel_running))
        return true;
    pthread_mutex_lock(&c->j->mu);
    bool gone = client_gone(c->j);
    pthread_mutex_unlock(&c->j->mu);
    return gone;
}

/* Under j->mu: appends released text as one piece. */
static int release_text(serve_job *j, const char *s, size_t n)
{
    if (n == 0)
        return DSQ_OK;
    if (j->text_len + n > j->text_cap) {
        size_t cap = j->text_cap ? j->text_cap : 1024;
        while (cap < j->text_len + n)
            cap *= 2;
        char *t = realloc(j->text, cap);
        if (!t)
            return DSQ_ERESOURCE;
        j->text = t;
        j->text_cap = cap;
    }
    if (j->n_pieces == j->pieces_cap) {
        int cap = j->pieces_cap ? 2 * j->pieces_cap : 64;
        size_t *p = realloc(j->piece_end, (size_t)cap * sizeof *p);
        if (!p)
            return DSQ_ERESOURCE;
        j->piece_end = p;
        j->pieces_cap = cap;
    }
    memcpy(j->text + j->text_len, s, n);
    j->text_len += n;
    j->piece_end[j->n_pieces++] = j->text_len;
    return DSQ_OK;
}

/* Text decoded but not yet released (it may begin a stop string). */
typedef struct {
    char *s;
    size_t len, cap;
} held_text;

static int hold(held_text *h, const char *s, size_t n)
{
    if (h->len + n > h->cap) {
        size_t cap = h->cap ? h->cap : 256;
        while (cap < h->len + n)
            cap *= 2;
        char *p = realloc(h->s, cap);
        if (!p)
            return DSQ_ERESOURCE;
        h->s = p;
        h->cap = cap;
    }
    memcpy(h->s + h->len, s, n);
    h->len += n;
    return DSQ_OK;
}

/* Releases what the stop strings allow; true when a stop string ended the text. */
static bool release_held(serve_job *j, held_text *h, bool final, int *rc)
{
    bool hit;
    size_t n = stop_strings_scan((const char *const *)j->gen.stop, j->gen.n_stop, h->s, h->len,
                                 final, &hit);
    pthread_mutex_lock(&j->mu);
    if (n > 0 && release_text(j, h->s, n))
        *rc = DSQ_ERESOURCE;
    if (n > 0 && j->t_first_token == 0)
        j->t_first_token = progress_now();
    wake(j);
    pthread_mutex_unlock(&j->mu);
    memmove(h->s, h->s + n, h->len - n);
    h->len -= n;
    return hit;
}

/* Generates the job's text; returns how it ended. */
static serve_finish generate_job(serve_queue *q, serve_job *j, dsq_error *err, int *rc)
{
    serve_engine *e = q->engine;
    const serve_gen_params *g = &j->gen;
    cancel_ctx cc = {q, j};
    int reused = 0;
    bool cancelled;
    *rc =
        serve_engine_prefill(e, g->prompt, g->n_prompt, should_stop, &cc, &reused, &cancelled, err);
    atomic_store(&j->n_cached, reused);
    if (*rc || cancelled)
        return *rc ? FINISH_ERROR : FINISH_CANCELLED;
    sampler s;
    if ((*rc = sampler_init(&s, &g->sampling, serve_engine_vocab(e), err)))
        return FINISH_ERROR;
    token_list history = {0};
    for (int i = 0; !*rc && i < g->n_prompt; i++)
        if (token_list_push(&history, g->prompt[i]))
            *rc = dsq_fail(err, DSQ_ERESOURCE, "out of memory");
    held_text held = {0};
    utf8_stream stream = {0};
    char piece[UTF8_STREAM_OUT_MAX(16)];
    bool at_start = true, stop_hit = false;
    serve_finish finish = FINISH_LENGTH;
    const int eos = tokenizer_eos(e->tok);
    for (int i = 0; !*rc && i < g->max_tokens; i++) {
        if (should_stop(&cc)) {
            finish = FINISH_CANCELLED;
            break;
        }
        int next = serve_engine_sample(e, &s, &g->penalties, history.ids, history.n, g->n_prompt);
        if (token_list_push(&history, next)) {
            *rc = dsq_fail(err, DSQ_ERESOURCE, "out of memory");
            break;
        }
        atomic_fetch_add(&j->n_generated, 1);
        if (next == eos) {
            finish = FINISH_STOP;
            break;
        }
        size_t len;
        const char *bytes = tokenizer_token_bytes(e->tok, next, &len);
        for (size_t off = 0; !*rc && off < len; off += 16) { /* bounded pieces, as generate() */
            size_t part = len - off < 16 ? len - off : 16;
            size_t out = utf8_stream_push(&stream, bytes + off, part, piece);
            const char *p = piece;
            if (at_start && g->strip_leading_space && out > 0) {
                if (p[0] == ' ')
                    p++, out--;
                at_start = false;
            }
            if (out && hold(&held, p, out))
                *rc = dsq_fail(err, DSQ_ERESOURCE, "out of memory");
        }
        if (!*rc && release_held(j, &held, false, rc)) {
            stop_hit = true;
            finish = FINISH_STOP;
            break;
        }
        if (serve_engine_room(e) == 0)
            break; /* context full: finish_reason "length" */
        if (!*rc && i + 1 < g->max_tokens)
            *rc = serve_engine_feed(e, next, err);
    }
    if (!*rc && !stop_hit && finish != FINISH_CANCELLED) { /* EOS, max_tokens or full context */
        size_t out = utf8_stream_flush(&stream, piece);
        if (out && hold(&held, piece, out))
            *rc = dsq_fail(err, DSQ_ERESOURCE, "out of memory");
        if (!*rc && release_held(j, &held, true, rc))
            finish = FINISH_STOP;
    }
    if (*rc == DSQ_ERESOURCE && !err->msg[0])
        dsq_fail(err, DSQ_ERESOURCE, "out of memory");
    free(held.s);
    token_list_free(&history);
    sampler_free(&s);
    return *rc ? FINISH_ERROR : finish;
}

/* Under j->mu: the job is over; its connection may go on. */
static void finish_job(serve_job *j, serve_finish finish, int status, const char *code,
                       const char *msg)
{
    j->finish = finish;
    j->status = status;
    j->code = code;
    if (msg)
        snprintf(j->error, sizeof j->error, "%s", msg);
    j->done = true;
    j->t_done = progress_now();
    atomic_store(&j->finished, true);
    wake(j);
}

static void run_job(serve_queue *q, serve_job *j)
{
    pthread_mutex_lock(&j->mu);
    j->t_started = progress_now();
    bool gone = client_gone(j);
    pthread_mutex_unlock(&j->mu);
    dsq_error err = {0};
    int rc = DSQ_OK;
    serve_finish finish = gone ? FINISH_CANCELLED : generate_job(q, j, &err, &rc);
    pthread_mutex_lock(&j->mu);
    if (finish == FINISH_CANCELLED && !atomic_load(&j->cancelled)) /* a second stop signal */
        finish_job(j, FINISH_ERROR, 503, "shutting_down",
                   "the server is shutting down and stopped this request");
    else if (finish == FINISH_ERROR)
        finish_job(j, finish, err.code == DSQ_ERESOURCE ? 503 : 500, NULL, err.msg);
    else
        finish_job(j, finish, 200, NULL, NULL);
    pthread_mutex_unlock(&j->mu);
}

static void *model_thread(void *arg)
{
    serve_queue *q = arg;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (q->n == 0 && !q->stopping)
            pthread_cond_wait(&q->cv, &q->mu);
        if (q->stopping) {
            for (; q->n > 0; q->n--) { /* waiting jobs are refused */
                serve_job *j = q->waiting[q->head];
                q->head = (q->head + 1) % q->limit;
                pthread_mutex_lock(&j->mu);
                finish_job(j, FINISH_ERROR, 503, "shutting_down", "the server is shutting down");
                pthread_mutex_unlock(&j->mu);
                serve_job_release(j);
            }
            q->ended = true;
            break;
        }
        serve_job *j = q->waiting[q->head];
        q->head = (q->head + 1) % q->limit;
        q->n--;
        q->running = j;
        pthread_mutex_unlock(&q->mu);
        run_job(q, j);
        pthread_mutex_lock(&q->mu);
        q->running = NULL;
        pthread_mutex_unlock(&q->mu);
        serve_job_release(j);
        pthread_mutex_lock(&q->mu);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

int serve_queue_start(serve_queue *q, serve_engine *e, int limit, dsq_error *err)
{
    *q = (serve_queue){.engine = e, .limit = limit};
    atomic_init(&q->cancel_running, false);
    q->waiting = calloc((size_t)limit, sizeof *q->waiting);
    if (!q->waiting)
        return dsq_fail(err, DSQ_ERESOURCE, "out of memory");
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    if (pthread_create(&q->thread, NULL, model_thread, q)) {
        free(q->waiting);
        return dsq_fail(err, DSQ_ERESOURCE, "cannot start the model thread");
    }
    q->started = true;
    return DSQ_OK;
}

int serve_queue_submit(serve_queue *q, serve_job *j)
{
    pthread_mutex_lock(&q->mu);
    int rc = q->stopping        ? SERVE_QUEUE_STOPPING
             : q->n == q->limit ? SERVE_QUEUE_FULL
                                : SERVE_QUEUED;
    if (rc == SERVE_QUEUED) {
        atomic_fetch_add(&j->refs, 1);
        q->waiting[(q->head + q->n) % q->limit] = j;
        q->n++;
        pthread_cond_signal(&q->cv);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

void serve_queue_counts(serve_queue *q, int *waiting, int *running)
{
    pthread_mutex_lock(&q->mu);
    *waiting = q->n;
    *running = q->running != NULL;
    pthread_mutex_unlock(&q->mu);
}

void serve_queue_cancel_running(serve_queue *q)
{
    atomic_store(&q->cancel_running, true);
}

void serve_queue_stop(serve_queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->stopping = true;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

bool serve_queue_stopped(serve_queue *q)
{
    pthread_mutex_lock(&q->mu);
    bool ended = q->ended;
    pthread_mutex_unlock(&q->mu);
    return ended;
}

void serve_queue_join(serve_queue *q)
{
    if (!q->started)
        return;
    serve_queue_stop(q);
    pthread_join(q->thread, NULL);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    free(q->waiting);
    q->started = false;
}
