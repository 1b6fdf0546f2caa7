/* Earliest position where a stop string matches or may still match. */
#include "stop_strings.h"

#include <string.h>

size_t stop_strings_scan(const char *const *stops, int n, const char *text, size_t len, bool final,
                         bool *hit)
{
    *hit = false;
    for (size_t p = 0; p < len; p++) {
        size_t avail = len - p;
        for (int i = 0; i < n; i++) {
            size_t sl = strlen(stops[i]);
            if (avail >= sl && memcmp(text + p, stops[i], sl) == 0) {
                *hit = true;
                return p;
            }
        }
        for (int i = 0; !final && i < n; i++)
            if (avail < strlen(stops[i]) && memcmp(text + p, stops[i], avail) == 0)
                return p; /* the rest may still grow into this stop string */
    }
    return len;
}
