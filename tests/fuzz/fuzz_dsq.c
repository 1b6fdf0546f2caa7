/* libFuzzer target for the .dsq reader: each input is written to a scratch file and opened as a
 * model; whatever opens must have every tensor inside the file, and verify must not crash. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "scratch_input.h"

#include "convert/model_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = scratch_write("fuzz-dsq", data, size);
    dsq_error err = {0};
    dsq_file f;
    if (dsq_file_open(&f, path, &err) != DSQ_OK) {
        if (!err.msg[0])
            abort(); /* a refusal must say why */
        return 0;
    }
    for (uint32_t i = 0; i < f.n_tensors; i++) {
        const dsq_tensor_info *t = &f.tensors[i];
        if (t->offset + t->size > f.size || dsq_file_find(&f, t->name) != t)
            abort();
        dsq_file_verify_tensor(&f, t, &err);
    }
    dsq_file_close(&f);
    model_file m;
    if (model_file_open(&m, path, &err) == DSQ_OK)
        model_file_close(&m);
    return 0;
}
