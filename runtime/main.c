/* dsq: one binary, subcommands. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "version.h"

static const char usage[] =
    "usage: dsq <command> [options]\n"
    "\n"
    "Converts DeepSeek mixture-of-experts checkpoints (DeepSeek-MoE, DeepSeek-V2, V2-Lite) from\n"
    "Hugging Face safetensors into one self-describing .dsq file, and inspects such files.\n"
    "\n"
    "commands:\n"
    "  convert HF_DIR -o OUT.dsq   convert a checkpoint folder (config.json, tokenizer.json,\n"
    "                              *.safetensors with or without an index)\n"
    "  info    FILE.dsq            model config, parameter counts, sizes, tokenizer, provenance\n"
    "  verify  FILE.dsq            check every checksum and bound; names the first bad tensor\n"
    "\n"
    "'dsq <command> --help' describes a command's options.\n"
    "exit codes: 0 ok, 1 usage error, 2 bad input file, 3 out of memory or disk\n";

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return 1;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        fputs(usage, stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        printf("dsq %s\n", DSQ_TOOL_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "convert"))
        return cmd_convert(argc - 1, argv + 1);
    if (!strcmp(cmd, "info"))
        return cmd_info(argc - 1, argv + 1);
    if (!strcmp(cmd, "verify"))
        return cmd_verify(argc - 1, argv + 1);
    fprintf(stderr, "dsq: unknown command '%s'\n\n%s", cmd, usage);
    return 1;
}
