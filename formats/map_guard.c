/* SIGBUS inside a watched mapping: "dsq: FILE changed while being read", exit 2. The handler is
 * the simplest mechanism that covers every mapped read (verify's checksums, the forward pass on
 * many threads, quantize's re-encoding) without a check around each; it only calls
 * async-signal-safe functions (write, unlink, _exit). */
#include "map_guard.h"

#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "atomic_file.h"

typedef struct {
    volatile sig_atomic_t used;
    uintptr_t start;
    size_t len;
    char path[1024];
    size_t path_len;
} guarded_map;

static guarded_map maps[MAP_GUARD_SLOTS];
static struct sigaction previous; /* for faults outside every watched mapping */

static void say(const char *s, size_t n)
{
    while (n > 0) {
        ssize_t k = write(STDERR_FILENO, s, n);
        if (k <= 0)
            return;
        s += k;
        n -= (size_t)k;
    }
}

static void on_sigbus(int sig, siginfo_t *info, void *uctx)
{
    const uintptr_t a = (uintptr_t)info->si_addr;
    atomic_file_remove_pending();
    for (int i = 0; i < MAP_GUARD_SLOTS; i++) {
        if (maps[i].used && a - maps[i].start < maps[i].len) {
            static const char head[] = "dsq: ", tail[] =
                " changed while being read (truncated by another process?)\n";
            say(head, sizeof head - 1);
            say(maps[i].path, maps[i].path_len);
            say(tail, sizeof tail - 1);
            _exit(2);
        }
    }
    /* Not ours: a fault repeats under the handler that was there before (default, sanitizer);
     * a SIGBUS sent by kill() is sent again. */
    sigaction(sig, &previous, NULL);
    if (info->si_code <= 0)
        raise(sig);
    (void)uctx;
}

void map_guard_add(const void *start, size_t len, const char *path)
{
    static int installed;
    if (!installed) {
        struct sigaction sa = {.sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO};
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGBUS, &sa, &previous) != 0)
            return;
        installed = 1;
    }
    for (int i = 0; i < MAP_GUARD_SLOTS; i++) {
        if (maps[i].used)
            continue;
        size_t n = strlen(path);
        n = n < sizeof maps[i].path - 1 ? n : sizeof maps[i].path - 1;
        memcpy(maps[i].path, path, n);
        maps[i].path[n] = 0;
        maps[i].path_len = n;
        maps[i].start = (uintptr_t)start;
        maps[i].len = len;
        maps[i].used = 1;
        return;
    }
}

void map_guard_remove(const void *start)
{
    for (int i = 0; i < MAP_GUARD_SLOTS; i++)
        if (maps[i].used && maps[i].start == (uintptr_t)start)
            maps[i].used = 0;
}
