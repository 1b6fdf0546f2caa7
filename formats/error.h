/* Error values returned by library code: a category (mapped to the CLI exit code) and a message
 * that names the file and the field. Only the CLI decides to print and exit. */
#ifndef DSQ_ERROR_H
#define DSQ_ERROR_H

enum dsq_status {
    DSQ_OK = 0,
    DSQ_EUSAGE = 1,    /* bad command line or argument value */
    DSQ_EINPUT = 2,    /* bad or unsupported input file */
    DSQ_ERESOURCE = 3, /* out of memory, disk, or device */
};

typedef struct {
    enum dsq_status code;
    char msg[1024];
} dsq_error;

/* Sets err (if not NULL) and returns code, so callers can `return dsq_fail(...)`. */
int dsq_fail(dsq_error *err, enum dsq_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Maps an errno from an I/O call to a category: ENOSPC/ENOMEM/EDQUOT are resources. */
enum dsq_status dsq_status_from_errno(int errnum);

#endif
