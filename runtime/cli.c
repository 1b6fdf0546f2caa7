/* Helpers shared by the subcommands: error reporting, option parsing. */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_report(const char *cmd, const dsq_error *err)
{
    fprintf(stderr, "dsq %s: %s\n", cmd, err->msg);
    return err->code ? (int)err->code : 2;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "dsq %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'dsq %s --help'.\n", cmd);
    va_end(ap);
    return DSQ_EUSAGE;
}

bool cli_parse_int(const char *cmd, const char *opt, const char *text, long lo, long hi,
                   long *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < lo || v > hi) {
        cli_usage_error(cmd, "%s must be an integer from %ld to %ld, not '%s'", opt, lo, hi, text);
        return false;
    }
    *out = v;
    return true;
}

char *cli_command_line(int argc, char **argv)
{
    size_t len = sizeof "dsq ";
    for (int i = 0; i < argc; i++)
        len += strlen(argv[i]) + 1;
    char *s = malloc(len);
    if (!s)
        return NULL;
    strcpy(s, "dsq ");
    for (int i = 0; i < argc; i++) {
        strcat(s, argv[i]);
        if (i + 1 < argc)
            strcat(s, " ");
    }
    return s;
}
