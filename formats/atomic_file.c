/* Temporary-file-then-rename writes, with removal of the temporary file on a fatal signal. */
#include "atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The one temporary file being written, for the signal handler (which may only call unlink). */
static char pending_tmp[4096];
static volatile sig_atomic_t pending_set;

static void remove_pending_and_reraise(int sig)
{
    if (pending_set)
        unlink(pending_tmp);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void track_pending(const char *tmp)
{
    static int handlers_installed;
    if (!handlers_installed) {
        struct sigaction sa = {.sa_handler = remove_pending_and_reraise};
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGHUP, &sa, NULL);
        handlers_installed = 1;
    }
    pending_set = 0;
    if (tmp && strlen(tmp) < sizeof pending_tmp) {
        strcpy(pending_tmp, tmp);
        pending_set = 1;
    }
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
    af->fd = mkostemp(af->tmp_path, O_CLOEXEC);
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
    track_pending(af->tmp_path);
    return DSQ_OK;
}

int atomic_file_commit(atomic_file *af, dsq_error *err)
{
    if (fsync(af->fd) != 0 || close(af->fd) != 0) {
        int e = errno;
        af->fd = -1;
        atomic_file_abort(af);
        return dsq_fail(err, dsq_status_from_errno(e), "%s: flushing to disk failed: %s",
                        af->final_path, strerror(e));
    }
    af->fd = -1;
    if (rename(af->tmp_path, af->final_path) != 0) {
        int e = errno;
        atomic_file_abort(af);
        return dsq_fail(err, dsq_status_from_errno(e), "%s: cannot rename into place: %s",
                        af->final_path, strerror(e));
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
