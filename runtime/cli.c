/* Helpers shared by the subcommands: error reporting, option parsing. */
#include "cli.h"

#include <errno.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_cpu.h"

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

bool cli_set_threads(const char *cmd, const char *text)
{
    long n;
    if (!cli_parse_int(cmd, "--threads", text, 1, 1024, &n))
        return false;
    omp_set_num_threads((int)n);
    return true;
}

bool cli_set_activations(const char *cmd, const char *text)
{
    if (strcmp(text, "int8") && strcmp(text, "f32")) {
        cli_usage_error(cmd, "--activations must be int8 or f32, not '%s'", text);
        return false;
    }
    dsq_cpu_set_int8_activations(strcmp(text, "int8") == 0);
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
