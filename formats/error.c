/* Error helpers shared by every layer. */
#include "error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

int dsq_fail(dsq_error *err, enum dsq_status code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

enum dsq_status dsq_status_from_errno(int errnum)
{
    switch (errnum) {
    case ENOSPC:
    case EDQUOT:
    case ENOMEM:
    case EFBIG:
        return DSQ_ERESOURCE;
    default:
        return DSQ_EINPUT;
    }
}
