/* Subcommands of the dsq binary and the helpers they share. Exit codes: 0 ok, 1 usage,
 * 2 bad input, 3 resource (memory, disk, device). */
#ifndef DSQ_CLI_H
#define DSQ_CLI_H

#include <stdbool.h>

#include "error.h"

int cmd_convert(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_ppl(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_experts(int argc, char **argv);

/* Prints "dsq <cmd>: message" to stderr and returns the error's exit code. */
int cli_report(const char *cmd, const dsq_error *err);

/* Prints a usage error with a pointer to --help; returns 1. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parses an integer option value in [lo, hi]; false (with a message) otherwise. */
bool cli_parse_int(const char *cmd, const char *opt, const char *text, long lo, long hi,
                   long *out);

/* --threads N for the commands that run a model: OpenMP's team size from now on (without the
 * option: OMP_NUM_THREADS, else every core); false (with a message) if N is not 1..1024. */
bool cli_set_threads(const char *cmd, const char *text);

/* --activations int8|f32 for the commands that run a model: how q8/q4 matmuls take their
 * input (runtime/backend_cpu.h); false (with a message) for anything else. */
bool cli_set_activations(const char *cmd, const char *text);

/* The whole command line as one string, for provenance (malloc'd). */
char *cli_command_line(int argc, char **argv);

#endif
