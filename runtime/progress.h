/* A one-line progress bar on stderr, drawn only when stderr is a terminal. */
#ifndef DSQ_PROGRESS_H
#define DSQ_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    const char *label;
    bool enabled;
    double start, last_draw;
} progress_bar;

void progress_init(progress_bar *p, const char *label);
/* done/total in bytes; redraws at most ten times a second. */
void progress_update(progress_bar *p, uint64_t done, uint64_t total);
/* Clears the line. */
void progress_finish(progress_bar *p);
/* Seconds since an arbitrary start, monotonic. */
double progress_now(void);

#endif
