/* .dsq container: write/read round trip, checksums, and refusal of damaged files. */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "byteorder.h"
#include "dsq_reader.h"
#include "dsq_writer.h"
#include "test.h"
#include "types.h"

static const char *meta = "{\"model\": {\"family\": \"test\"}, \"pad\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}";

/* Writes a file with a 3x5 f32 tensor "a" and a 7-element bf16 tensor "b"; returns its path. */
static const char *write_sample(const char *name)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", test_tmp_dir(), name);
    dsq_error err = {0};
    dsq_writer *w = NULL;
    uint32_t ia, ib;
    uint64_t sa[2] = {3, 5}, sb[1] = {7};
    float a[15];
    uint16_t b[7];
    for (int i = 0; i < 15; i++)
        a[i] = (float)i * 0.5f - 3.0f;
    for (int i = 0; i < 7; i++)
        b[i] = (uint16_t)(0x3f80 + i);
    CHECK(dsq_writer_create(&w, path, &err) == DSQ_OK);
    CHECK(dsq_writer_add(w, "a", DSQ_TYPE_F32, 2, sa, 0, &ia, &err) == DSQ_OK);
    CHECK(dsq_writer_add(w, "b", DSQ_TYPE_BF16, 1, sb, 0, &ib, &err) == DSQ_OK);
    CHECK(dsq_writer_begin_data(w, &err) == DSQ_OK);
    CHECK(dsq_writer_write(w, ib, b, 3 * 2, &err) == DSQ_OK); /* tensors may interleave */
    CHECK(dsq_writer_write(w, ia, a, sizeof a, &err) == DSQ_OK);
    CHECK(dsq_writer_write(w, ib, b + 3, 4 * 2, &err) == DSQ_OK);
    CHECK_MSG(dsq_writer_finish(w, meta, strlen(meta), &err) == DSQ_OK, "%s", err.msg);
    dsq_writer_free(w);
    return path;
}

static void patch_byte(const char *path, uint64_t off, uint8_t xor_mask)
{
    int fd = open(path, O_RDWR);
    uint8_t c;
    CHECK(pread(fd, &c, 1, (off_t)off) == 1);
    c ^= xor_mask;
    CHECK(pwrite(fd, &c, 1, (off_t)off) == 1);
    close(fd);
}

/* Rewrites the header checksum after a deliberate edit, so deeper checks are reached. */
static void reseal(const char *path)
{
    int fd = open(path, O_RDWR);
    struct stat st;
    fstat(fd, &st);
    uint8_t *buf = malloc((size_t)st.st_size);
    CHECK(pread(fd, buf, (size_t)st.st_size, 0) == st.st_size);
    XXH3_state_t *h = XXH3_createState();
    XXH3_64bits_reset(h);
    XXH3_64bits_update(h, buf, DSQ_HDR_CHECKSUM);
    XXH3_64bits_update(h, buf + le_get64(buf + DSQ_HDR_INDEX_OFFSET),
                       le_get64(buf + DSQ_HDR_INDEX_SIZE));
    XXH3_64bits_update(h, buf + le_get64(buf + DSQ_HDR_META_OFFSET),
                       le_get64(buf + DSQ_HDR_META_SIZE));
    le_put64(buf + DSQ_HDR_CHECKSUM, XXH3_64bits_digest(h));
    XXH3_freeState(h);
    CHECK(pwrite(fd, buf, DSQ_HEADER_SIZE, 0) == DSQ_HEADER_SIZE);
    free(buf);
    close(fd);
}

static uint64_t header_u64(const char *path, int off)
{
    int fd = open(path, O_RDONLY);
    uint8_t b[8] = {0};
    CHECK(pread(fd, b, 8, off) == 8);
    close(fd);
    return le_get64(b);
}

TEST(round_trip)
{
    const char *path = write_sample("rt.dsq");
    dsq_file f;
    dsq_error err = {0};
    CHECK_MSG(dsq_file_open(&f, path, &err) == DSQ_OK, "%s", err.msg);
    CHECK_EQ_INT(f.n_tensors, 2);
    const dsq_tensor_info *a = dsq_file_find(&f, "a"), *b = dsq_file_find(&f, "b");
    CHECK(a && b && !dsq_file_find(&f, "c"));
    if (a && b) {
        CHECK_EQ_INT(a->shape[0], 3);
        CHECK_EQ_INT(a->shape[1], 5);
        CHECK_EQ_INT(a->offset % DSQ_ALIGN, 0);
        CHECK_EQ_INT(b->offset % DSQ_ALIGN, 0);
        const float *av = dsq_file_data(&f, a);
        CHECK(av[14] == 14 * 0.5f - 3.0f);
        const uint16_t *bv = dsq_file_data(&f, b);
        CHECK_EQ_INT(bv[6], 0x3f86);
        CHECK(dsq_file_verify_tensor(&f, a, &err) == DSQ_OK);
        CHECK(dsq_file_verify_tensor(&f, b, &err) == DSQ_OK);
    }
    CHECK_STR_CONTAINS(json_string_value(json_object_get(json_object_get(f.meta, "model"),
                                                         "family")),
                       "test");
    dsq_file_close(&f);
}

TEST(flipped_data_byte_names_tensor)
{
    const char *path = write_sample("flip.dsq");
    dsq_file f;
    dsq_error err = {0};
    CHECK(dsq_file_open(&f, path, &err) == DSQ_OK);
    uint64_t off_b = dsq_file_find(&f, "b")->offset;
    dsq_file_close(&f);
    patch_byte(path, off_b + 5, 0x10);
    CHECK(dsq_file_open(&f, path, &err) == DSQ_OK); /* data is checked by verify, not open */
    CHECK(dsq_file_verify_tensor(&f, dsq_file_find(&f, "a"), &err) == DSQ_OK);
    CHECK(dsq_file_verify_tensor(&f, dsq_file_find(&f, "b"), &err) == DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "tensor b is damaged");
    dsq_file_close(&f);
}

TEST(flipped_header_byte)
{
    const char *path = write_sample("hdr.dsq");
    patch_byte(path, DSQ_HDR_META_CODEC - 4, 0x01); /* inside META_RAW_SIZE */
    dsq_file f;
    dsq_error err = {0};
    CHECK(dsq_file_open(&f, path, &err) == DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "header checksum mismatch");
    CHECK_STR_CONTAINS(err.msg, "hdr.dsq");
}

TEST(flipped_metadata_byte)
{
    const char *path = write_sample("meta.dsq");
    patch_byte(path, header_u64(path, DSQ_HDR_META_OFFSET) + 2, 0x20);
    dsq_file f;
    dsq_error err = {0};
    CHECK(dsq_file_open(&f, path, &err) == DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "checksum mismatch");
}

TEST(truncated_file)
{
    const char *path = write_sample("trunc.dsq");
    struct stat st;
    stat(path, &st);
    CHECK(truncate(path, st.st_size - 10) == 0);
    dsq_file f;
    dsq_error err = {0};
    CHECK(dsq_file_open(&f, path, &err) == DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "truncated");
    CHECK(truncate(path, 50) == 0);
    CHECK(dsq_file_open(&f, path, &err) == DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "too short");
}

TEST(not_a_dsq_file)
{
    char path[512];
    snprintf(path, sizeof path, "%s/notdsq.bin", test_tmp_dir());
    FILE *fp = fopen(path, "wb");
    for (int i = 0; i < 300; i++)
        fputc('x', fp);
    fclose(fp);
    dsq_file f;
    dsq_error err = {0};
    CHECK(dsq_file_open(&f, path, &err) == DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "not a .dsq file");
}

TEST(newer_major_version)
{
    const char *path = write_sample("v2.dsq");
    patch_byte(path, DSQ_HDR_VERSION_MAJOR, 0x01 ^ 0x02); /* 1 -> 2 */
    reseal(path);
    dsq_file f;
    dsq_error err = {0};
    CHECK(dsq_file_open(&f, path, &err) == DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "format version 2.0");
    CHECK_STR_CONTAINS(err.msg, "upgrade dsq");
}

TEST(index_record_checks)
{
    const char *path = write_sample("rec.dsq");
    uint64_t idx = header_u64(path, DSQ_HDR_INDEX_OFFSET);
    dsq_file f;
    dsq_error err = {0};

    patch_byte(path, idx + DSQ_REC_TYPE, 0x40); /* type id 64: unknown */
    reseal(path);
    CHECK(dsq_file_open(&f, path, &err) == DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "tensor a has type id 64");
    patch_byte(path, idx + DSQ_REC_TYPE, 0x40);

    patch_byte(path, idx + DSQ_REC_SHAPE, 0x04); /* 3x5 -> 7x5: size no longer matches */
    reseal(path);
    CHECK(dsq_file_open(&f, path, &err) == DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "tensor a: stored size");
    patch_byte(path, idx + DSQ_REC_SHAPE, 0x04);

    patch_byte(path, idx + DSQ_REC_OFFSET + 5, 0x01); /* offset far past the data region */
    reseal(path);
    CHECK(dsq_file_open(&f, path, &err) == DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "outside the data region");
    patch_byte(path, idx + DSQ_REC_OFFSET + 5, 0x01);

    /* point b at a's offset: overlap */
    int fd = open(path, O_RDWR);
    uint8_t off_a[8];
    CHECK(pread(fd, off_a, 8, (off_t)(idx + DSQ_REC_OFFSET)) == 8);
    uint8_t off_b[8];
    CHECK(pread(fd, off_b, 8, (off_t)(idx + DSQ_RECORD_SIZE + DSQ_REC_OFFSET)) == 8);
    CHECK(pwrite(fd, off_a, 8, (off_t)(idx + DSQ_RECORD_SIZE + DSQ_REC_OFFSET)) == 8);
    close(fd);
    reseal(path);
    CHECK(dsq_file_open(&f, path, &err) == DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "overlap");
}

TEST(writer_leaves_nothing_on_failure)
{
    char path[512];
    snprintf(path, sizeof path, "%s/incomplete.dsq", test_tmp_dir());
    dsq_error err = {0};
    dsq_writer *w = NULL;
    uint32_t ia;
    uint64_t shape[1] = {4};
    float v[2] = {1, 2};
    CHECK(dsq_writer_create(&w, path, &err) == DSQ_OK);
    CHECK(dsq_writer_add(w, "a", DSQ_TYPE_F32, 1, shape, 0, &ia, &err) == DSQ_OK);
    CHECK(dsq_writer_begin_data(w, &err) == DSQ_OK);
    CHECK(dsq_writer_write(w, ia, v, sizeof v, &err) == DSQ_OK);
    CHECK(dsq_writer_finish(w, "{}", 2, &err) != DSQ_OK);
    CHECK_STR_CONTAINS(err.msg, "tensor a incomplete");
    dsq_writer_free(w);
    CHECK(access(path, F_OK) != 0);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "ls -A '%s' | grep -q tmp", test_tmp_dir());
    CHECK_MSG(system(cmd) != 0, "a temporary file was left behind");
}

TEST(writer_unwritable_folder)
{
    dsq_error err = {0};
    dsq_writer *w = NULL;
    CHECK(dsq_writer_create(&w, "/nonexistent-dir/x.dsq", &err) != DSQ_OK);
    CHECK_STR_CONTAINS(err.msg, "/nonexistent-dir/x.dsq");
    CHECK_STR_CONTAINS(err.msg, "cannot create");
}
