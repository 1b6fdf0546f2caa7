/* Temporary-file-then-rename writes, with removal of the temporary file on a fatal signal. */
#include "atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "output_path.h"

/* The one temporary file being written, for the signal handler (which may only call unlink). */
static char pending_tmp[4096];
static volatile sig_atomic_t pending_set;
/* Set while a thread creates the temporary file and records its name (fatal signals are blocked
 * in that thread meanwhile): a handler running on another thread waits for the name. */
static volatile sig_atomic_t creating;

void atomic_file_remove_pending(void)
{
    while (creating)
        ;
    if (pending_set)
        unlink(pending_tmp);
}

static void remove_pending_and_reraise(int sig)
{
    atomic_file_remove_pending();
    signal(sig, SIG_DFL);
    raise(sig); /* delivered with the default action once the handler returns */
}

/* Every signal whose default action ends the process, but SIGBUS (map_guard.c handles it and
 * calls atomic_file_remove_pending too), SIGKILL and SIGSTOP (which cannot be caught). */
static const int fatal_signals[] = {SIGHUP,  SIGINT,    SIGQUIT, SIGILL,  SIGTRAP, SIGABRT,
                                    SIGFPE,  SIGUSR1,   SIGSEGV, SIGUSR2, SIGPIPE, SIGALRM,
                                    SIGTERM, SIGSTKFLT, SIGXCPU, SIGXFSZ, SIGVTALRM, SIGPROF,
                                    SIGIO,   SIGPWR,    SIGSYS};
enum { N_FATAL = sizeof fatal_signals / sizeof fatal_signals[0] };

static void install_handlers(void)
{
    static int installed;
    if (installed)
        return;
    struct sigaction sa = {.sa_handler = remove_pending_and_reraise}, old;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < N_FATAL; i++) {
        /* Only where the default action is in force: an ignored signal (nohup, a shell
         * ignoring SIGPIPE) stays ignored, and a sanitizer's fault handler is kept. */
        if (sigaction(fatal_signals[i], NULL, &old) == 0 && old.sa_handler == SIG_DFL &&
            !(old.sa_flags & SA_SIGINFO))
            sigaction(fatal_signals[i], &sa, NULL);
    }
    installed = 1;
}

static void track_pending(const char *tmp)
{
    pending_set = 0;
    if (tmp && strlen(tmp) < sizeof pending_tmp) {
        strcpy(pending_tmp, tmp);
        pending_set = 1;
    }
}

/* mkostemp with the name recorded for the handlers before any fatal signal can be handled. */
static int create_tracked(char *tmp_path)
{
    install_handlers();
    sigset_t fatal, old;
    sigemptyset(&fatal);
    for (int i = 0; i < N_FATAL; i++)
        sigaddset(&fatal, fatal_signals[i]);
    pthread_sigmask(SIG_BLOCK, &fatal, &old);
    creating = 1;
    int fd = mkostemp(tmp_path, O_CLOEXEC);
    int e = errno;
    if (fd >= 0)
        track_pending(tmp_path);
    creating = 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL); /* a signal that came meanwhile is handled now */
    errno = e;
    return fd;
}

static char *folder_of(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return NULL;
    char *dir = strdup(dirname(copy));
    free(copy);
    return dir;
}

int atomic_file_create(atomic_file *af, const char *path, dsq_error *err)
{
    memset(af, 0, sizeof *af);
    af->fd = -1;
    int rc = output_path_check(path, NULL, 0, err);
    if (rc)
        return rc;
    char *base_copy = strdup(path);
    af->final_path = strdup(path);
    af->tmp_path = malloc(strlen(path) + 32);
    if (!base_copy || !af->final_path || !af->tmp_path) {
        free(base_copy);
        atomic_file_abort(af);
        return dsq_fail(err, DSQ_ERESOURCE, "%s: out of memory", path);
    }
    char *dir = folder_of(path);
    sprintf(af->tmp_path, "%s/.%s.tmp-XXXXXX", dir ? dir : ".", basename(base_copy));
    free(base_copy);
    free(dir);
    af->fd = create_tracked(af->tmp_path);
    if (af->fd < 0) {
        int e = errno;
        atomic_file_abort(af);
        return dsq_fail(err, dsq_status_from_errno(e), "%s: cannot create output file: %s", path,
                        strerror(e));
    }
    af->created = 1;
    if (fchmod(af->fd, 0644) != 0) { /* mkstemp makes 0600; outputs are ordinary files */
        int e = errno;
        atomic_file_abort(af);
        return dsq_fail(err, dsq_status_from_errno(e), "%s: chmod: %s", path, strerror(e));
    }
    return DSQ_OK;
}

int atomic_file_commit(atomic_file *af, dsq_error *err)
{
    if (fsync(af->fd) != 0 || close(af->fd) != 0) {
        int e = errno;
        af->fd = -1;
        dsq_fail(err, dsq_status_from_errno(e), "%s: flushing to disk failed: %s", af->final_path,
                 strerror(e));
        atomic_file_abort(af); /* frees final_path: the message is made first */
        return dsq_status_from_errno(e);
    }
    af->fd = -1;
    if (rename(af->tmp_path, af->final_path) != 0) {
        int e = errno;
        dsq_fail(err, dsq_status_from_errno(e), "%s: cannot rename into place: %s", af->final_path,
                 strerror(e));
        atomic_file_abort(af); /* frees final_path: the message is made first */
        return dsq_status_from_errno(e);
    }
    track_pending(NULL);
    char *dir = folder_of(af->final_path);
    int dfd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (dfd >= 0) { /* make the rename itself durable */
        fsync(dfd);
        close(dfd);
    }
    free(dir);
    free(af->tmp_path);
    free(af->final_path);
    memset(af, 0, sizeof *af);
    af->fd = -1;
    return DSQ_OK;
}

void atomic_file_abort(atomic_file *af)
{
    if (af->fd >= 0)
        close(af->fd);
    if (af->created) {
        unlink(af->tmp_path);
        track_pending(NULL);
    }
    free(af->tmp_path);
    free(af->final_path);
    memset(af, 0, sizeof *af);
    af->fd = -1;
}
