/* dsq verify FILE.dsq: every bound (on open) and every tensor checksum. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "model_file.h"
#include "progress.h"

static const char help[] =
    "usage: dsq verify FILE.dsq\n"
    "\n"
    "Checks the header checksum, every offset and size in the index, every tensor's shape\n"
    "against the model config, and every tensor's XXH3-64 checksum. Exits 0 if all hold;\n"
    "otherwise names the first damaged tensor (and how many are damaged) and exits 2.\n";

int cmd_verify(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            fputs(help, stdout);
            return 0;
        }
        return cli_usage_error("verify", "unknown option");
    }
    if (optind != argc - 1)
        return cli_usage_error("verify", "expected exactly one .dsq file");
    model_file m;
    dsq_error err = {0};
    if (model_file_open(&m, argv[optind], &err))
        return cli_report("verify", &err);
    uint32_t n = m.file.n_tensors;
    char *bad = calloc(n ? n : 1, 1);
    if (!bad) {
        model_file_close(&m);
        fprintf(stderr, "dsq verify: out of memory\n");
        return DSQ_ERESOURCE;
    }
    uint64_t total = 0;
    for (uint32_t i = 0; i < n; i++)
        total += m.file.tensors[i].size;
    progress_bar bar;
    progress_init(&bar, "verifying");
    uint64_t done = 0;
#pragma omp parallel for schedule(dynamic)
    for (uint32_t i = 0; i < n; i++) {
        bad[i] = dsq_file_verify_tensor(&m.file, &m.file.tensors[i], NULL) != DSQ_OK;
#pragma omp critical
        {
            done += m.file.tensors[i].size;
            progress_update(&bar, done, total);
        }
    }
    progress_finish(&bar);
    uint32_t n_bad = 0, first = n;
    for (uint32_t i = 0; i < n; i++)
        if (bad[i] && n_bad++ == 0)
            first = i;
    int rc = 0;
    if (n_bad) {
        dsq_file_verify_tensor(&m.file, &m.file.tensors[first], &err);
        fprintf(stderr, "dsq verify: %s (%u of %u tensors damaged)\n", err.msg, n_bad, n);
        rc = DSQ_EINPUT;
    } else {
        printf("%s: OK: %u tensors, %.3f GB, header, index and all checksums verified\n",
               m.file.path, n, (double)total / 1e9);
    }
    free(bad);
    model_file_close(&m);
    return rc;
}
