/* Terminal progress bar: percentage, bytes, rate and time left. */
#include "progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

double progress_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void progress_init(progress_bar *p, const char *label)
{
    p->label = label;
    p->enabled = isatty(STDERR_FILENO);
    p->start = progress_now();
    p->last_draw = 0;
}

void progress_update(progress_bar *p, uint64_t done, uint64_t total)
{
    double now = progress_now();
    if (!p->enabled || (now - p->last_draw < 0.1 && done < total))
        return;
    p->last_draw = now;
    double frac = total ? (double)done / (double)total : 1.0;
    double elapsed = now - p->start;
    double rate = elapsed > 0 ? (double)done / elapsed : 0;
    double left = rate > 0 ? (double)(total - done) / rate : 0;
    left = left < 359999 ? left : 359999; /* shown as minutes:seconds; keeps the cast defined */
    char bar[31];
    int filled = (int)(frac * 30);
    for (int i = 0; i < 30; i++)
        bar[i] = i < filled ? '=' : i == filled ? '>' : ' ';
    bar[30] = 0;
    fprintf(stderr, "\r%s %3d%% [%s] %.2f/%.2f GB  %.2f GB/s  %d:%02d left ", p->label,
            (int)(frac * 100), bar, (double)done / 1e9, (double)total / 1e9, rate / 1e9,
            (int)left / 60, (int)left % 60);
    fflush(stderr);
}

void progress_finish(progress_bar *p)
{
    if (p->enabled)
        fprintf(stderr, "\r\033[K");
}
