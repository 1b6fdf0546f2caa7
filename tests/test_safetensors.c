/* Tests for formats/safetensors.c and safetensors_index.c: valid files and folders read back
 * exactly, and every malformed input fails with DSQ_EINPUT and a message naming file and field. */
#include "test.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/byteorder.h"
#include "formats/safetensors.h"

/* A fresh subfolder of the scratch folder, so tests do not see each other's files. */
static const char *sub_dir(const char *name)
{
    static char buf[8][512];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, 512, "%s/%s", test_tmp_dir(), name);
    mkdir(p, 0755);
    return p;
}

static const char *in_dir(const char *dir, const char *name)
{
    static char buf[8][512];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, 512, "%s/%s", dir, name);
    return p;
}

static void write_bytes(const char *path, const void *bytes, size_t len)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f)
        return;
    CHECK(fwrite(bytes, 1, len, f) == len);
    fclose(f);
}

/* Writes a safetensors file: the header's length, the header JSON, then data. */
static void write_st(const char *path, const char *header, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f)
        return;
    uint8_t prefix[8];
    le_put64(prefix, strlen(header));
    CHECK(fwrite(prefix, 1, 8, f) == 8);
    CHECK(fwrite(header, 1, strlen(header), f) == strlen(header));
    if (len)
        CHECK(fwrite(data, 1, len, f) == len);
    fclose(f);
}

static void write_text(const char *path, const char *text)
{
    write_bytes(path, text, strlen(text));
}

static int is_zeroed(const st_checkpoint *ck)
{
    return !ck->shards && !ck->n_shards && !ck->tensors && !ck->n_tensors && !ck->by_name;
}

static const uint8_t zeros[64];

/* Writes header + len zero bytes as file name, opens it, and expects DSQ_EINPUT with a message
 * naming the file and containing needle. */
static void expect_bad(const char *name, const char *header, size_t len, const char *needle)
{
    const char *path = in_dir(sub_dir("bad"), name);
    write_st(path, header, zeros, len);
    st_checkpoint ck;
    dsq_error err = {0};
    int rc = st_open_file(&ck, path, &err);
    CHECK_MSG(rc != 0, "%s opened", name);
    CHECK_EQ_INT(err.code, DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, name);
    CHECK_STR_CONTAINS(err.msg, needle);
    CHECK(is_zeroed(&ck));
    st_close(&ck);
}

/* Opens dir and expects DSQ_EINPUT with a message containing each of the non-NULL needles. */
static void expect_bad_dir(const char *dir, const char *n1, const char *n2, const char *n3)
{
    st_checkpoint ck;
    dsq_error err = {0};
    int rc = st_open_dir(&ck, dir, &err);
    CHECK_MSG(rc != 0, "%s opened", dir);
    CHECK_EQ_INT(err.code, DSQ_EINPUT);
    const char *needles[] = {n1, n2, n3};
    for (int i = 0; i < 3; i++)
        if (needles[i])
            CHECK_STR_CONTAINS(err.msg, needles[i]);
    CHECK(is_zeroed(&ck));
    st_close(&ck);
}

/* "z" comes first in the header but last in the data, to check the sort by offset. The header
 * carries trailing spaces, as files from the upstream library do (it pads to 8 bytes). */
static const char valid_header[] =
    "{\"__metadata__\":{\"format\":\"pt\"},"
    "\"z\":{\"dtype\":\"F16\",\"shape\":[],\"data_offsets\":[22,24]},"
    "\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
    "\"b\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[16,22]},"
    "\"empty\":{\"dtype\":\"F32\",\"shape\":[4,0],\"data_offsets\":[8,8]}}    ";

static void valid_data(uint8_t data[24])
{
    float a[4] = {1.5f, -2.25f, 3e-7f, 65504.0f};
    uint16_t b[3] = {0x3f80, 0xc000, 0x7f80}; /* bf16 1, -2, inf */
    uint16_t z = 0x3c00;                      /* f16 1 */
    memcpy(data, a, 16);
    memcpy(data + 16, b, 6);
    memcpy(data + 22, &z, 2);
}

TEST(valid_single_file)
{
    const char *path = in_dir(sub_dir("valid"), "one.safetensors");
    uint8_t data[24];
    valid_data(data);
    write_st(path, valid_header, data, sizeof data);

    st_checkpoint ck;
    dsq_error err = {0};
    CHECK_EQ_INT(st_open_file(&ck, path, &err), 0);
    CHECK_EQ_INT(ck.n_shards, 1);
    CHECK_EQ_INT(ck.n_tensors, 4);
    CHECK_EQ_INT(ck.shards[0].header_size, strlen(valid_header));
    CHECK_EQ_INT(ck.shards[0].file_size, 8 + strlen(valid_header) + 24);
    for (int i = 1; i < ck.n_tensors; i++)
        CHECK(ck.tensors[i - 1].offset <= ck.tensors[i].offset);

    const st_tensor *a = st_find(&ck, "a");
    CHECK(a && a->dtype == ST_F32 && a->ndim == 2 && a->shape[0] == 2 && a->shape[1] == 2);
    CHECK(a && a->size == 16 && a->offset == 8 + strlen(valid_header));
    float fa[4];
    CHECK_EQ_INT(st_read(&ck, a, 0, fa, 16, &err), 0);
    CHECK(memcmp(fa, data, 16) == 0);
    float tail;
    CHECK_EQ_INT(st_read(&ck, a, 12, &tail, 4, &err), 0);
    CHECK(tail == 65504.0f);

    const st_tensor *b = st_find(&ck, "b");
    uint16_t hb[3];
    CHECK(b && b->dtype == ST_BF16 && b->size == 6);
    CHECK_EQ_INT(st_read(&ck, b, 0, hb, 6, &err), 0);
    CHECK(hb[0] == 0x3f80 && hb[1] == 0xc000 && hb[2] == 0x7f80);

    const st_tensor *z = st_find(&ck, "z");
    uint16_t hz = 0;
    CHECK(z && z->dtype == ST_F16 && z->ndim == 0 && z->size == 2);
    CHECK_EQ_INT(st_read(&ck, z, 0, &hz, 2, &err), 0);
    CHECK_EQ_INT(hz, 0x3c00);

    const st_tensor *e = st_find(&ck, "empty");
    CHECK(e && e->size == 0 && e->ndim == 2 && e->shape[1] == 0);
    CHECK_EQ_INT(st_read(&ck, e, 0, NULL, 0, &err), 0);

    CHECK(st_find(&ck, "__metadata__") == NULL);
    CHECK(st_find(&ck, "missing") == NULL);
    CHECK(st_find(&ck, "") == NULL);
    st_close(&ck);
    CHECK(is_zeroed(&ck));
}

TEST(dtype_table)
{
    CHECK_EQ_INT(st_dtype_size(ST_F32), 4);
    CHECK_EQ_INT(st_dtype_size(ST_F16), 2);
    CHECK_EQ_INT(st_dtype_size(ST_BF16), 2);
    CHECK(strcmp(st_dtype_name(ST_BF16), "BF16") == 0);
    CHECK(strcmp(st_dtype_name(ST_F16), "F16") == 0);
    CHECK(strcmp(st_dtype_name(ST_F32), "F32") == 0);
}

TEST(read_out_of_range)
{
    const char *path = in_dir(sub_dir("range"), "r.safetensors");
    uint8_t data[24];
    valid_data(data);
    write_st(path, valid_header, data, sizeof data);
    st_checkpoint ck;
    dsq_error err = {0};
    CHECK_EQ_INT(st_open_file(&ck, path, &err), 0);
    const st_tensor *a = st_find(&ck, "a");
    uint8_t buf[32];
    CHECK(a && st_read(&ck, a, 0, buf, 17, &err) != 0);
    CHECK_STR_CONTAINS(err.msg, "r.safetensors");
    CHECK_STR_CONTAINS(err.msg, "\"a\"");
    CHECK(a && st_read(&ck, a, 17, buf, 0, &err) != 0);
    CHECK(a && st_read(&ck, a, UINT64_MAX, buf, 1, &err) != 0);
    CHECK(a && st_read(&ck, a, 8, buf, SIZE_MAX, &err) != 0);
    st_close(&ck);
}

TEST(read_after_truncation_reports_the_file)
{
    const char *path = in_dir(sub_dir("trunc"), "t.safetensors");
    uint8_t data[24];
    valid_data(data);
    write_st(path, valid_header, data, sizeof data);
    st_checkpoint ck;
    dsq_error err = {0};
    CHECK_EQ_INT(st_open_file(&ck, path, &err), 0);
    CHECK_EQ_INT(truncate(path, (off_t)(8 + strlen(valid_header) + 4)), 0);
    const st_tensor *a = st_find(&ck, "a");
    uint8_t buf[16];
    CHECK(a && st_read(&ck, a, 0, buf, 16, &err) != 0);
    CHECK_EQ_INT(err.code, DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "t.safetensors");
    CHECK_STR_CONTAINS(err.msg, "end of file");
    st_close(&ck);
}

TEST(close_is_safe_on_zeroed_and_twice)
{
    st_checkpoint ck;
    memset(&ck, 0, sizeof ck);
    st_close(&ck);
    st_close(&ck);
    CHECK(st_find(&ck, "x") == NULL);
}

TEST(many_tensors_found_by_name)
{
    enum { N = 30000 };
    size_t cap = (size_t)N * 96 + 16;
    char *h = malloc(cap);
    size_t used = (size_t)snprintf(h, cap, "{");
    for (int i = 0; i < N; i++)
        used += (size_t)snprintf(h + used, cap - used,
                                 "%s\"model.layers.%d.w\":{\"dtype\":\"BF16\",\"shape\":[1],"
                                 "\"data_offsets\":[%d,%d]}",
                                 i ? "," : "", i, 2 * i, 2 * i + 2);
    snprintf(h + used, cap - used, "}");
    uint16_t *data = malloc(2 * N);
    for (int i = 0; i < N; i++)
        data[i] = (uint16_t)i;
    const char *path = in_dir(sub_dir("many"), "many.safetensors");
    write_st(path, h, data, 2 * N);

    st_checkpoint ck;
    dsq_error err = {0};
    CHECK_EQ_INT(st_open_file(&ck, path, &err), 0);
    CHECK_EQ_INT(ck.n_tensors, N);
    int found = 0;
    for (int i = 0; i < N; i++) {
        char name[64];
        snprintf(name, sizeof name, "model.layers.%d.w", i);
        const st_tensor *t = st_find(&ck, name);
        found += t && strcmp(t->name, name) == 0 && t->offset == 8 + strlen(h) + 2 * (uint64_t)i;
    }
    CHECK_EQ_INT(found, N);
    uint16_t v = 0;
    CHECK_EQ_INT(st_read(&ck, st_find(&ck, "model.layers.12345.w"), 0, &v, 2, &err), 0);
    CHECK_EQ_INT(v, 12345);
    st_close(&ck);
    free(h);
    free(data);
}

TEST(bad_file_too_short)
{
    const char *path = in_dir(sub_dir("bad"), "short.safetensors");
    write_bytes(path, "\x10\0\0\0", 4);
    st_checkpoint ck;
    dsq_error err = {0};
    CHECK(st_open_file(&ck, path, &err) != 0);
    CHECK_EQ_INT(err.code, DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "short.safetensors");
    CHECK_STR_CONTAINS(err.msg, "too short");
    CHECK(is_zeroed(&ck));
}

TEST(bad_missing_file)
{
    st_checkpoint ck;
    dsq_error err = {0};
    const char *path = in_dir(sub_dir("bad"), "absent.safetensors");
    CHECK(st_open_file(&ck, path, &err) != 0);
    CHECK_EQ_INT(err.code, DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "absent.safetensors");
    CHECK_STR_CONTAINS(err.msg, "No such file");
    CHECK(is_zeroed(&ck));
}

TEST(bad_header_length_past_end)
{
    const char *path = in_dir(sub_dir("bad"), "len.safetensors");
    uint8_t bytes[16] = {0};
    le_put64(bytes, 1000);
    memcpy(bytes + 8, "{}      ", 8);
    write_bytes(path, bytes, sizeof bytes);
    st_checkpoint ck;
    dsq_error err = {0};
    CHECK(st_open_file(&ck, path, &err) != 0);
    CHECK_EQ_INT(err.code, DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "len.safetensors");
    CHECK_STR_CONTAINS(err.msg, "header length 1000 is past the end");
    le_put64(bytes, UINT64_MAX); /* must not wrap around in the bound check */
    write_bytes(path, bytes, sizeof bytes);
    CHECK(st_open_file(&ck, path, &err) != 0);
    CHECK_STR_CONTAINS(err.msg, "past the end");
}

TEST(bad_header_over_limit)
{
    /* A sparse file large enough to hold the claimed header, so only the cap rejects it. */
    const char *path = in_dir(sub_dir("bad"), "huge.safetensors");
    uint8_t prefix[8];
    le_put64(prefix, 100000001);
    write_bytes(path, prefix, 8);
    CHECK_EQ_INT(truncate(path, 8 + 100000001 + 8), 0);
    st_checkpoint ck;
    dsq_error err = {0};
    CHECK(st_open_file(&ck, path, &err) != 0);
    CHECK_EQ_INT(err.code, DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "huge.safetensors");
    CHECK_STR_CONTAINS(err.msg, "limit");
    unlink(path);
}

TEST(bad_json)
{
    expect_bad("json.safetensors", "{\"a\": {\"dtype\": \n}", 0, "line 2, column 1");
    expect_bad("empty_header.safetensors", "", 0, "malformed");
    expect_bad("trailing.safetensors", "{} x", 0, "malformed");
    expect_bad(
        "bigint.safetensors",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,4]}}", 4,
        "too big integer");
    expect_bad("toplevel.safetensors", "[1, 2]", 0, "must be a JSON object, not an array");
}

TEST(bad_entry_shape)
{
    expect_bad("entry.safetensors", "{\"w.0\": 5}", 0, "tensor \"w.0\": entry must be an object");
    expect_bad("nodtype.safetensors", "{\"w.1\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
               "tensor \"w.1\": missing field \"dtype\"");
    expect_bad("noshape.safetensors", "{\"w.2\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4,
               "tensor \"w.2\": missing field \"shape\"");
    expect_bad("nooffsets.safetensors", "{\"w.3\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4,
               "tensor \"w.3\": missing field \"data_offsets\"");
    expect_bad("dtypetype.safetensors",
               "{\"w.4\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
               "tensor \"w.4\": field \"dtype\" must be a string, not an integer");
    expect_bad("shapetype.safetensors",
               "{\"w.5\":{\"dtype\":\"F32\",\"shape\":{},\"data_offsets\":[0,4]}}", 4,
               "tensor \"w.5\": field \"shape\" must be an array, not an object");
    expect_bad("offtype.safetensors",
               "{\"w.6\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":\"0-4\"}}", 4,
               "tensor \"w.6\": field \"data_offsets\" must be an array, not a string");
}

TEST(bad_dtype)
{
    expect_bad("unknown.safetensors",
               "{\"w\":{\"dtype\":\"Q4_K\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
               "tensor \"w\": unknown dtype \"Q4_K\"");
    expect_bad("lower.safetensors",
               "{\"w\":{\"dtype\":\"bf16\",\"shape\":[1],\"data_offsets\":[0,2]}}", 2,
               "unknown dtype \"bf16\"");
    const char *unsupported[] = {"F64",  "I64",     "I32",     "I16", "I8",  "U8",
                                 "BOOL", "F8_E4M3", "F8_E5M2", "U16", "U32", "U64"};
    for (size_t i = 0; i < sizeof unsupported / sizeof *unsupported; i++) {
        char header[256], name[64], needle[128];
        snprintf(header, sizeof header,
                 "{\"w.scale\":{\"dtype\":\"%s\",\"shape\":[1],\"data_offsets\":[0,1]}}",
                 unsupported[i]);
        snprintf(name, sizeof name, "dtype_%s.safetensors", unsupported[i]);
        snprintf(needle, sizeof needle, "unsupported dtype %s for tensor \"w.scale\"",
                 unsupported[i]);
        expect_bad(name, header, 1, needle);
    }
}

TEST(bad_shape_values)
{
    expect_bad("neg.safetensors",
               "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,4]}}", 4,
               "tensor \"w\": shape[1] must be a non-negative integer");
    expect_bad("real.safetensors",
               "{\"w\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8,
               "tensor \"w\": shape[0] must be a non-negative integer");
    expect_bad("strdim.safetensors",
               "{\"w\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8,
               "tensor \"w\": shape[0]");
    expect_bad("dims.safetensors",
               "{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}",
               4, "tensor \"w\": shape has 9 dimensions, more than 8");
    expect_bad(
        "overflow.safetensors",
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4,
        "tensor \"w\": shape's element count overflows");
    expect_bad("byteoverflow.safetensors",
               "{\"w\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],\"data_offsets\":[0,4]}}",
               4, "tensor \"w\": shape's byte size overflows");
}

TEST(bad_data_offsets)
{
    expect_bad("one.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}",
               4, "tensor \"w\": data_offsets must be two non-negative integers");
    expect_bad("three.safetensors",
               "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8,
               "tensor \"w\": data_offsets must be two");
    expect_bad("negoff.safetensors",
               "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4,
               "tensor \"w\": data_offsets must be two non-negative integers");
    expect_bad("realoff.safetensors",
               "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4.0]}}", 4,
               "tensor \"w\": data_offsets must be two non-negative integers");
    expect_bad("reversed.safetensors",
               "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8,
               "tensor \"w\": data_offsets begin 8 > end 4");
    expect_bad("pastend.safetensors",
               "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 7,
               "tensor \"w\": data_offsets end 8 is past the end of the file");
    expect_bad("size.safetensors",
               "{\"w\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0,8]}}", 8,
               "tensor \"w\": data_offsets span 8 bytes, but dtype BF16 and shape [2, 3] need 12");
}

TEST(bad_overlap)
{
    expect_bad("overlap.safetensors",
               "{\"first\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"second\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
               12, "tensors \"first\" and \"second\" overlap");
    /* Contained in an earlier, longer tensor: caught by tracking the furthest end. */
    expect_bad("inside.safetensors",
               "{\"big\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
               "\"mid\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]},"
               "\"small\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
               16, "tensors \"big\" and \"small\" overlap");
    expect_bad("same.safetensors",
               "{\"p\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"q\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
               4, "overlap");
}

TEST(empty_tensor_inside_another_is_not_an_overlap)
{
    const char *path = in_dir(sub_dir("valid"), "emptyin.safetensors");
    write_st(path,
             "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
             "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]}}",
             zeros, 8);
    st_checkpoint ck;
    dsq_error err = {0};
    CHECK_MSG(st_open_file(&ck, path, &err) == 0, "%s", err.msg);
    st_close(&ck);
}

TEST(bad_duplicate_names)
{
    expect_bad("dup.safetensors",
               "{\"layer.w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"layer.w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
               8, "names a tensor twice");
    expect_bad("dup2.safetensors",
               "{\"layer.w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"layer.w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
               8, "\"layer.w\"");
}

TEST(bad_metadata)
{
    expect_bad("meta.safetensors", "{\"__metadata__\":[1]}", 0,
               "\"__metadata__\" must be an object, not an array");
    expect_bad("metaval.safetensors", "{\"__metadata__\":{\"format\":\"pt\",\"step\":3}}", 0,
               "\"__metadata__\" value \"step\" must be a string, not an integer");
}

/* Two shards and their index: "a" and "b" in the first, "c" in the second. */
static void write_sharded(const char *dir, const char *index)
{
    write_st(in_dir(dir, "model-00001-of-00002.safetensors"),
             "{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
             "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
             "\x01\x00\x00\x00\x02\x00\x00\x00", 8);
    write_st(in_dir(dir, "model-00002-of-00002.safetensors"),
             "{\"c\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]}}",
             "\x03\x00\x04\x00", 4);
    write_text(in_dir(dir, "model.safetensors.index.json"), index);
}

static const char good_index[] = "{\"metadata\":{\"total_size\":12},\"weight_map\":{"
                                 "\"a\":\"model-00001-of-00002.safetensors\","
                                 "\"b\":\"model-00001-of-00002.safetensors\","
                                 "\"c\":\"model-00002-of-00002.safetensors\"}}";

TEST(valid_sharded_with_index)
{
    const char *dir = sub_dir("sharded");
    write_sharded(dir, good_index);
    /* A stray file the index does not name must be ignored. */
    write_text(in_dir(dir, "junk.safetensors"), "not a safetensors file");
    st_checkpoint ck;
    dsq_error err = {0};
    CHECK_MSG(st_open_dir(&ck, dir, &err) == 0, "%s", err.msg);
    CHECK_EQ_INT(ck.n_shards, 2);
    CHECK_EQ_INT(ck.n_tensors, 3);
    CHECK(ck.n_tensors == 3 && strcmp(ck.tensors[0].name, "a") == 0 &&
          strcmp(ck.tensors[1].name, "b") == 0 && strcmp(ck.tensors[2].name, "c") == 0);
    CHECK(ck.n_tensors == 3 && ck.tensors[0].shard == 0 && ck.tensors[2].shard == 1);
    uint32_t v = 0;
    CHECK_EQ_INT(st_read(&ck, st_find(&ck, "b"), 0, &v, 4, &err), 0);
    CHECK_EQ_INT(v, 2);
    const st_tensor *c = st_find(&ck, "c");
    CHECK(c && c->shard == 1 && c->dtype == ST_BF16);
    CHECK(c && strstr(ck.shards[c->shard].path, "model-00002-of-00002.safetensors"));
    uint16_t cv[2] = {0};
    CHECK_EQ_INT(st_read(&ck, c, 0, cv, 4, &err), 0);
    CHECK(cv[0] == 3 && cv[1] == 4);
    st_close(&ck);
}

TEST(index_without_metadata)
{
    const char *dir = sub_dir("nometa");
    write_sharded(dir, "{\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\","
                       "\"b\":\"model-00001-of-00002.safetensors\","
                       "\"c\":\"model-00002-of-00002.safetensors\"}}");
    st_checkpoint ck;
    dsq_error err = {0};
    CHECK_MSG(st_open_dir(&ck, dir, &err) == 0, "%s", err.msg);
    st_close(&ck);
}

TEST(bad_index_missing_shard)
{
    const char *dir = sub_dir("missing_shard");
    write_sharded(dir, good_index);
    unlink(in_dir(dir, "model-00002-of-00002.safetensors"));
    expect_bad_dir(dir, "model-00002-of-00002.safetensors", "model.safetensors.index.json",
                   "No such file");
}

TEST(bad_index_shard_names)
{
    const char *dir = sub_dir("escape");
    write_sharded(dir, "{\"weight_map\":{\"a\":\"../model-00001-of-00002.safetensors\"}}");
    expect_bad_dir(dir, "model.safetensors.index.json", "\"a\"", "../model-00001");
    write_text(in_dir(dir, "model.safetensors.index.json"),
               "{\"weight_map\":{\"a\":\"sub/x.safetensors\"}}");
    expect_bad_dir(dir, "model.safetensors.index.json", "sub/x.safetensors", "plain file name");
    write_text(in_dir(dir, "model.safetensors.index.json"), "{\"weight_map\":{\"a\":7}}");
    expect_bad_dir(dir, "model.safetensors.index.json", "\"a\"", "shard file name");
}

TEST(bad_index_json)
{
    const char *dir = sub_dir("index_json");
    write_sharded(dir, "{\"weight_map\": {\n\"a\": }");
    expect_bad_dir(dir, "model.safetensors.index.json", "line 2", "column");
    write_text(in_dir(dir, "model.safetensors.index.json"), "{\"metadata\":{}}");
    expect_bad_dir(dir, "model.safetensors.index.json", "missing \"weight_map\"", NULL);
    write_text(in_dir(dir, "model.safetensors.index.json"), "{\"metadata\":3,\"weight_map\":{}}");
    expect_bad_dir(dir, "model.safetensors.index.json", "\"metadata\" must be an object", NULL);
    write_text(in_dir(dir, "model.safetensors.index.json"), "[]");
    expect_bad_dir(dir, "model.safetensors.index.json", "must be a JSON object", NULL);
    write_text(in_dir(dir, "model.safetensors.index.json"),
               "{\"weight_map\":{\"a\":\"x.safetensors\",\"a\":\"y.safetensors\"}}");
    expect_bad_dir(dir, "model.safetensors.index.json", "appears twice", "\"a\"");
}

TEST(bad_index_lists_absent_tensor)
{
    const char *dir = sub_dir("absent_tensor");
    write_sharded(dir, "{\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\","
                       "\"b\":\"model-00001-of-00002.safetensors\","
                       "\"c\":\"model-00002-of-00002.safetensors\","
                       "\"d\":\"model-00002-of-00002.safetensors\"}}");
    expect_bad_dir(dir, "model.safetensors.index.json says \"d\" is in model-00002-of-00002",
                   "but model-00002-of-00002.safetensors does not contain it", NULL);
}

TEST(bad_index_omits_tensor)
{
    const char *dir = sub_dir("omitted");
    write_sharded(dir, "{\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\","
                       "\"c\":\"model-00002-of-00002.safetensors\"}}");
    expect_bad_dir(dir, "model-00001-of-00002.safetensors contains tensor \"b\"",
                   "model.safetensors.index.json does not list it", NULL);
}

TEST(bad_index_maps_tensor_elsewhere)
{
    const char *dir = sub_dir("elsewhere");
    write_sharded(dir, "{\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\","
                       "\"b\":\"model-00002-of-00002.safetensors\","
                       "\"c\":\"model-00002-of-00002.safetensors\"}}");
    expect_bad_dir(dir, "model-00001-of-00002.safetensors contains tensor \"b\"",
                   "model.safetensors.index.json says it is in model-00002-of-00002.safetensors",
                   NULL);
}

TEST(bad_shard_header_names_the_shard)
{
    const char *dir = sub_dir("bad_shard");
    write_sharded(dir, good_index);
    write_st(in_dir(dir, "model-00002-of-00002.safetensors"),
             "{\"c\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", zeros, 8);
    expect_bad_dir(dir, "model-00002-of-00002.safetensors",
                   "unsupported dtype I64 for tensor \"c\"", NULL);
}

TEST(dir_prefers_model_safetensors)
{
    const char *dir = sub_dir("single");
    uint8_t data[24];
    valid_data(data);
    write_st(in_dir(dir, "model.safetensors"), valid_header, data, sizeof data);
    write_text(in_dir(dir, "other.safetensors"), "garbage");
    st_checkpoint ck;
    dsq_error err = {0};
    CHECK_MSG(st_open_dir(&ck, dir, &err) == 0, "%s", err.msg);
    CHECK_EQ_INT(ck.n_shards, 1);
    CHECK_EQ_INT(ck.n_tensors, 4);
    CHECK(st_find(&ck, "a") != NULL);
    st_close(&ck);
}

TEST(dir_without_index_reads_all_files_sorted)
{
    const char *dir = sub_dir("listing");
    write_st(in_dir(dir, "part-b.safetensors"),
             "{\"y\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "\x09\0\0\0", 4);
    write_st(in_dir(dir, "part-a.safetensors"),
             "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "\x08\0\0\0", 4);
    write_text(in_dir(dir, "config.json"), "{}");
    write_text(in_dir(dir, "._part-a.safetensors"), "macOS fork");
    st_checkpoint ck;
    dsq_error err = {0};
    CHECK_MSG(st_open_dir(&ck, dir, &err) == 0, "%s", err.msg);
    CHECK_EQ_INT(ck.n_shards, 2);
    CHECK(ck.n_shards == 2 && strstr(ck.shards[0].path, "part-a.safetensors"));
    CHECK(ck.n_tensors == 2 && strcmp(ck.tensors[0].name, "x") == 0);
    uint32_t v = 0;
    CHECK_EQ_INT(st_read(&ck, st_find(&ck, "y"), 0, &v, 4, &err), 0);
    CHECK_EQ_INT(v, 9);
    st_close(&ck);
}

TEST(bad_dir_same_tensor_in_two_files)
{
    const char *dir = sub_dir("dup_across");
    write_st(in_dir(dir, "one.safetensors"),
             "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", zeros, 4);
    write_st(in_dir(dir, "two.safetensors"),
             "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", zeros, 4);
    expect_bad_dir(dir, "tensor \"w\" is in both", "one.safetensors and", "two.safetensors");
}

TEST(bad_dir_no_safetensors)
{
    const char *dir = sub_dir("empty");
    expect_bad_dir(dir, "empty", "no *.safetensors files", NULL);
    const char *pt = sub_dir("pytorch");
    write_text(in_dir(pt, "pytorch_model-00001-of-00002.bin"), "pickle");
    write_text(in_dir(pt, "config.json"), "{}");
    expect_bad_dir(pt, "no *.safetensors files", "pytorch_model*.bin", "not supported");
}

TEST(bad_dir_cannot_open)
{
    const char *dir = in_dir(test_tmp_dir(), "does-not-exist");
    expect_bad_dir(dir, "does-not-exist", "No such file or directory", NULL);
    const char *file = in_dir(sub_dir("notdir"), "plain");
    write_text(file, "x");
    expect_bad_dir(file, "plain", "not a folder", NULL);
}
