/* Stop strings checked across token boundaries: generated text is released only up to where a
 * stop string could still begin, so a stop string split over several tokens is caught and never
 * sent. */
#ifndef DSQ_STOP_STRINGS_H
#define DSQ_STOP_STRINGS_H

#include <stdbool.h>
#include <stddef.h>

/* Scans text[0..len) (not yet released) for the n stop strings (non-empty). Returns how many
 * bytes may be released now. *hit is set when a stop string begins at the returned offset: the
 * text ends there. Otherwise the bytes past the returned offset are a proper prefix of some stop
 * string and are held back, unless final (no more text will come), when only whole matches
 * count and everything else is released. */
size_t stop_strings_scan(const char *const *stops, int n, const char *text, size_t len, bool final,
                         bool *hit);

#endif
