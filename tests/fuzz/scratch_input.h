/* Fuzz targets whose parsers read files: each input is written to one scratch file per process
 * (removed at exit), rewritten for every input. */
#ifndef DSQ_SCRATCH_INPUT_H
#define DSQ_SCRATCH_INPUT_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char scratch_path[64];
static int scratch_fd = -1;

static void scratch_remove(void)
{
    unlink(scratch_path);
}

/* Writes data to the scratch file (named after prefix) and returns its path. */
static const char *scratch_write(const char *prefix, const uint8_t *data, size_t size)
{
    if (scratch_fd < 0) {
        snprintf(scratch_path, sizeof scratch_path, "/tmp/%s-XXXXXX", prefix);
        scratch_fd = mkstemp(scratch_path);
        if (scratch_fd < 0) {
            perror("mkstemp");
            abort();
        }
        atexit(scratch_remove);
    }
    if (ftruncate(scratch_fd, 0) != 0)
        abort();
    for (size_t done = 0; done < size;) {
        ssize_t r = pwrite(scratch_fd, data + done, size - done, (off_t)done);
        if (r <= 0)
            abort();
        done += (size_t)r;
    }
    return scratch_path;
}

#endif
