/* .dsq writer: layout, streaming data writes with per-tensor XXH3, index/metadata/header. */
#include "dsq_writer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

#include "atomic_file.h"
#include "byteorder.h"
#include "types.h"

#define META_ZSTD_LEVEL 12

typedef struct {
    dsq_tensor_info info;
    uint64_t written;
    XXH3_state_t *hash; /* live only while the tensor is partly written */
} pending_tensor;

struct dsq_writer {
    atomic_file out;
    pending_tensor *tensors;
    uint32_t n_tensors, cap_tensors;
    uint64_t data_end; /* absolute offset just past the last tensor */
    int data_begun;
};

static uint64_t align_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) / a * a;
}

static int write_all(dsq_writer *w, const void *buf, size_t len, uint64_t off, dsq_error *err)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = pwrite(w->out.fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? errno : EIO;
            return dsq_fail(err, dsq_status_from_errno(e), "%s: write failed: %s",
                            w->out.final_path, strerror(e));
        }
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return DSQ_OK;
}

int dsq_writer_create(dsq_writer **out, const char *path, dsq_error *err)
{
    dsq_writer *w = calloc(1, sizeof *w);
    if (!w)
        return dsq_fail(err, DSQ_ERESOURCE, "%s: out of memory", path);
    int rc = atomic_file_create(&w->out, path, err);
    if (rc) {
        free(w);
        return rc;
    }
    *out = w;
    return DSQ_OK;
}

int dsq_writer_add(dsq_writer *w, const char *name, uint32_t type, uint32_t ndim,
                   const uint64_t *shape, uint32_t group_size, uint32_t *index, dsq_error *err)
{
    const char *path = w->out.final_path;
    if (w->data_begun)
        return dsq_fail(err, DSQ_EUSAGE, "%s: tensor %s declared after data began", path, name);
    size_t name_len = strlen(name);
    if (name_len == 0 || name_len > DSQ_MAX_NAME)
        return dsq_fail(err, DSQ_EINPUT, "%s: tensor name '%s' is empty or too long", path, name);
    if (ndim < 1 || ndim > DSQ_MAX_DIMS)
        return dsq_fail(err, DSQ_EINPUT, "%s: tensor %s has %u dims (1..%d allowed)", path, name,
                        ndim, DSQ_MAX_DIMS);
    if (w->n_tensors == w->cap_tensors) {
        uint32_t cap = w->cap_tensors ? 2 * w->cap_tensors : 256;
        pending_tensor *t = realloc(w->tensors, cap * sizeof *t);
        if (!t)
            return dsq_fail(err, DSQ_ERESOURCE, "%s: out of memory", path);
        w->tensors = t;
        w->cap_tensors = cap;
    }
    pending_tensor *t = &w->tensors[w->n_tensors];
    memset(t, 0, sizeof *t);
    t->info.name = strdup(name);
    if (!t->info.name)
        return dsq_fail(err, DSQ_ERESOURCE, "%s: out of memory", path);
    t->info.type = type;
    t->info.ndim = ndim;
    for (uint32_t d = 0; d < ndim; d++)
        t->info.shape[d] = shape[d];
    t->info.group_size = group_size;
    uint64_t rows, cols;
    dsq_tensor_rows_cols(&t->info, &rows, &cols);
    if (!dsq_type_nbytes(type, rows, cols, group_size, &t->info.size)) {
        free((char *)t->info.name);
        return dsq_fail(err, DSQ_EINPUT, "%s: tensor %s: shape does not fit type %u (group %u)",
                        path, name, type, group_size);
    }
    *index = w->n_tensors++;
    return DSQ_OK;
}

int dsq_writer_begin_data(dsq_writer *w, dsq_error *err)
{
    uint64_t off = DSQ_ALIGN; /* the header owns the first page */
    for (uint32_t i = 0; i < w->n_tensors; i++) {
        w->tensors[i].info.offset = off;
        off = align_up(off + w->tensors[i].info.size, DSQ_ALIGN);
    }
    w->data_end = w->n_tensors ? w->tensors[w->n_tensors - 1].info.offset +
                                     w->tensors[w->n_tensors - 1].info.size
                               : DSQ_ALIGN;
    w->data_begun = 1;
    int rc = posix_fallocate(w->out.fd, 0, (off_t)w->data_end);
    if (rc == ENOSPC || rc == EFBIG || rc == EDQUOT)
        return dsq_fail(err, DSQ_ERESOURCE,
                        "%s: not enough disk space for %.1f MB of tensor data: %s",
                        w->out.final_path, (double)w->data_end / 1e6, strerror(rc));
    return DSQ_OK; /* other failures (no fallocate support) surface at write time */
}

uint64_t dsq_writer_data_bytes(const dsq_writer *w)
{
    return w->data_end - DSQ_ALIGN;
}

const dsq_tensor_info *dsq_writer_tensor(const dsq_writer *w, uint32_t index)
{
    return index < w->n_tensors ? &w->tensors[index].info : NULL;
}

int dsq_writer_write(dsq_writer *w, uint32_t index, const void *buf, size_t len, dsq_error *err)
{
    const char *path = w->out.final_path;
    if (!w->data_begun || index >= w->n_tensors)
        return dsq_fail(err, DSQ_EUSAGE, "%s: write to undeclared tensor %u", path, index);
    pending_tensor *t = &w->tensors[index];
    if (len > t->info.size - t->written)
        return dsq_fail(err, DSQ_EUSAGE, "%s: tensor %s: %zu bytes past its %llu", path,
                        t->info.name, len, (unsigned long long)t->info.size);
    if (t->written == 0) {
        t->hash = XXH3_createState();
        if (!t->hash || XXH3_64bits_reset(t->hash) != XXH_OK)
            return dsq_fail(err, DSQ_ERESOURCE, "%s: out of memory", path);
    }
    int rc = write_all(w, buf, len, t->info.offset + t->written, err);
    if (rc)
        return rc;
    XXH3_64bits_update(t->hash, buf, len);
    t->written += len;
    if (t->written == t->info.size) {
        t->info.checksum = XXH3_64bits_digest(t->hash);
        XXH3_freeState(t->hash);
        t->hash = NULL;
    }
    return DSQ_OK;
}

/* Serializes the tensor records and their string table. */
static uint8_t *build_index(const dsq_writer *w, uint64_t *size_out)
{
    uint64_t names = 0;
    for (uint32_t i = 0; i < w->n_tensors; i++)
        names += strlen(w->tensors[i].info.name);
    uint64_t size = (uint64_t)w->n_tensors * DSQ_RECORD_SIZE + names;
    uint8_t *buf = calloc(1, size ? size : 1);
    if (!buf)
        return NULL;
    uint8_t *strtab = buf + (uint64_t)w->n_tensors * DSQ_RECORD_SIZE;
    uint32_t name_off = 0;
    for (uint32_t i = 0; i < w->n_tensors; i++) {
        const dsq_tensor_info *t = &w->tensors[i].info;
        uint8_t *r = buf + (uint64_t)i * DSQ_RECORD_SIZE;
        uint32_t len = (uint32_t)strlen(t->name);
        memcpy(strtab + name_off, t->name, len);
        le_put32(r + DSQ_REC_NAME_OFFSET, name_off);
        le_put32(r + DSQ_REC_NAME_LEN, len);
        le_put32(r + DSQ_REC_TYPE, t->type);
        le_put32(r + DSQ_REC_NDIM, t->ndim);
        le_put32(r + DSQ_REC_GROUP, t->group_size);
        for (uint32_t d = 0; d < t->ndim; d++)
            le_put64(r + DSQ_REC_SHAPE + 8 * d, t->shape[d]);
        le_put64(r + DSQ_REC_OFFSET, t->offset);
        le_put64(r + DSQ_REC_SIZE, t->size);
        le_put64(r + DSQ_REC_CHECKSUM, t->checksum);
        name_off += len;
    }
    *size_out = size;
    return buf;
}

int dsq_writer_finish(dsq_writer *w, const char *meta_json, size_t meta_len, dsq_error *err)
{
    const char *path = w->out.final_path;
    if (!w->data_begun)
        return dsq_fail(err, DSQ_EUSAGE, "%s: finish before data", path);
    for (uint32_t i = 0; i < w->n_tensors; i++)
        if (w->tensors[i].written != w->tensors[i].info.size)
            return dsq_fail(err, DSQ_EUSAGE, "%s: tensor %s incomplete (%llu of %llu bytes)", path,
                            w->tensors[i].info.name, (unsigned long long)w->tensors[i].written,
                            (unsigned long long)w->tensors[i].info.size);

    if (meta_len > DSQ_MAX_META_RAW)
        return dsq_fail(err, DSQ_EINPUT,
                        "%s: metadata of %zu bytes exceeds the %llu MiB a reader accepts (is the "
                        "tokenizer or chat template that large?)",
                        path, meta_len, DSQ_MAX_META_RAW >> 20);
    uint64_t index_size;
    uint8_t *index = build_index(w, &index_size);
    size_t zcap = ZSTD_compressBound(meta_len);
    uint8_t *zmeta = malloc(zcap);
    if (!index || !zmeta) {
        free(index);
        free(zmeta);
        return dsq_fail(err, DSQ_ERESOURCE, "%s: out of memory", path);
    }
    size_t zlen = ZSTD_compress(zmeta, zcap, meta_json, meta_len, META_ZSTD_LEVEL);
    int zstd_pays = !ZSTD_isError(zlen) && zlen < meta_len;
    const void *meta = zstd_pays ? (const void *)zmeta : (const void *)meta_json;
    uint64_t meta_size = zstd_pays ? zlen : meta_len;

    uint64_t index_off = align_up(w->data_end, 64);
    uint64_t meta_off = index_off + index_size;
    uint8_t hdr[DSQ_HEADER_SIZE] = {0};
    memcpy(hdr + DSQ_HDR_MAGIC, DSQ_MAGIC, 8);
    le_put32(hdr + DSQ_HDR_VERSION_MAJOR, DSQ_VERSION_MAJOR);
    /* the oldest minor version that knows every type used, so a file without q6 stays 1.0 and
     * readers of 1.0 still open it */
    uint32_t minor = 0;
    for (uint32_t i = 0; i < w->n_tensors; i++)
        if (w->tensors[i].info.type == DSQ_TYPE_Q6)
            minor = DSQ_VERSION_MINOR; /* 1, which added q6 */
    le_put32(hdr + DSQ_HDR_VERSION_MINOR, minor);
    le_put64(hdr + DSQ_HDR_FILE_SIZE, meta_off + meta_size);
    le_put64(hdr + DSQ_HDR_DATA_OFFSET, DSQ_ALIGN);
    le_put64(hdr + DSQ_HDR_DATA_SIZE, w->data_end - DSQ_ALIGN);
    le_put64(hdr + DSQ_HDR_INDEX_OFFSET, index_off);
    le_put64(hdr + DSQ_HDR_INDEX_SIZE, index_size);
    le_put32(hdr + DSQ_HDR_TENSOR_COUNT, w->n_tensors);
    le_put32(hdr + DSQ_HDR_ALIGNMENT, DSQ_ALIGN);
    le_put64(hdr + DSQ_HDR_META_OFFSET, meta_off);
    le_put64(hdr + DSQ_HDR_META_SIZE, meta_size);
    le_put64(hdr + DSQ_HDR_META_RAW_SIZE, meta_len);
    le_put32(hdr + DSQ_HDR_META_CODEC, zstd_pays ? DSQ_CODEC_ZSTD : DSQ_CODEC_NONE);
    XXH3_state_t *h = XXH3_createState();
    int rc = h ? DSQ_OK : dsq_fail(err, DSQ_ERESOURCE, "%s: out of memory", path);
    if (!rc) {
        XXH3_64bits_reset(h);
        XXH3_64bits_update(h, hdr, DSQ_HDR_CHECKSUM);
        XXH3_64bits_update(h, index, index_size);
        XXH3_64bits_update(h, meta, meta_size);
        le_put64(hdr + DSQ_HDR_CHECKSUM, XXH3_64bits_digest(h));
        XXH3_freeState(h);
        rc = write_all(w, index, index_size, index_off, err);
    }
    if (!rc)
        rc = write_all(w, meta, meta_size, meta_off, err);
    if (!rc)
        rc = write_all(w, hdr, sizeof hdr, 0, err);
    if (!rc && ftruncate(w->out.fd, (off_t)(meta_off + meta_size)) != 0)
        rc = dsq_fail(err, dsq_status_from_errno(errno), "%s: truncate failed: %s", path,
                      strerror(errno));
    free(index);
    free(zmeta);
    if (!rc)
        rc = atomic_file_commit(&w->out, err);
    return rc;
}

void dsq_writer_free(dsq_writer *w)
{
    if (!w)
        return;
    atomic_file_abort(&w->out);
    for (uint32_t i = 0; i < w->n_tensors; i++) {
        free((char *)w->tensors[i].info.name);
        XXH3_freeState(w->tensors[i].hash);
    }
    free(w->tensors);
    free(w);
}
