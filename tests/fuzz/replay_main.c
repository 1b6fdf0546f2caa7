/* Runs a libFuzzer target over the files named on the command line, without libFuzzer, so the
 * targets build with gcc and replay their seed corpus in `make test` (and under sanitizers). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
    int failed = 0;
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) {
            perror(argv[i]);
            failed++;
            continue;
        }
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        rewind(f);
        uint8_t *buf = malloc(size > 0 ? (size_t)size : 1);
        if (!buf || fread(buf, 1, (size_t)size, f) != (size_t)size) {
            fprintf(stderr, "%s: read failed\n", argv[i]);
            failed++;
        } else {
            LLVMFuzzerTestOneInput(buf, (size_t)size);
        }
        free(buf);
        fclose(f);
    }
    printf("%s: %d passed, %d failed\n", argv[0], argc - 1 - failed, failed);
    return failed != 0;
}
