/* Reader for Hugging Face safetensors checkpoints: one file, or shards listed by
 * model.safetensors.index.json. Headers are validated up front; tensor bytes are read on demand
 * with pread, so a conversion holds only the chunk it is working on. */
#ifndef DSQ_SAFETENSORS_H
#define DSQ_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define ST_MAX_DIMS 8

typedef enum { ST_F32, ST_F16, ST_BF16 } st_dtype;

typedef struct {
    char *name;
    st_dtype dtype;
    int ndim;
    uint64_t shape[ST_MAX_DIMS];
    uint64_t offset; /* absolute byte offset in its shard */
    uint64_t size;   /* bytes */
    int shard;       /* index into st_checkpoint.shards */
} st_tensor;

typedef struct {
    char *path;
    int fd;
    uint64_t file_size;
    uint64_t header_size; /* the JSON header's length, excluding the 8-byte prefix */
} st_shard;

typedef struct {
    st_shard *shards;
    int n_shards;
    st_tensor *tensors; /* sorted by (shard, offset): reading in this order is sequential */
    int n_tensors;
    st_tensor **by_name; /* the same tensors sorted by name, for st_find */
} st_checkpoint;

/* Opens the checkpoint in dir: model.safetensors.index.json if present, else model.safetensors,
 * else every *.safetensors file in the folder. Validates every header and the index. */
int st_open_dir(st_checkpoint *ck, const char *dir, dsq_error *err);

/* Opens a single safetensors file. */
int st_open_file(st_checkpoint *ck, const char *path, dsq_error *err);

void st_close(st_checkpoint *ck);

/* Returns the tensor named name, or NULL. */
const st_tensor *st_find(const st_checkpoint *ck, const char *name);

/* Reads len bytes starting at offset within tensor t into buf. */
int st_read(const st_checkpoint *ck, const st_tensor *t, uint64_t offset, void *buf, size_t len,
            dsq_error *err);

/* Bytes per element of a dtype. */
size_t st_dtype_size(st_dtype dtype);
const char *st_dtype_name(st_dtype dtype);

/* Building blocks shared by safetensors.c and safetensors_index.c (folder and index handling).
 * st_add_shard opens and validates one file and appends its tensors; st_finish builds the name
 * index and rejects a name that two shards both hold. On failure the caller calls st_close. */
int st_add_shard(st_checkpoint *ck, const char *path, dsq_error *err);
int st_finish(st_checkpoint *ck, dsq_error *err);

#endif
