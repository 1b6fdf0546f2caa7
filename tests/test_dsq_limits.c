/* Bounds on what a .dsq can make a reader allocate: metadata that inflates past the cap is
 * refused before inflating, and a writer never makes metadata a reader would refuse. */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

#include "byteorder.h"
#include "dsq_reader.h"
#include "dsq_writer.h"
#include "test.h"
#include "types.h"

static const char *small_meta = "{\"format\": \"dsq\"}";

/* A valid file with one 4-element f32 tensor and the given metadata. */
static int write_file(const char *path, const char *meta, size_t meta_len, dsq_error *err)
{
    dsq_writer *w = NULL;
    uint32_t idx;
    uint64_t shape[1] = {4};
    float v[4] = {1, 2, 3, 4};
    int rc = dsq_writer_create(&w, path, err);
    if (!rc)
        rc = dsq_writer_add(w, "t", DSQ_TYPE_F32, 1, shape, 0, &idx, err);
    if (!rc)
        rc = dsq_writer_begin_data(w, err);
    if (!rc)
        rc = dsq_writer_write(w, idx, v, sizeof v, err);
    if (!rc)
        rc = dsq_writer_finish(w, meta, meta_len, err);
    dsq_writer_free(w);
    return rc;
}

/* Replaces the file's metadata (its last region) by a zstd frame of raw bytes and reseals the
 * header, as a hostile writer could. */
static void replace_metadata(const char *path, const char *raw, size_t raw_len)
{
    size_t cap = ZSTD_compressBound(raw_len);
    uint8_t *z = malloc(cap);
    size_t zlen = ZSTD_compress(z, cap, raw, raw_len, 1);
    CHECK(!ZSTD_isError(zlen));
    int fd = open(path, O_RDWR);
    uint8_t hdr[DSQ_HEADER_SIZE];
    CHECK(pread(fd, hdr, sizeof hdr, 0) == (ssize_t)sizeof hdr);
    uint64_t meta_off = le_get64(hdr + DSQ_HDR_META_OFFSET);
    uint64_t index_off = le_get64(hdr + DSQ_HDR_INDEX_OFFSET);
    uint64_t index_size = le_get64(hdr + DSQ_HDR_INDEX_SIZE);
    CHECK(pwrite(fd, z, zlen, (off_t)meta_off) == (ssize_t)zlen);
    CHECK(ftruncate(fd, (off_t)(meta_off + zlen)) == 0);
    le_put64(hdr + DSQ_HDR_FILE_SIZE, meta_off + zlen);
    le_put64(hdr + DSQ_HDR_META_SIZE, zlen);
    le_put64(hdr + DSQ_HDR_META_RAW_SIZE, raw_len);
    le_put32(hdr + DSQ_HDR_META_CODEC, DSQ_CODEC_ZSTD);
    uint8_t *index = malloc(index_size);
    CHECK(pread(fd, index, index_size, (off_t)index_off) == (ssize_t)index_size);
    XXH3_state_t *h = XXH3_createState();
    XXH3_64bits_reset(h);
    XXH3_64bits_update(h, hdr, DSQ_HDR_CHECKSUM);
    XXH3_64bits_update(h, index, index_size);
    XXH3_64bits_update(h, z, zlen);
    le_put64(hdr + DSQ_HDR_CHECKSUM, XXH3_64bits_digest(h));
    XXH3_freeState(h);
    CHECK(pwrite(fd, hdr, sizeof hdr, 0) == (ssize_t)sizeof hdr);
    close(fd);
    free(index);
    free(z);
}

/* 100 MiB of JSON in a frame of a few kilobytes: refused by its declared size, and the file
 * stays small, so the refusal cannot have come from anything but the cap. */
TEST(metadata_bomb_refused_before_inflating)
{
    char path[512];
    snprintf(path, sizeof path, "%s/bomb.dsq", test_tmp_dir());
    dsq_error err = {0};
    CHECK_MSG(write_file(path, small_meta, strlen(small_meta), &err) == DSQ_OK, "%s", err.msg);
    const size_t raw_len = 100u << 20;
    char *raw = malloc(raw_len);
    memset(raw, ' ', raw_len);
    memcpy(raw, "{\"format\": \"dsq\", \"pad\": \"", 26);
    memset(raw + 26, 'a', raw_len - 28);
    memcpy(raw + raw_len - 2, "\"}", 2);
    replace_metadata(path, raw, raw_len);
    free(raw);
    struct stat st;
    CHECK(stat(path, &st) == 0 && st.st_size < (1 << 20));
    dsq_file f;
    CHECK(dsq_file_open(&f, path, &err) == DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "bomb.dsq: header field meta_raw_size: metadata of 104857600 "
                                "bytes exceeds the 64 MiB this dsq reads");
}

/* Just under the cap is read (the cap is not off by one, and zstd metadata still opens). */
TEST(metadata_under_cap_opens)
{
    char path[512];
    snprintf(path, sizeof path, "%s/under.dsq", test_tmp_dir());
    dsq_error err = {0};
    CHECK(write_file(path, small_meta, strlen(small_meta), &err) == DSQ_OK);
    const char *raw = "{\"format\": \"dsq\", \"note\": \"zstd frame written by the test\"}";
    replace_metadata(path, raw, strlen(raw));
    dsq_file f;
    CHECK_MSG(dsq_file_open(&f, path, &err) == DSQ_OK, "%s", err.msg);
    CHECK(json_is_string(json_object_get(f.meta, "note")));
    dsq_file_close(&f);
}

/* The writer refuses metadata over the reader's cap, so it never makes a file no reader opens;
 * nothing is left under the final name. */
TEST(writer_refuses_metadata_over_cap)
{
    char path[512];
    snprintf(path, sizeof path, "%s/huge-meta.dsq", test_tmp_dir());
    size_t len = DSQ_MAX_META_RAW + 1;
    char *meta = calloc(len, 1); /* zero pages: never touched when the cap holds */
    dsq_error err = {0};
    CHECK(write_file(path, meta, len, &err) == DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "exceeds the 64 MiB a reader accepts");
    CHECK(access(path, F_OK) != 0);
    free(meta);
}
