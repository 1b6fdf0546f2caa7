/* The one check every command that writes a file makes before any work: the output must not
 * destroy anything. An existing output must be a regular file (renaming over a device node or a
 * FIFO would replace it; over a folder it fails after all the work), and it must not be one of
 * the command's inputs, under any name or link (same device and inode). */
#ifndef DSQ_OUTPUT_PATH_H
#define DSQ_OUTPUT_PATH_H

#include <stddef.h>

#include "error.h"

/* DSQ_OK, or DSQ_EUSAGE naming the output and what it is (or which input it is). Inputs that do
 * not exist are skipped; NULL entries too. */
int output_path_check(const char *out, const char *const *inputs, size_t n_inputs,
                      dsq_error *err);

#endif
