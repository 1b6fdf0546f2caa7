/* libFuzzer target for the safetensors reader: each input is written to a scratch file, opened
 * with st_open_file, and every tensor is looked up by name and read in full. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "scratch_input.h"

#include "formats/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = scratch_write("fuzz-safetensors", data, size);
    st_checkpoint ck;
    dsq_error err = {0};
    if (st_open_file(&ck, path, &err) != 0) {
        /* A failed open must leave nothing behind and say why. */
        if (ck.shards || ck.tensors || ck.by_name || !err.msg[0])
            abort();
        return 0;
    }
    for (int i = 0; i < ck.n_tensors; i++) {
        const st_tensor *t = &ck.tensors[i];
        if (st_find(&ck, t->name) != t)
            abort();
        /* Validated tensors lie inside the file, which is no larger than the input. */
        if (t->offset + t->size > ck.shards[t->shard].file_size)
            abort();
        void *buf = malloc(t->size ? t->size : 1);
        if (!buf || st_read(&ck, t, 0, buf, t->size, &err) != 0)
            abort();
        free(buf);
    }
    st_close(&ck);
    return 0;
}
