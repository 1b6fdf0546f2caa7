/* End-to-end conversion of the three fixture families: every tensor read back bit-exact against
 * the source shards, provenance hashes, determinism, and the metadata a runtime needs. */
#include <stdlib.h>
#include <xxhash.h>

#include "convert.h"
#include "float16.h"
#include "model_file.h"
#include "safetensors.h"
#include "test.h"
#include "types.h"

static const char *families[] = {"tiny-v1", "tiny-v2-lite", "tiny-v2"};

static int convert_fixture(const char *family, const char *out, dsq_error *err)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", test_data_dir(), family);
    convert_options o = {.hf_dir = dir, .out_path = out, .threads = 2, .command_line = "test"};
    convert_stats stats;
    return dsq_convert(&o, &stats, err);
}

/* Compares every stored tensor with its source: bf16 bytes identical, f32 equal to the widened
 * bf16 value (exact: bf16 -> f32 loses nothing). */
static void check_against_source(const char *family, const model_file *m)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", test_data_dir(), family);
    st_checkpoint ck;
    dsq_error err;
    CHECK_MSG(st_open_dir(&ck, dir, &err) == DSQ_OK, "%s", err.msg);
    int mismatched = 0;
    for (int i = 0; i < m->n_plan; i++) {
        const st_tensor *s = st_find(&ck, m->plan[i].hf_name);
        const dsq_tensor_info *t = m->tensors[i];
        CHECK_MSG(s && s->dtype == ST_BF16, "%s", m->plan[i].hf_name);
        if (!s)
            continue;
        uint16_t *src = malloc(s->size);
        CHECK(st_read(&ck, s, 0, src, s->size, &err) == DSQ_OK);
        uint64_t n = s->size / 2;
        CHECK_EQ_INT(dsq_tensor_numel(t), n);
        if (t->type == DSQ_TYPE_BF16) {
            mismatched += memcmp(src, dsq_file_data(&m->file, t), s->size) != 0;
        } else {
            CHECK_EQ_INT(t->type, DSQ_TYPE_F32);
            const float *dst = dsq_file_data(&m->file, t);
            for (uint64_t k = 0; k < n; k++)
                mismatched += dst[k] != dsq_bf16_to_f32(src[k]);
        }
        free(src);
    }
    CHECK_EQ_INT(mismatched, 0);
    st_close(&ck);
}

/* The provenance hash of each shard equals XXH3-64 of the whole file, computed independently. */
static void check_provenance(const char *family, const model_file *m)
{
    const json_t *files = json_object_get(json_object_get(m->file.meta, "provenance"),
                                          "source_files");
    int shards = 0;
    for (size_t i = 0; i < json_array_size(files); i++) {
        const json_t *f = json_array_get(files, i);
        const char *name = json_string_value(json_object_get(f, "name"));
        char path[512];
        snprintf(path, sizeof path, "%s/%s/%s", test_data_dir(), family, name);
        FILE *fp = fopen(path, "rb");
        CHECK_MSG(fp != NULL, "%s", path);
        if (!fp)
            continue;
        fseek(fp, 0, SEEK_END);
        long size = ftell(fp);
        rewind(fp);
        char *buf = malloc((size_t)size);
        CHECK(fread(buf, 1, (size_t)size, fp) == (size_t)size);
        fclose(fp);
        char hex[17];
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)XXH3_64bits(buf, (size_t)size));
        free(buf);
        CHECK_EQ_INT(json_integer_value(json_object_get(f, "size")), size);
        CHECK_MSG(strcmp(json_string_value(json_object_get(f, "xxh3")), hex) == 0, "%s", name);
        shards += strstr(name, ".safetensors") && !strstr(name, "index");
    }
    CHECK_EQ_INT(shards, 2);
}

TEST(fixtures_convert_bit_exact)
{
    for (int f = 0; f < 3; f++) {
        char out[512];
        snprintf(out, sizeof out, "%s/%s.dsq", test_tmp_dir(), families[f]);
        dsq_error err = {0};
        CHECK_MSG(convert_fixture(families[f], out, &err) == DSQ_OK, "%s: %s", families[f],
                  err.msg);
        model_file m;
        CHECK_MSG(model_file_open(&m, out, &err) == DSQ_OK, "%s", err.msg);
        check_against_source(families[f], &m);
        check_provenance(families[f], &m);
        for (uint32_t i = 0; i < m.file.n_tensors; i++)
            CHECK(dsq_file_verify_tensor(&m.file, &m.file.tensors[i], &err) == DSQ_OK);
        model_file_close(&m);
    }
}

TEST(metadata_holds_config_tokenizer_template)
{
    char out[512];
    snprintf(out, sizeof out, "%s/meta-v2.dsq", test_tmp_dir());
    dsq_error err = {0};
    CHECK(convert_fixture("tiny-v2", out, &err) == DSQ_OK);
    model_file m;
    CHECK_MSG(model_file_open(&m, out, &err) == DSQ_OK, "%s", err.msg);
    CHECK_EQ_INT(m.config.family, DSQ_FAMILY_V2);
    CHECK_EQ_INT(m.config.q_lora_rank, 48);
    CHECK_EQ_INT(m.config.topk_method, DSQ_TOPK_GROUP_LIMITED);
    CHECK_NEAR(m.config.routed_scaling_factor, 2.5, 0);
    CHECK_EQ_INT(m.config.bos_token_id, 510);
    const json_t *tok = json_object_get(m.file.meta, "tokenizer");
    CHECK_EQ_INT(json_array_size(json_object_get(tok, "tokens")), 512);
    CHECK_EQ_INT(json_array_size(json_object_get(tok, "merges")), 254);
    const char *tmpl = json_string_value(json_object_get(m.file.meta, "chat_template"));
    CHECK(tmpl && strstr(tmpl, "Assistant:"));
    CHECK_EQ_INT(m.file.meta_codec, 1); /* zstd pays on the metadata */
    /* each routed expert is one contiguous range: gate, up, down back to back (4096-aligned) */
    for (int i = 0; i + 2 < m.n_plan; i++) {
        if (m.plan[i].cls != TC_ROUTED_EXPERT || !strstr(m.plan[i].name, ".gate"))
            continue;
        const dsq_tensor_info *g = m.tensors[i], *u = m.tensors[i + 1], *d = m.tensors[i + 2];
        CHECK_EQ_INT(u->offset, (g->offset + g->size + 4095) / 4096 * 4096);
        CHECK_EQ_INT(d->offset, (u->offset + u->size + 4095) / 4096 * 4096);
    }
    model_file_close(&m);
}

TEST(conversion_is_deterministic)
{
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/det-a.dsq", test_tmp_dir());
    snprintf(b, sizeof b, "%s/det-b.dsq", test_tmp_dir());
    dsq_error err;
    CHECK(convert_fixture("tiny-v1", a, &err) == DSQ_OK);
    CHECK(convert_fixture("tiny-v1", b, &err) == DSQ_OK);
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", a, b);
    CHECK(system(cmd) == 0);
}
