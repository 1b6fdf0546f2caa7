/* Output files that appear whole or not at all: written under a temporary name in the target's
 * folder, then fsynced and renamed. Any signal that ends the process while writing removes the
 * temporary file first. */
#ifndef DSQ_ATOMIC_FILE_H
#define DSQ_ATOMIC_FILE_H

#include "error.h"

typedef struct {
    char *final_path;
    char *tmp_path;
    int fd;
    int created; /* the temporary file exists and is ours to remove */
} atomic_file;

/* Creates the temporary file next to path. Fails naming path if its folder is not writable, or
 * (DSQ_EUSAGE) if path exists and is not a regular file (output_path.h). */
int atomic_file_create(atomic_file *af, const char *path, dsq_error *err);

/* Flushes to disk, renames onto the final path, syncs the folder. Closes the file. */
int atomic_file_commit(atomic_file *af, dsq_error *err);

/* Closes and removes the temporary file; safe to call after commit or on a zeroed struct. */
void atomic_file_abort(atomic_file *af);

/* Removes the temporary file being written, if any; async-signal-safe, for fatal-signal
 * handlers elsewhere. */
void atomic_file_remove_pending(void);

#endif
