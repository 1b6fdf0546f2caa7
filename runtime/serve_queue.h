/* The model queue of dsq serve: requests wait in a bounded FIFO for the one model thread, which
 * runs each to the end (EOS, a stop string, max_tokens, a full context) or until its client is
 * gone. A job's text grows under its lock while the HTTP side reads it. */
#ifndef DSQ_SERVE_QUEUE_H
#define DSQ_SERVE_QUEUE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "serve_engine.h"

#define SERVE_MAX_STOP 4         /* stop strings per request, as OpenAI allows */
#define SERVE_MAX_STOP_BYTES 256 /* bytes per stop string */

/* What to generate: filled by the request parser, owned by the job. */
typedef struct {
    int *prompt;
    int n_prompt;
    int max_tokens;
    sampler_params sampling;
    serve_penalties penalties;
    char *stop[SERVE_MAX_STOP];
    int n_stop;
    bool strip_leading_space; /* chat: the template leaves a space after "Assistant:" */
} serve_gen_params;

void serve_gen_params_free(serve_gen_params *p);

typedef enum {
    FINISH_NONE,
    FINISH_STOP,
    FINISH_LENGTH,
    FINISH_CANCELLED,
    FINISH_ERROR
} serve_finish;

typedef struct serve_job serve_job;
struct serve_job {
    serve_gen_params gen;

    /* The HTTP side's link to its connection. While suspended (under mu) the connection waits
     * for output; the model thread then checks the socket for a hang-up (fd) and calls
     * resume(conn) when output or the end is ready. */
    void *conn;
    int fd;
    void (*resume)(void *conn);
    bool suspended;

    pthread_mutex_t mu;
    atomic_int refs;
    atomic_bool cancelled; /* the client is gone */
    /* under mu: the released text, its pieces (one per decoded piece), the outcome */
    char *text;
    size_t text_len, text_cap;
    size_t *piece_end;
    int n_pieces, pieces_cap;
    bool done;
    atomic_bool finished; /* = done, for readers that cannot take mu; the fields below are final */
    serve_finish finish;
    int status;             /* HTTP status of a failed job (FINISH_ERROR) */
    const char *code;       /* its OpenAI error code, or NULL */
    char error[1024];       /* its message */
    atomic_int n_cached;    /* prompt tokens reused from the previous request's cache */
    atomic_int n_generated; /* tokens sampled, EOS included */
    double t_queued, t_started, t_first_token, t_done; /* seconds (progress_now) */
};

/* A job holding one reference (the caller's); params are moved into it. NULL when out of memory. */
serve_job *serve_job_new(serve_gen_params *params);
void serve_job_release(serve_job *j);

/* Where piece i begins in text (it ends at piece_end[i]); under mu. */
static inline size_t serve_job_piece_start(const serve_job *j, int i)
{
    return i == 0 ? 0 : j->piece_end[i - 1];
}

typedef struct {
    serve_engine *engine;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    serve_job **waiting; /* ring of limit entries */
    int limit, head, n;
    bool stopping, ended;
    atomic_bool cancel_running;
    serve_job *running;
    pthread_t thread;
    bool started;
} serve_queue;

int serve_queue_start(serve_queue *q, serve_engine *e, int limit, dsq_error *err);

enum { SERVE_QUEUED = 0, SERVE_QUEUE_FULL = 1, SERVE_QUEUE_STOPPING = 2 };
/* Hands the job to the model thread (which takes its own reference). */
int serve_queue_submit(serve_queue *q, serve_job *j);

/* Jobs waiting and running, for /health. */
void serve_queue_counts(serve_queue *q, int *waiting, int *running);

/* Refuses new jobs and fails the waiting ones (503); the running one finishes (or stops at its
 * next token after serve_queue_cancel_running), then the model thread ends. */
void serve_queue_stop(serve_queue *q);
void serve_queue_cancel_running(serve_queue *q);
bool serve_queue_stopped(serve_queue *q); /* the model thread has ended */
void serve_queue_join(serve_queue *q);    /* stops, waits for the model thread, frees */

#endif
