/* libFuzzer target for the --save-logits file reader: each input is written to a scratch file;
 * whatever opens must be exactly the size its header promises, and every chunk is read (row
 * checksums and fields checked) and its accepted rows decoded to a distribution. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "scratch_input.h"

#include "runtime/logits_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = scratch_write("fuzz-logits", data, size);
    logits_reader r;
    dsq_error err = {0};
    if (logits_reader_open(&r, path, &err) != DSQ_OK) {
        if (!err.msg[0])
            abort(); /* a refusal must say why */
        return 0;
    }
    if (logits_file_size(&r.h) != size)
        abort();
    const size_t rb = logits_row_bytes(r.h.vocab);
    uint8_t *rows = malloc((size_t)r.h.scored * rb); /* no more than the input holds */
    double *logp = malloc((size_t)r.h.vocab * sizeof *logp);
    for (uint32_t c = 0; rows && logp && c < r.h.n_chunk; c++) {
        if (logits_reader_read_chunk(&r, c, rows, &err) != DSQ_OK)
            break;
        for (uint32_t i = 0; i < r.h.scored; i++) {
            logits_row_decode(rows + (size_t)i * rb, r.h.vocab, logp);
            double sum = 0;
            for (uint32_t k = 0; k < r.h.vocab; k++)
                sum += exp(logp[k]);
            if (!(fabs(sum - 1.0) < 1e-6))
                abort(); /* a checked row decodes to a distribution */
        }
    }
    free(rows);
    free(logp);
    logits_reader_close(&r);
    return 0;
}
