/* Refuses an output path that is not a regular file or that is one of the inputs. */
#include "output_path.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "input_file.h"

int output_path_check(const char *out, const char *const *inputs, size_t n_inputs,
                      dsq_error *err)
{
    struct stat o;
    if (stat(out, &o) != 0)
        return DSQ_OK; /* nothing there yet (or unreachable: creating it will say why) */
    if (S_ISDIR(o.st_mode))
        return dsq_fail(err, DSQ_EUSAGE, "%s: the output is a folder; give a file name", out);
    if (!S_ISREG(o.st_mode))
        return dsq_fail(err, DSQ_EUSAGE,
                        "%s: the output is %s, not a regular file; refusing to replace it", out,
                        input_file_kind(o.st_mode));
    for (size_t i = 0; i < n_inputs; i++) {
        struct stat in;
        if (inputs[i] && stat(inputs[i], &in) == 0 && in.st_dev == o.st_dev &&
            in.st_ino == o.st_ino)
            return dsq_fail(err, DSQ_EUSAGE,
                            "%s: the output is the same file as the input %s; refusing to "
                            "overwrite an input",
                            out, inputs[i]);
    }
    return DSQ_OK;
}
