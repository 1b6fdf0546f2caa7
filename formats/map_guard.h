/* Reads through a file mapping fault with SIGBUS when another process truncates the file under
 * it; such a fault can happen in any read of the weights, inside OpenMP kernels too, where no
 * error can be returned. Registered mappings turn that fault into a message naming the file,
 * removal of a pending temporary output, and exit status 2 (bad input). */
#ifndef DSQ_MAP_GUARD_H
#define DSQ_MAP_GUARD_H

#include <stddef.h>

/* Watches [start, start + len), the mapping of path (at most MAP_GUARD_SLOTS at once; more are
 * left to the default action). Installs the SIGBUS handler on first use. */
#define MAP_GUARD_SLOTS 16
void map_guard_add(const void *start, size_t len, const char *path);
void map_guard_remove(const void *start);

#endif
