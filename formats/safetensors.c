/* safetensors files: header parsing and validation, the name index, and pread-based tensor reads.
 * Folder and index-file handling (st_open_dir) is in safetensors_index.c. */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "byteorder.h"
#include "json_error.h"
#include "input_file.h"

/* The upstream safetensors library refuses larger headers, so no real file has one. */
#define ST_MAX_HEADER 100000000u

/* Largest single pread; Linux transfers at most ~2 GiB per call anyway. */
#define ST_READ_CHUNK ((size_t)1 << 30)

static const struct {
    const char *name;
    st_dtype dtype;
    size_t size;
} supported_dtypes[] = {
    {"F32", ST_F32, 4},
    {"F16", ST_F16, 2},
    {"BF16", ST_BF16, 2},
};

/* The other dtypes safetensors defines: known, so they get "unsupported" rather than "unknown". */
static const char *const unsupported_dtypes[] = {
    "F64", "I64", "I32", "I16",     "I8",  "U8", "BOOL",    "F8_E4M3", "F8_E5M2",
    "U16", "U32", "U64", "F8_E8M0", "C64", "F4", "F6_E2M3", "F6_E3M2",
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

size_t st_dtype_size(st_dtype dtype)
{
    for (size_t i = 0; i < COUNT(supported_dtypes); i++)
        if (supported_dtypes[i].dtype == dtype)
            return supported_dtypes[i].size;
    return 0;
}

const char *st_dtype_name(st_dtype dtype)
{
    for (size_t i = 0; i < COUNT(supported_dtypes); i++)
        if (supported_dtypes[i].dtype == dtype)
            return supported_dtypes[i].name;
    return "?";
}

/* Reads exactly len bytes at off, retrying short reads and EINTR. what names the data read. */
static int pread_full(int fd, void *buf, size_t len, uint64_t off, const char *path,
                      const char *what, dsq_error *err)
{
    char *p = buf;
    while (len > 0) {
        size_t chunk = len < ST_READ_CHUNK ? len : ST_READ_CHUNK;
        ssize_t r = pread(fd, p, chunk, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return dsq_fail(err, dsq_status_from_errno(errno), "%s: reading %s: %s", path, what,
                            strerror(errno));
        if (r == 0)
            return dsq_fail(err, DSQ_EINPUT,
                            "%s: reading %s: unexpected end of file at byte %llu (was the file "
                            "truncated after it was opened?)",
                            path, what, (unsigned long long)off);
        p += r;
        off += (uint64_t)r;
        len -= (size_t)r;
    }
    return 0;
}

/* Reads the 8-byte length prefix and the JSON header of shard s, and parses it. */
static int read_header(st_shard *s, json_t **root, dsq_error *err)
{
    uint8_t prefix[8];
    if (s->file_size < 8)
        return dsq_fail(err, DSQ_EINPUT,
                        "%s: file is %llu bytes, too short for the 8-byte header length of a "
                        "safetensors file",
                        s->path, (unsigned long long)s->file_size);
    int rc = pread_full(s->fd, prefix, 8, 0, s->path, "the header length", err);
    if (rc)
        return rc;
    uint64_t n = le_get64(prefix);
    if (n > s->file_size - 8)
        return dsq_fail(err, DSQ_EINPUT,
                        "%s: header length %llu is past the end of the file (%llu bytes); is this "
                        "a safetensors file?",
                        s->path, (unsigned long long)n, (unsigned long long)s->file_size);
    if (n > ST_MAX_HEADER)
        return dsq_fail(err, DSQ_EINPUT, "%s: header length %llu is over the %u-byte limit",
                        s->path, (unsigned long long)n, ST_MAX_HEADER);
    s->header_size = n;

    char *text = malloc(n ? n : 1);
    if (!text)
        return dsq_fail(err, DSQ_ERESOURCE, "%s: out of memory for a %llu-byte header", s->path,
                        (unsigned long long)n);
    rc = pread_full(s->fd, text, n, 8, s->path, "the header", err);
    if (rc) {
        free(text);
        return rc;
    }
    /* jansson keeps the last of two equal keys silently; a repeated tensor name is an error. */
    json_error_t je;
    *root = json_loadb(text, n, JSON_REJECT_DUPLICATES, &je);
    free(text);
    if (!*root && dsq_json_out_of_memory(&je))
        return dsq_fail(err, DSQ_ERESOURCE, "%s: out of memory reading the header JSON", s->path);
    if (!*root && json_error_code(&je) == json_error_duplicate_key)
        return dsq_fail(err, DSQ_EINPUT,
                        "%s: header names a tensor twice, at line %d, column %d: %s", s->path,
                        je.line, je.column, je.text);
    if (!*root)
        return dsq_fail(err, DSQ_EINPUT, "%s: header JSON is malformed at line %d, column %d: %s",
                        s->path, je.line, je.column, je.text);
    if (!json_is_object(*root))
        return dsq_fail(err, DSQ_EINPUT, "%s: header must be a JSON object, not %s", s->path,
                        dsq_json_type_name(*root));
    return 0;
}

/* __metadata__ is free-form string -> string; nothing in it is used, but it must be that. */
static int check_metadata(const char *path, json_t *meta, dsq_error *err)
{
    if (!json_is_object(meta))
        return dsq_fail(err, DSQ_EINPUT, "%s: \"__metadata__\" must be an object, not %s", path,
                        dsq_json_type_name(meta));
    const char *key;
    json_t *v;
    json_object_foreach(meta, key, v)
    {
        if (!json_is_string(v))
            return dsq_fail(err, DSQ_EINPUT,
                            "%s: \"__metadata__\" value \"%s\" must be a string, not %s", path, key,
                            dsq_json_type_name(v));
    }
    return 0;
}

/* Returns entry[field] if it has the JSON type want, else NULL with err set. */
static json_t *get_field(const char *path, const char *name, json_t *entry, const char *field,
                         json_type want, const char *want_name, dsq_error *err)
{
    json_t *v = json_object_get(entry, field);
    if (!v)
        dsq_fail(err, DSQ_EINPUT, "%s: tensor \"%s\": missing field \"%s\"", path, name, field);
    else if (json_typeof(v) != want)
        dsq_fail(err, DSQ_EINPUT, "%s: tensor \"%s\": field \"%s\" must be %s, not %s", path, name,
                 field, want_name, dsq_json_type_name(v));
    else
        return v;
    return NULL;
}

static int parse_dtype(const char *path, const char *name, json_t *v, st_tensor *t, dsq_error *err)
{
    const char *s = json_string_value(v);
    for (size_t i = 0; i < COUNT(supported_dtypes); i++) {
        if (strcmp(s, supported_dtypes[i].name) == 0) {
            t->dtype = supported_dtypes[i].dtype;
            return 0;
        }
    }
    for (size_t i = 0; i < COUNT(unsupported_dtypes); i++)
        if (strcmp(s, unsupported_dtypes[i]) == 0)
            return dsq_fail(err, DSQ_EINPUT,
                            "%s: unsupported dtype %s for tensor \"%s\" (dsq reads BF16, F16 and "
                            "F32)",
                            path, s, name);
    return dsq_fail(err, DSQ_EINPUT, "%s: tensor \"%s\": unknown dtype \"%s\"", path, name, s);
}

/* Fills t->ndim and t->shape, and *count with the element count (checked for overflow). */
static int parse_shape(const char *path, const char *name, json_t *v, st_tensor *t, uint64_t *count,
                       dsq_error *err)
{
    size_t n = json_array_size(v);
    if (n > ST_MAX_DIMS)
        return dsq_fail(err, DSQ_EINPUT,
                        "%s: tensor \"%s\": shape has %zu dimensions, more than %d", path, name, n,
                        ST_MAX_DIMS);
    uint64_t product = 1;
    for (size_t i = 0; i < n; i++) {
        json_t *d = json_array_get(v, i);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return dsq_fail(err, DSQ_EINPUT,
                            "%s: tensor \"%s\": shape[%zu] must be a non-negative integer", path,
                            name, i);
        t->shape[i] = (uint64_t)json_integer_value(d);
        if (__builtin_mul_overflow(product, t->shape[i], &product))
            return dsq_fail(err, DSQ_EINPUT,
                            "%s: tensor \"%s\": shape's element count overflows 64 bits", path,
                            name);
    }
    t->ndim = (int)n;
    *count = product;
    return 0;
}

/* Reads data_offsets as [begin, end] relative to the data region of data_size bytes. */
static int parse_offsets(const char *path, const char *name, json_t *v, uint64_t data_size,
                         uint64_t *begin, uint64_t *end, dsq_error *err)
{
    json_t *b = json_array_get(v, 0), *e = json_array_get(v, 1);
    if (json_array_size(v) != 2 || !json_is_integer(b) || !json_is_integer(e) ||
        json_integer_value(b) < 0 || json_integer_value(e) < 0)
        return dsq_fail(err, DSQ_EINPUT,
                        "%s: tensor \"%s\": data_offsets must be two non-negative integers "
                        "[begin, end]",
                        path, name);
    *begin = (uint64_t)json_integer_value(b);
    *end = (uint64_t)json_integer_value(e);
    if (*begin > *end)
        return dsq_fail(err, DSQ_EINPUT, "%s: tensor \"%s\": data_offsets begin %llu > end %llu",
                        path, name, (unsigned long long)*begin, (unsigned long long)*end);
    if (*end > data_size)
        return dsq_fail(err, DSQ_EINPUT,
                        "%s: tensor \"%s\": data_offsets end %llu is past the end of the file "
                        "(the data region is %llu bytes)",
                        path, name, (unsigned long long)*end, (unsigned long long)data_size);
    return 0;
}

/* Writes "[2, 3]" into buf, for messages. */
static void format_shape(char *buf, size_t cap, const st_tensor *t)
{
    size_t used = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < t->ndim && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%llu", i ? ", " : "",
                                 (unsigned long long)t->shape[i]);
    if (used < cap)
        snprintf(buf + used, cap - used, "]");
}

/* Parses one header entry into t (name not yet set). */
static int parse_tensor(const st_shard *s, const char *name, json_t *entry, st_tensor *t,
                        dsq_error *err)
{
    if (!json_is_object(entry))
        return dsq_fail(err, DSQ_EINPUT, "%s: tensor \"%s\": entry must be an object, not %s",
                        s->path, name, dsq_json_type_name(entry));
    json_t *dtype = get_field(s->path, name, entry, "dtype", JSON_STRING, "a string", err);
    json_t *shape =
        dtype ? get_field(s->path, name, entry, "shape", JSON_ARRAY, "an array", err) : NULL;
    json_t *offs =
        shape ? get_field(s->path, name, entry, "data_offsets", JSON_ARRAY, "an array", err) : NULL;
    if (!offs)
        return DSQ_EINPUT;

    uint64_t count = 0, begin = 0, end = 0, bytes;
    uint64_t data_size = s->file_size - 8 - s->header_size;
    int rc = parse_dtype(s->path, name, dtype, t, err);
    if (!rc)
        rc = parse_shape(s->path, name, shape, t, &count, err);
    if (!rc)
        rc = parse_offsets(s->path, name, offs, data_size, &begin, &end, err);
    if (rc)
        return rc;
    if (__builtin_mul_overflow(count, (uint64_t)st_dtype_size(t->dtype), &bytes))
        return dsq_fail(err, DSQ_EINPUT, "%s: tensor \"%s\": shape's byte size overflows 64 bits",
                        s->path, name);
    if (end - begin != bytes) {
        char dims[256];
        format_shape(dims, sizeof dims, t);
        return dsq_fail(err, DSQ_EINPUT,
                        "%s: tensor \"%s\": data_offsets span %llu bytes, but dtype %s and shape "
                        "%s need %llu",
                        s->path, name, (unsigned long long)(end - begin), st_dtype_name(t->dtype),
                        dims, (unsigned long long)bytes);
    }
    t->offset = 8 + s->header_size + begin;
    t->size = bytes;
    return 0;
}

static int cmp_offset(const void *a, const void *b)
{
    const st_tensor *x = a, *y = b;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    if (x->size != y->size)
        return x->size < y->size ? -1 : 1;
    return strcmp(x->name, y->name); /* only empty tensors can tie; keep their order fixed */
}

/* Sorts one shard's tensors by offset and rejects any two whose byte ranges overlap. Empty
 * tensors occupy no bytes, so they overlap nothing. */
static int check_overlaps(const st_shard *s, st_tensor *t, int n, dsq_error *err)
{
    qsort(t, (size_t)n, sizeof *t, cmp_offset);
    const st_tensor *last = NULL; /* the non-empty tensor reaching furthest so far */
    for (int i = 0; i < n; i++) {
        if (t[i].size == 0)
            continue;
        if (last && t[i].offset < last->offset + last->size) {
            uint64_t data = 8 + s->header_size; /* messages give offsets as the header does */
            return dsq_fail(err, DSQ_EINPUT,
                            "%s: tensors \"%s\" and \"%s\" overlap (data_offsets [%llu, %llu] and "
                            "[%llu, %llu])",
                            s->path, last->name, t[i].name,
                            (unsigned long long)(last->offset - data),
                            (unsigned long long)(last->offset - data + last->size),
                            (unsigned long long)(t[i].offset - data),
                            (unsigned long long)(t[i].offset - data + t[i].size));
        }
        if (!last || t[i].offset + t[i].size > last->offset + last->size)
            last = &t[i];
    }
    return 0;
}

/* Appends a shard slot with its path and an fd of -1, so st_close can always clean it up. */
static st_shard *new_shard(st_checkpoint *ck, const char *path, dsq_error *err)
{
    st_shard *shards = realloc(ck->shards, ((size_t)ck->n_shards + 1) * sizeof *shards);
    if (!shards)
        return dsq_fail(err, DSQ_ERESOURCE, "%s: out of memory", path), NULL;
    ck->shards = shards;
    st_shard *s = &shards[ck->n_shards];
    *s = (st_shard){.path = strdup(path), .fd = -1};
    if (!s->path)
        return dsq_fail(err, DSQ_ERESOURCE, "%s: out of memory", path), NULL;
    ck->n_shards++;
    return s;
}

static int open_shard(st_shard *s, dsq_error *err)
{
    struct stat sb;
    int rc = input_open(s->path, 0, &s->fd, &sb, err);
    if (rc)
        return rc;
    s->file_size = (uint64_t)sb.st_size;
    return 0;
}

/* Parses every header entry of shard index si into ck->tensors. */
static int add_tensors(st_checkpoint *ck, int si, json_t *root, dsq_error *err)
{
    const st_shard *s = &ck->shards[si];
    size_t room = (size_t)ck->n_tensors + json_object_size(root);
    if (room > INT32_MAX)
        return dsq_fail(err, DSQ_EINPUT, "%s: too many tensors", s->path);
    st_tensor *tensors = realloc(ck->tensors, (room ? room : 1) * sizeof *tensors);
    if (!tensors)
        return dsq_fail(err, DSQ_ERESOURCE, "%s: out of memory for the tensor list", s->path);
    ck->tensors = tensors;

    int first = ck->n_tensors;
    const char *name;
    json_t *entry;
    json_object_foreach(root, name, entry)
    {
        if (strcmp(name, "__metadata__") == 0) {
            int rc = check_metadata(s->path, entry, err);
            if (rc)
                return rc;
            continue;
        }
        st_tensor *t = &ck->tensors[ck->n_tensors];
        *t = (st_tensor){.shard = si};
        int rc = parse_tensor(s, name, entry, t, err);
        if (rc)
            return rc;
        if (!(t->name = strdup(name)))
            return dsq_fail(err, DSQ_ERESOURCE, "%s: out of memory", s->path);
        ck->n_tensors++;
    }
    return check_overlaps(s, ck->tensors + first, ck->n_tensors - first, err);
}

int st_add_shard(st_checkpoint *ck, const char *path, dsq_error *err)
{
    st_shard *s = new_shard(ck, path, err);
    if (!s)
        return DSQ_ERESOURCE;
    json_t *root = NULL;
    int rc = open_shard(s, err);
    if (!rc)
        rc = read_header(s, &root, err);
    if (!rc)
        rc = add_tensors(ck, ck->n_shards - 1, root, err);
    json_decref(root);
    return rc;
}

static int cmp_name(const void *a, const void *b)
{
    const st_tensor *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

int st_finish(st_checkpoint *ck, dsq_error *err)
{
    free(ck->by_name);
    ck->by_name = malloc((ck->n_tensors ? (size_t)ck->n_tensors : 1) * sizeof *ck->by_name);
    if (!ck->by_name)
        return dsq_fail(err, DSQ_ERESOURCE, "out of memory for the tensor name index");
    for (int i = 0; i < ck->n_tensors; i++)
        ck->by_name[i] = &ck->tensors[i];
    qsort(ck->by_name, (size_t)ck->n_tensors, sizeof *ck->by_name, cmp_name);
    /* Within one file the JSON parser rejects repeats, so an equal pair spans two shards. */
    for (int i = 1; i < ck->n_tensors; i++) {
        const st_tensor *a = ck->by_name[i - 1], *b = ck->by_name[i];
        if (strcmp(a->name, b->name) == 0) {
            const char *pa = ck->shards[a->shard].path, *pb = ck->shards[b->shard].path;
            if (a->shard > b->shard) {
                const char *tmp = pa;
                pa = pb;
                pb = tmp;
            }
            return dsq_fail(err, DSQ_EINPUT, "tensor \"%s\" is in both %s and %s", a->name, pa, pb);
        }
    }
    return 0;
}

int st_open_file(st_checkpoint *ck, const char *path, dsq_error *err)
{
    memset(ck, 0, sizeof *ck);
    int rc = st_add_shard(ck, path, err);
    if (!rc)
        rc = st_finish(ck, err);
    if (rc)
        st_close(ck);
    return rc;
}

void st_close(st_checkpoint *ck)
{
    for (int i = 0; i < ck->n_shards; i++) {
        if (ck->shards[i].fd >= 0)
            close(ck->shards[i].fd);
        free(ck->shards[i].path);
    }
    for (int i = 0; i < ck->n_tensors; i++)
        free(ck->tensors[i].name);
    free(ck->shards);
    free(ck->tensors);
    free(ck->by_name);
    memset(ck, 0, sizeof *ck);
}

const st_tensor *st_find(const st_checkpoint *ck, const char *name)
{
    int lo = 0, hi = ck->by_name ? ck->n_tensors : 0;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(name, ck->by_name[mid]->name);
        if (c == 0)
            return ck->by_name[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

int st_read(const st_checkpoint *ck, const st_tensor *t, uint64_t offset, void *buf, size_t len,
            dsq_error *err)
{
    if (t->shard < 0 || t->shard >= ck->n_shards)
        return dsq_fail(err, DSQ_EUSAGE, "tensor \"%s\": shard %d is not in this checkpoint",
                        t->name, t->shard);
    const st_shard *s = &ck->shards[t->shard];
    if (offset > t->size || len > t->size - offset)
        return dsq_fail(
            err, DSQ_EUSAGE, "%s: tensor \"%s\": read of %zu bytes at %llu is past its %llu bytes",
            s->path, t->name, len, (unsigned long long)offset, (unsigned long long)t->size);
    char what[300];
    snprintf(what, sizeof what, "tensor \"%s\"", t->name);
    return pread_full(s->fd, buf, len, t->offset + offset, s->path, what, err);
}
