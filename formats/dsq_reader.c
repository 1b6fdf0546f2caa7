/* .dsq reader: header and index validation, metadata inflation, name lookup, checksums. */
#include "dsq_reader.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

#include "byteorder.h"
#include "json_error.h"
#include "input_file.h"
#include "map_guard.h"
#include "types.h"

uint64_t dsq_tensor_numel(const dsq_tensor_info *t)
{
    uint64_t n = 1;
    for (uint32_t d = 0; d < t->ndim; d++)
        n *= t->shape[d];
    return n;
}

void dsq_tensor_rows_cols(const dsq_tensor_info *t, uint64_t *rows, uint64_t *cols)
{
    *cols = t->ndim ? t->shape[t->ndim - 1] : 1;
    *rows = 1;
    for (uint32_t d = 0; d + 1 < t->ndim; d++)
        *rows *= t->shape[d];
}

/* True if [off, off+len) lies inside [lo, hi), without overflow. */
static int range_inside(uint64_t off, uint64_t len, uint64_t lo, uint64_t hi)
{
    return off >= lo && off <= hi && len <= hi - off;
}

typedef struct {
    uint64_t data_off, data_size, index_off, index_size, meta_off, meta_size, meta_raw;
    uint32_t count, codec;
} header_fields;

static int check_header(dsq_file *f, header_fields *h, dsq_error *err)
{
    const uint8_t *p = f->map;
    const char *path = f->path;
    if (f->size < DSQ_HEADER_SIZE || memcmp(p, DSQ_MAGIC, 8) != 0)
        return dsq_fail(err, DSQ_EINPUT, "%s: not a .dsq file (no DSQMODEL magic)", path);
    f->version_major = le_get32(p + DSQ_HDR_VERSION_MAJOR);
    f->version_minor = le_get32(p + DSQ_HDR_VERSION_MINOR);
    if (f->version_major != DSQ_VERSION_MAJOR)
        return dsq_fail(err, DSQ_EINPUT,
                        "%s: format version %u.%u; this dsq reads version %d.x (%s)", path,
                        f->version_major, f->version_minor, DSQ_VERSION_MAJOR,
                        f->version_major > DSQ_VERSION_MAJOR ? "upgrade dsq" : "reconvert it");
    uint64_t declared = le_get64(p + DSQ_HDR_FILE_SIZE);
    if (declared != f->size)
        return dsq_fail(err, DSQ_EINPUT,
                        "%s: file is %llu bytes but its header says %llu: truncated or damaged",
                        path, (unsigned long long)f->size, (unsigned long long)declared);
    uint64_t sum = le_get64(p + DSQ_HDR_CHECKSUM);
    h->data_off = le_get64(p + DSQ_HDR_DATA_OFFSET);
    h->data_size = le_get64(p + DSQ_HDR_DATA_SIZE);
    h->index_off = le_get64(p + DSQ_HDR_INDEX_OFFSET);
    h->index_size = le_get64(p + DSQ_HDR_INDEX_SIZE);
    h->count = le_get32(p + DSQ_HDR_TENSOR_COUNT);
    h->meta_off = le_get64(p + DSQ_HDR_META_OFFSET);
    h->meta_size = le_get64(p + DSQ_HDR_META_SIZE);
    h->meta_raw = le_get64(p + DSQ_HDR_META_RAW_SIZE);
    h->codec = le_get32(p + DSQ_HDR_META_CODEC);
    if (le_get32(p + DSQ_HDR_ALIGNMENT) != DSQ_ALIGN)
        return dsq_fail(err, DSQ_EINPUT, "%s: header field alignment is %u, expected %d", path,
                        le_get32(p + DSQ_HDR_ALIGNMENT), DSQ_ALIGN);
    if (le_get32(p + DSQ_HDR_FLAGS) != 0)
        return dsq_fail(err, DSQ_EINPUT, "%s: header flags 0x%x unknown to this dsq", path,
                        le_get32(p + DSQ_HDR_FLAGS));
    if (!range_inside(h->data_off, h->data_size, DSQ_HEADER_SIZE, f->size))
        return dsq_fail(err, DSQ_EINPUT, "%s: header field data region lies outside the file",
                        path);
    if (!range_inside(h->index_off, h->index_size, h->data_off + h->data_size, f->size))
        return dsq_fail(err, DSQ_EINPUT, "%s: header field index region lies outside the file",
                        path);
    if (!range_inside(h->meta_off, h->meta_size, h->index_off + h->index_size, f->size))
        return dsq_fail(err, DSQ_EINPUT, "%s: header field metadata region lies outside the file",
                        path);
    if ((uint64_t)h->count * DSQ_RECORD_SIZE > h->index_size)
        return dsq_fail(err, DSQ_EINPUT, "%s: header field tensor_count %u exceeds the index",
                        path, h->count);
    XXH3_state_t *st = XXH3_createState();
    if (!st)
        return dsq_fail(err, DSQ_ERESOURCE, "%s: out of memory", path);
    XXH3_64bits_reset(st);
    XXH3_64bits_update(st, p, DSQ_HDR_CHECKSUM);
    XXH3_64bits_update(st, p + h->index_off, h->index_size);
    XXH3_64bits_update(st, p + h->meta_off, h->meta_size);
    uint64_t actual = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    if (actual != sum)
        return dsq_fail(err, DSQ_EINPUT,
                        "%s: header checksum mismatch: the header, index or metadata is damaged",
                        path);
    return DSQ_OK;
}

static int load_metadata(dsq_file *f, const header_fields *h, dsq_error *err)
{
    const char *path = f->path;
    const char *text = (const char *)f->map + h->meta_off;
    char *inflated = NULL;
    size_t len = h->meta_size;
    f->meta_codec = h->codec;
    f->meta_stored_size = h->meta_size;
    if (h->meta_raw > DSQ_MAX_META_RAW)
        return dsq_fail(err, DSQ_EINPUT,
                        "%s: header field meta_raw_size: metadata of %llu bytes exceeds the "
                        "%llu MiB this dsq reads",
                        path, (unsigned long long)h->meta_raw, DSQ_MAX_META_RAW >> 20);
    if (h->codec == DSQ_CODEC_ZSTD) {
        /* the frame must declare exactly meta_raw bytes, and ZSTD_decompress never writes past
         * the buffer of that size: inflation is bounded before it starts */
        unsigned long long declared = ZSTD_getFrameContentSize(text, h->meta_size);
        if (declared != h->meta_raw)
            return dsq_fail(err, DSQ_EINPUT, "%s: metadata: bad zstd frame size", path);
        inflated = malloc(h->meta_raw ? h->meta_raw : 1);
        if (!inflated)
            return dsq_fail(err, DSQ_ERESOURCE, "%s: out of memory for metadata", path);
        size_t got = ZSTD_decompress(inflated, h->meta_raw, text, h->meta_size);
        if (ZSTD_isError(got) || got != h->meta_raw) {
            free(inflated);
            return dsq_fail(err, DSQ_EINPUT, "%s: metadata: zstd decompression failed", path);
        }
        text = inflated;
        len = got;
    } else if (h->codec != DSQ_CODEC_NONE || h->meta_raw != h->meta_size) {
        return dsq_fail(err, DSQ_EINPUT, "%s: metadata codec %u unknown", path, h->codec);
    }
    json_error_t jerr;
    f->meta = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    free(inflated);
    if (!f->meta && dsq_json_out_of_memory(&jerr))
        return dsq_fail(err, DSQ_ERESOURCE, "%s: out of memory reading the metadata", path);
    if (!f->meta || !json_is_object(f->meta))
        return dsq_fail(err, DSQ_EINPUT, "%s: metadata is not a JSON object (line %d: %s)", path,
                        jerr.line, f->meta ? "not an object" : jerr.text);
    return DSQ_OK;
}

static int cmp_offset(const void *a, const void *b, void *ctx)
{
    const dsq_tensor_info *ts = ctx;
    const dsq_tensor_info *x = &ts[*(const uint32_t *)a], *y = &ts[*(const uint32_t *)b];
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static int cmp_name(const void *a, const void *b, void *ctx)
{
    const dsq_tensor_info *ts = ctx;
    return strcmp(ts[*(const uint32_t *)a].name, ts[*(const uint32_t *)b].name);
}

/* Parses and checks one index record into f->tensors[i]. */
static int load_record(dsq_file *f, const header_fields *h, uint32_t i, char **name_cursor,
                       dsq_error *err)
{
    const char *path = f->path;
    const uint8_t *r = f->map + h->index_off + (uint64_t)i * DSQ_RECORD_SIZE;
    const uint8_t *strtab = f->map + h->index_off + (uint64_t)h->count * DSQ_RECORD_SIZE;
    uint64_t strtab_size = h->index_size - (uint64_t)h->count * DSQ_RECORD_SIZE;
    uint32_t noff = le_get32(r + DSQ_REC_NAME_OFFSET), nlen = le_get32(r + DSQ_REC_NAME_LEN);
    if (nlen == 0 || nlen > DSQ_MAX_NAME || !range_inside(noff, nlen, 0, strtab_size) ||
        memchr(strtab + noff, 0, nlen))
        return dsq_fail(err, DSQ_EINPUT, "%s: tensor record %u: bad name", path, i);
    dsq_tensor_info *t = &f->tensors[i];
    memcpy(*name_cursor, strtab + noff, nlen);
    (*name_cursor)[nlen] = 0;
    t->name = *name_cursor;
    *name_cursor += nlen + 1;
    t->type = le_get32(r + DSQ_REC_TYPE);
    t->ndim = le_get32(r + DSQ_REC_NDIM);
    t->group_size = le_get32(r + DSQ_REC_GROUP);
    t->offset = le_get64(r + DSQ_REC_OFFSET);
    t->size = le_get64(r + DSQ_REC_SIZE);
    t->checksum = le_get64(r + DSQ_REC_CHECKSUM);
    if (!dsq_type_info(t->type))
        return dsq_fail(err, DSQ_EINPUT,
                        "%s: tensor %s has type id %u, unknown to this dsq (written by a newer "
                        "version?)",
                        path, t->name, t->type);
    if (le_get32(r + DSQ_REC_FLAGS) != 0)
        return dsq_fail(err, DSQ_EINPUT, "%s: tensor %s: flags 0x%x unknown to this dsq", path,
                        t->name, le_get32(r + DSQ_REC_FLAGS));
    if (t->ndim < 1 || t->ndim > DSQ_MAX_DIMS)
        return dsq_fail(err, DSQ_EINPUT, "%s: tensor %s: ndim %u out of range", path, t->name,
                        t->ndim);
    uint64_t rows = 1;
    for (uint32_t d = 0; d < DSQ_MAX_DIMS; d++) {
        uint64_t dim = le_get64(r + DSQ_REC_SHAPE + 8 * d);
        if ((d < t->ndim) != (dim != 0))
            return dsq_fail(err, DSQ_EINPUT, "%s: tensor %s: shape dim %u is %llu", path,
                            t->name, d, (unsigned long long)dim);
        if (d < t->ndim) {
            t->shape[d] = dim;
            if (d + 1 < t->ndim && __builtin_mul_overflow(rows, dim, &rows))
                return dsq_fail(err, DSQ_EINPUT, "%s: tensor %s: shape overflows", path, t->name);
        }
    }
    uint64_t expect;
    if (!dsq_type_nbytes(t->type, rows, t->shape[t->ndim - 1], t->group_size, &expect) ||
        expect != t->size)
        return dsq_fail(err, DSQ_EINPUT,
                        "%s: tensor %s: stored size %llu does not match its shape, type %s and "
                        "group size %u",
                        path, t->name, (unsigned long long)t->size, dsq_type_info(t->type)->name,
                        t->group_size);
    if (t->offset % DSQ_ALIGN != 0 ||
        !range_inside(t->offset, t->size, h->data_off, h->data_off + h->data_size))
        return dsq_fail(err, DSQ_EINPUT,
                        "%s: tensor %s: offset %llu size %llu outside the data region or "
                        "misaligned",
                        path, t->name, (unsigned long long)t->offset, (unsigned long long)t->size);
    return DSQ_OK;
}

static int load_index(dsq_file *f, const header_fields *h, dsq_error *err)
{
    const char *path = f->path;
    f->n_tensors = h->count;
    f->tensors = calloc(h->count ? h->count : 1, sizeof *f->tensors);
    f->by_name = calloc(h->count ? h->count : 1, sizeof *f->by_name);
    f->names = malloc(h->index_size + h->count + 1);
    uint32_t *by_offset = calloc(h->count ? h->count : 1, sizeof *by_offset);
    if (!f->tensors || !f->by_name || !f->names || !by_offset) {
        free(by_offset);
        return dsq_fail(err, DSQ_ERESOURCE, "%s: out of memory for the index", path);
    }
    char *cursor = f->names;
    int rc = DSQ_OK;
    for (uint32_t i = 0; i < h->count && !rc; i++) {
        rc = load_record(f, h, i, &cursor, err);
        f->by_name[i] = by_offset[i] = i;
    }
    if (!rc) {
        qsort_r(by_offset, h->count, sizeof *by_offset, cmp_offset, f->tensors);
        qsort_r(f->by_name, h->count, sizeof *f->by_name, cmp_name, f->tensors);
        for (uint32_t i = 1; i < h->count && !rc; i++) {
            const dsq_tensor_info *a = &f->tensors[by_offset[i - 1]];
            const dsq_tensor_info *b = &f->tensors[by_offset[i]];
            if (a->offset + a->size > b->offset)
                rc = dsq_fail(err, DSQ_EINPUT, "%s: tensors %s and %s overlap", path, a->name,
                              b->name);
            const char *n1 = f->tensors[f->by_name[i - 1]].name;
            if (!rc && strcmp(n1, f->tensors[f->by_name[i]].name) == 0)
                rc = dsq_fail(err, DSQ_EINPUT, "%s: tensor %s appears twice", path, n1);
        }
    }
    free(by_offset);
    return rc;
}

int dsq_file_open(dsq_file *f, const char *path, dsq_error *err)
{
    memset(f, 0, sizeof *f);
    f->path = strdup(path);
    if (!f->path)
        return dsq_fail(err, DSQ_ERESOURCE, "%s: out of memory", path);
    int fd;
    struct stat st;
    int rc = input_open(path, 0, &fd, &st, err);
    if (rc) {
        dsq_file_close(f);
        return rc;
    }
    if (st.st_size < DSQ_HEADER_SIZE)
        rc = dsq_fail(err, DSQ_EINPUT, "%s: %lld bytes is too short for a .dsq file", path,
                      (long long)st.st_size);
    if (!rc) {
        f->size = (uint64_t)st.st_size;
        void *m = mmap(NULL, f->size, PROT_READ, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED)
            rc = dsq_fail(err, DSQ_ERESOURCE, "%s: mmap failed: %s", path, strerror(errno));
        else
            f->map = m;
        if (f->map)
            map_guard_add(f->map, f->size, path);
    }
    close(fd);
    header_fields h = {0};
    if (!rc)
        rc = check_header(f, &h, err);
    if (!rc)
        rc = load_metadata(f, &h, err);
    if (!rc)
        rc = load_index(f, &h, err);
    if (rc)
        dsq_file_close(f);
    return rc;
}

void dsq_file_close(dsq_file *f)
{
    if (f->map) {
        map_guard_remove(f->map);
        munmap((void *)f->map, f->size);
    }
    json_decref(f->meta);
    free(f->tensors);
    free(f->by_name);
    free(f->names);
    free(f->path);
    memset(f, 0, sizeof *f);
}

const dsq_tensor_info *dsq_file_find(const dsq_file *f, const char *name)
{
    uint32_t lo = 0, hi = f->n_tensors;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = strcmp(f->tensors[f->by_name[mid]].name, name);
        if (c == 0)
            return &f->tensors[f->by_name[mid]];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

int dsq_file_verify_tensor(const dsq_file *f, const dsq_tensor_info *t, dsq_error *err)
{
    uint64_t sum = XXH3_64bits(f->map + t->offset, t->size);
    if (sum != t->checksum)
        return dsq_fail(err, DSQ_EINPUT,
                        "%s: tensor %s is damaged: checksum %016llx, expected %016llx", f->path,
                        t->name, (unsigned long long)sum, (unsigned long long)t->checksum);
    return DSQ_OK;
}
