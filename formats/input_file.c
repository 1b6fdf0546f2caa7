/* Non-blocking opens of regular files only, and capped reads of whole files and lines. */
#include "input_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *input_file_kind(mode_t mode)
{
    if (S_ISDIR(mode))
        return "a folder";
    if (S_ISFIFO(mode))
        return "a FIFO";
    if (S_ISCHR(mode))
        return "a character device";
    if (S_ISBLK(mode))
        return "a block device";
    if (S_ISSOCK(mode))
        return "a socket";
    if (S_ISREG(mode))
        return "a regular file";
    return "not a regular file";
}

/* input_open; what (if not NULL) names the file's role in the message when it cannot be opened */
static int open_regular(const char *path, int optional, int *fd, struct stat *st,
                        const char *what, dsq_error *err)
{
    struct stat sb;
    if (!st)
        st = &sb;
    /* O_NONBLOCK: open() of a FIFO with no writer would otherwise wait for one for ever */
    *fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (*fd < 0) {
        int e = errno;
        if (e == ENOENT && optional)
            return DSQ_OK;
        if (what)
            return dsq_fail(err, e == ENOMEM ? DSQ_ERESOURCE : DSQ_EINPUT,
                            "%s: cannot read %s: %s", path, what, strerror(e));
        return dsq_fail(err, e == ENOMEM ? DSQ_ERESOURCE : DSQ_EINPUT, "%s: cannot open: %s",
                        path, strerror(e));
    }
    if (fstat(*fd, st) != 0) {
        int e = errno;
        close(*fd);
        *fd = -1;
        return dsq_fail(err, DSQ_EINPUT, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st->st_mode)) {
        close(*fd);
        *fd = -1;
        return dsq_fail(err, DSQ_EINPUT, "%s: is %s, not a regular file", path,
                        input_file_kind(st->st_mode));
    }
    int flags = fcntl(*fd, F_GETFL);
    if (flags < 0 || fcntl(*fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
        int e = errno;
        close(*fd);
        *fd = -1;
        return dsq_fail(err, DSQ_EINPUT, "%s: fcntl: %s", path, strerror(e));
    }
    return DSQ_OK;
}

int input_open(const char *path, int optional, int *fd, struct stat *st, dsq_error *err)
{
    return open_regular(path, optional, fd, st, NULL, err);
}

int input_fopen(const char *path, int optional, FILE **f, dsq_error *err)
{
    int fd;
    *f = NULL;
    int rc = input_open(path, optional, &fd, NULL, err);
    if (rc || fd < 0)
        return rc;
    if (!(*f = fdopen(fd, "rb"))) {
        int e = errno;
        close(fd);
        return dsq_fail(err, dsq_status_from_errno(e), "%s: cannot open: %s", path, strerror(e));
    }
    return DSQ_OK;
}

int input_read_all(const char *path, size_t cap, const char *what, int optional, char **buf,
                   size_t *len, dsq_error *err)
{
    int fd;
    struct stat st;
    *buf = NULL;
    *len = 0;
    int rc = open_regular(path, optional, &fd, &st, what, err);
    if (rc || fd < 0)
        return rc;
    if ((uint64_t)st.st_size > cap) {
        close(fd);
        return dsq_fail(err, DSQ_EINPUT, "%s: %lld bytes, more than the %zu bytes allowed for %s",
                        path, (long long)st.st_size, cap, what);
    }
    /* One byte past the size the file had: a file that grows meanwhile is still caught at cap. */
    size_t room = (size_t)st.st_size + 1, n = 0;
    char *b = malloc(room + 1);
    if (!b) {
        close(fd);
        return dsq_fail(err, DSQ_ERESOURCE, "%s: out of memory for %s (%zu bytes)", path, what,
                        room);
    }
    for (;;) {
        if (n == room) {
            if (room > cap) {
                rc = dsq_fail(err, DSQ_EINPUT, "%s: more than the %zu bytes allowed for %s",
                              path, cap, what);
                break;
            }
            size_t grow = room * 2 > cap + 1 ? cap + 1 : room * 2;
            char *nb = realloc(b, grow + 1);
            if (!nb) {
                rc = dsq_fail(err, DSQ_ERESOURCE, "%s: out of memory for %s", path, what);
                break;
            }
            b = nb;
            room = grow;
        }
        ssize_t k = read(fd, b + n, room - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            int e = errno;
            rc = dsq_fail(err, dsq_status_from_errno(e), "%s: cannot read %s: %s", path, what,
                          strerror(e));
            break;
        }
        if (k == 0)
            break;
        n += (size_t)k;
    }
    close(fd);
    if (rc) {
        free(b);
        return rc;
    }
    b[n] = 0;
    *buf = b;
    *len = n;
    return DSQ_OK;
}

int input_read_line(FILE *f, const char *where, size_t line_no, size_t cap, char **line,
                    size_t *alloc, size_t *len, dsq_error *err)
{
    size_t n = 0;
    int c = EOF;
    while ((c = getc(f)) != EOF && c != '\n') {
        if (n == cap)
            return dsq_fail(err, DSQ_EINPUT, "%s: line %zu is longer than %zu bytes", where,
                            line_no, cap);
        if (n + 1 >= *alloc) { /* room for this byte and the NUL */
            size_t grow = *alloc ? *alloc * 2 : 256;
            grow = grow > cap + 1 ? cap + 1 : grow;
            char *nl = realloc(*line, grow);
            if (!nl)
                return dsq_fail(err, DSQ_ERESOURCE, "%s: out of memory for line %zu", where,
                                line_no);
            *line = nl;
            *alloc = grow;
        }
        (*line)[n++] = (char)c;
    }
    if (ferror(f))
        return dsq_fail(err, DSQ_EINPUT, "%s: read error at line %zu: %s", where, line_no,
                        strerror(errno));
    if (c == EOF && n == 0)
        return -1;
    if (!*line) { /* an empty line before anything was allocated */
        if (!(*line = malloc(1)))
            return dsq_fail(err, DSQ_ERESOURCE, "%s: out of memory", where);
        *alloc = 1;
    }
    (*line)[n] = 0;
    *len = n;
    return DSQ_OK;
}
