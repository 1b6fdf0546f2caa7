/* Tokenizer: encodings against Hugging Face `tokenizers` references (committed JSON made by
 * scripts/make_fixtures.py and scripts/make_tokenizer_cases.py), decoding back to the input,
 * the UTF-8 stream, refusal of bad objects, and a timing print. */
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#include "test.h"
#include "tokenizer.h"
#include "tokenizer_import.h"

static char path_buf[4][1024];
static int path_next;

/* test_data_dir()/rel in a rotating static buffer. */
static const char *data_path(const char *rel)
{
    char *b = path_buf[path_next++ % 4];
    snprintf(b, sizeof path_buf[0], "%s/%s", test_data_dir(), rel);
    return b;
}

/* The tokenizer that `dsq convert` stores for HF folder dir, loaded as the runtime loads it. */
static tokenizer *load_dir(const char *dir, int bos, int eos, int vocab_size)
{
    json_t *obj = NULL, *tmpl = NULL;
    dsq_error err = {0};
    tokenizer *t = NULL;
    if (tokenizer_import(dir, bos, eos, vocab_size, &obj, &tmpl, &err) ||
        tokenizer_load(&t, obj, dir, &err)) {
        fprintf(stderr, "  loading %s: %s\n", dir, err.msg);
        t = NULL;
    }
    json_decref(obj);
    json_decref(tmpl);
    return t;
}

static json_t *load_json(const char *path)
{
    json_error_t je;
    json_t *j = json_load_file(path, JSON_ALLOW_NUL, &je);
    if (!j)
        fprintf(stderr, "  %s: line %d: %s\n", path, je.line, je.text);
    return j;
}

static int hex_value(char c)
{
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

/* A case's input bytes: "hex" when present (invalid UTF-8), else "text". malloc'd. */
static char *case_input(const json_t *c, size_t *len)
{
    const json_t *hex = json_object_get(c, "hex");
    if (json_is_string(hex)) {
        const char *h = json_string_value(hex);
        *len = strlen(h) / 2;
        char *b = malloc(*len + 1);
        for (size_t i = 0; i < *len; i++)
            b[i] = (char)(hex_value(h[2 * i]) << 4 | hex_value(h[2 * i + 1]));
        return b;
    }
    const json_t *text = json_object_get(c, "text");
    *len = json_string_length(text);
    char *b = malloc(*len + 1);
    memcpy(b, json_string_value(text), *len + 1);
    return b;
}

/* Checks that ids[0..n) equals the JSON array want; name says which case in messages. */
static int same_ids(const int *ids, size_t n, const json_t *want, const char *name)
{
    size_t wn = json_array_size(want), i = 0;
    while (i < n && i < wn && ids[i] == (int)json_integer_value(json_array_get(want, i)))
        i++;
    if (i == n && i == wn)
        return 1;
    fprintf(stderr, "  %s: %zu ids, expected %zu; first difference at %zu (%d vs %lld)\n", name, n,
            wn, i, i < n ? ids[i] : -1,
            i < wn ? (long long)json_integer_value(json_array_get(want, i)) : -1LL);
    return 0;
}

/* Runs every case of a cases file (or of one variant) against t; returns the count checked. */
static int run_cases(const tokenizer *t, const json_t *cases, const char *label)
{
    size_t i;
    const json_t *c;
    int checked = 0;
    json_array_foreach(cases, i, c)
    {
        char name[200];
        const char *text = json_string_value(json_object_get(c, "text"));
        snprintf(name, sizeof name, "%s case %zu \"%.40s\"", label, i, text);
        size_t len, n = 0;
        char *in = case_input(c, &len);
        int *ids = NULL;
        dsq_error err = {0};
        int rc = tokenizer_encode(t, in, len, 0, &ids, &n, &err);
        CHECK_MSG(rc == 0, "%s: %s", name, err.msg);
        CHECK_MSG(rc == 0 && same_ids(ids, n, json_object_get(c, "ids_no_special"), name), "%s",
                  name);
        /* decoding gives back the (repaired) input, unless HF dropped a character */
        const json_t *rt = json_object_get(c, "round_trip");
        if (rc == 0 && (!rt || json_is_true(rt))) {
            size_t tlen = json_string_length(json_object_get(c, "text")), o = 0;
            char *dec = malloc(tlen + 1);
            int fits = 1;
            for (size_t k = 0; k < n && fits; k++) {
                size_t bl;
                const char *b = tokenizer_token_bytes(t, ids[k], &bl);
                fits = b && o + bl <= tlen;
                if (fits)
                    memcpy(dec + o, b, bl);
                o += bl;
            }
            CHECK_MSG(fits && o == tlen && memcmp(dec, text, tlen) == 0,
                      "%s: decoding does not give the input back", name);
            free(dec);
        }
        /* the plain-text call adds BOS as add_bos_token says */
        const json_t *with_bos = json_object_get(c, "ids");
        if (rc == 0 && with_bos) {
            int *ids2;
            size_t n2;
            CHECK(tokenizer_encode(t, in, len, tokenizer_default_add(t), &ids2, &n2, &err) == 0);
            CHECK_MSG(same_ids(ids2, n2, with_bos, name), "%s (with BOS)", name);
            free(ids2);
        }
        /* invalid input is repaired exactly as Python's errors='replace' */
        if (json_object_get(c, "hex")) {
            size_t fl = len;
            bool no_mem;
            char *fixed = utf8_sanitize(in, len, &fl, &no_mem); /* NULL: in was valid */
            CHECK_MSG(fl == json_string_length(json_object_get(c, "text")) &&
                          memcmp(fixed ? fixed : in, text, fl) == 0,
                      "%s: U+FFFD repair differs from Python's", name);
            free(fixed);
        }
        free(ids);
        free(in);
        checked++;
    }
    return checked;
}

static void run_case_file(const char *cases_path, const char *dir, int vocab_size)
{
    json_t *doc = load_json(cases_path);
    CHECK(doc != NULL);
    if (!doc)
        return;
    int bos = (int)json_integer_value(json_object_get(doc, "bos_token_id"));
    int eos = (int)json_integer_value(json_object_get(doc, "eos_token_id"));
    tokenizer *t = load_dir(dir, bos, eos, vocab_size);
    CHECK(t != NULL);
    if (t) {
        CHECK_EQ_INT(tokenizer_bos(t), bos);
        CHECK_EQ_INT(tokenizer_eos(t), eos);
        CHECK_EQ_INT(tokenizer_default_add(t), TOKENIZER_ADD_BOS);
        const json_t *cases = json_object_get(doc, "cases");
        CHECK(json_array_size(cases) > 0);
        CHECK_EQ_INT(run_cases(t, cases, cases_path), json_array_size(cases));
    }
    tokenizer_free(t);
    json_decref(doc);
}

TEST(fixture_tokenizer_matches_hf)
{
    run_case_file(data_path("tokenizer-cases.json"), data_path("tiny-v2-lite"), 512);
}

TEST(fixture_tokenizer_extended_cases_match_hf)
{
    run_case_file(data_path("tokenizer-cases/tiny-fixture/cases.json"), data_path("tiny-v2-lite"),
                  512);
}

TEST(deepseek_llm_tokenizer_matches_hf)
{
    run_case_file(data_path("tokenizer-cases/deepseek-llm/cases.json"),
                  data_path("tokenizer-cases/deepseek-llm"), 512);
}

/* Each variant: the deepseek-llm tokenizer.json with the override applied (top-level keys
 * replaced, keys under "model" set in model), written out, imported and loaded. */
TEST(variants_match_hf)
{
    json_t *doc = load_json(data_path("tokenizer-cases/variants.json"));
    json_t *base = load_json(data_path("tokenizer-cases/deepseek-llm/tokenizer.json"));
    CHECK(doc && base);
    if (!doc || !base) {
        json_decref(doc);
        json_decref(base);
        return;
    }
    size_t i;
    json_t *v;
    int n_variants = 0;
    json_array_foreach(json_object_get(doc, "variants"), i, v)
    {
        const char *name = json_string_value(json_object_get(v, "name"));
        json_t *tj = json_deep_copy(base), *over = json_object_get(v, "override");
        const char *key;
        json_t *val;
        json_object_foreach(over, key, val)
        {
            if (strcmp(key, "model") == 0)
                json_object_update(json_object_get(tj, "model"), val);
            else
                json_object_set(tj, key, val);
        }
        char dir[1100], file[1200];
        snprintf(dir, sizeof dir, "%s/variant-%zu", test_tmp_dir(), i);
        snprintf(file, sizeof file, "%s/tokenizer.json", dir);
        mkdir(dir, 0700);
        CHECK(json_dump_file(tj, file, 0) == 0);
        json_decref(tj);
        tokenizer *t = load_dir(dir, 420, 421, 512);
        CHECK_MSG(t != NULL, "variant %s", name);
        if (t) {
            const json_t *cases = json_object_get(v, "cases");
            CHECK_EQ_INT(run_cases(t, cases, name), json_array_size(cases));
            n_variants++;
        }
        tokenizer_free(t);
    }
    CHECK(n_variants >= 26);
    json_decref(doc);
    json_decref(base);
}

TEST(token_queries)
{
    tokenizer *t = load_dir(data_path("tokenizer-cases/deepseek-llm"), 420, 421, 512);
    CHECK(t != NULL);
    if (!t)
        return;
    size_t len;
    const char *b = tokenizer_token_bytes(t, 420, &len);
    CHECK(b && len == strlen("<｜begin▁of▁sentence｜>") &&
          memcmp(b, "<｜begin▁of▁sentence｜>", len) == 0);
    b = tokenizer_token_bytes(t, 220, &len); /* "Ġ" */
    CHECK(b && len == 1 && b[0] == ' ');
    b = tokenizer_token_bytes(t, 0, &len); /* "!" */
    CHECK(b && len == 1 && b[0] == '!');
    CHECK(tokenizer_token_bytes(t, -1, &len) == NULL && len == 0);
    CHECK(tokenizer_token_bytes(t, tokenizer_n_tokens(t), &len) == NULL);
    CHECK_EQ_INT(tokenizer_n_tokens(t), 423);
    CHECK(tokenizer_is_special(t, 420) && tokenizer_is_special(t, 421));
    CHECK(!tokenizer_is_special(t, 422) && !tokenizer_is_special(t, 5));
    int *ids;
    size_t n;
    dsq_error err;
    CHECK(tokenizer_encode(t, "", 0, TOKENIZER_ADD_BOS | TOKENIZER_ADD_EOS, &ids, &n, &err) == 0);
    CHECK(n == 2 && ids[0] == 420 && ids[1] == 421);
    free(ids);
    CHECK(tokenizer_encode(t, "", 0, 0, &ids, &n, &err) == 0 && n == 0 && ids != NULL);
    free(ids);
    tokenizer_free(t);
}

/* ---- UTF-8 stream ---- */

static size_t push_str(utf8_stream *s, const char *bytes, size_t len, char *out)
{
    size_t o = utf8_stream_push(s, bytes, len, out);
    CHECK(o <= UTF8_STREAM_OUT_MAX(len));
    return o;
}

TEST(utf8_stream_holds_split_characters)
{
    const char emoji[] = "\xF0\x9F\x98\x80"; /* U+1F600 */
    utf8_stream s = {0};
    char out[64];
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(push_str(&s, emoji + i, 1, out), 0);
    CHECK_EQ_INT(push_str(&s, emoji + 3, 1, out), 4);
    CHECK(memcmp(out, emoji, 4) == 0);
    CHECK_EQ_INT(utf8_stream_flush(&s, out), 0);
    /* a CJK character split 1 + 2 after ASCII */
    size_t o = push_str(&s, "a\xE6", 2, out);
    CHECK(o == 1 && out[0] == 'a');
    o = push_str(&s, "\xB7\xB1!", 3, out);
    CHECK(o == 4 && memcmp(out, "\xE6\xB7\xB1!", 4) == 0);
}

TEST(utf8_stream_replaces_invalid_bytes)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"\x80", "\xEF\xBF\xBD"},
        {"a\xFFz", "a\xEF\xBF\xBDz"},
        {"\xF0\x9F"
         "A",
         "\xEF\xBF\xBD"
         "A"},
        {"\xED\xA0\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, /* a surrogate */
        {"\xC0\x80", "\xEF\xBF\xBD\xEF\xBF\xBD"},                 /* overlong */
        {"\xF4\x90\x80\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
        {"\xE2\x28\xA1", "\xEF\xBF\xBD(\xEF\xBF\xBD"},
        {"\xE4\xBD", "\xEF\xBF\xBD"}, /* truncated at the end: flushed */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        utf8_stream s = {0};
        char out[64];
        size_t len = strlen(cases[i].in), o = 0;
        for (size_t k = 0; k < len; k++) /* one byte at a time */
            o += push_str(&s, cases[i].in + k, 1, out + o);
        o += utf8_stream_flush(&s, out + o);
        CHECK_MSG(o == strlen(cases[i].out) && memcmp(out, cases[i].out, o) == 0, "case %zu", i);
        size_t fl;
        bool no_mem;
        char *fixed = utf8_sanitize(cases[i].in, len, &fl, &no_mem);
        CHECK_MSG(fixed && fl == o && memcmp(fixed, out, o) == 0, "sanitize case %zu", i);
        free(fixed);
    }
    size_t fl;
    bool no_mem;
    CHECK(utf8_sanitize("valid \xE6\xB7\xB1", 9, &fl, &no_mem) == NULL && !no_mem);
}

/* Any chunking of any bytes streams to what the one-shot repair gives. */
TEST(utf8_stream_equals_one_shot_repair)
{
    uint32_t seed = 12345;
    static const unsigned char alphabet[] = {'a',  ' ',  0x80, 0xBF, 0xC2, 0xC3, 0xE0, 0xE6,
                                             0xED, 0xA0, 0x9F, 0xF0, 0xF4, 0x90, 0xFF, 0xB7};
    for (int round = 0; round < 2000; round++) {
        char in[40], out[4 * 40 + 16];
        size_t len = (size_t)(round % 37), o = 0;
        for (size_t i = 0; i < len; i++) {
            seed = seed * 1664525u + 1013904223u;
            in[i] = (char)alphabet[(seed >> 16) % sizeof alphabet];
        }
        utf8_stream s = {0};
        for (size_t i = 0; i < len;) {
            seed = seed * 1664525u + 1013904223u;
            size_t k = 1 + (seed >> 16) % 5;
            if (k > len - i)
                k = len - i;
            o += push_str(&s, in + i, k, out + o);
            i += k;
        }
        o += utf8_stream_flush(&s, out + o);
        size_t fl = len;
        bool no_mem;
        char *fixed = utf8_sanitize(in, len, &fl, &no_mem);
        const char *want = fixed ? fixed : in;
        CHECK_MSG(fl == o && memcmp(want, out, o) == 0, "round %d", round);
        free(fixed);
    }
}

/* ---- bad objects ---- */

static void check_refused(const char *json, const char *needle)
{
    json_error_t je;
    json_t *j = json_loads(json, 0, &je);
    CHECK_MSG(j != NULL, "%s", je.text);
    tokenizer *t = NULL;
    dsq_error err = {0};
    CHECK_MSG(tokenizer_load(&t, j, "x.dsq", &err) != 0, "accepted: %s", json);
    CHECK(t == NULL);
    CHECK_STR_CONTAINS(err.msg, "x.dsq: tokenizer.");
    CHECK_STR_CONTAINS(err.msg, needle);
    json_decref(j);
}

#define OBJ(tokens, merges, steps)                                                                 \
    "{\"model\": \"bpe-byte-level\", \"tokens\": " tokens ", \"merges\": " merges                  \
    ", \"added_tokens\": [], \"pre_tokenizer\": " steps ", \"ignore_merges\": false,"              \
    " \"bos_token_id\": 0, \"eos_token_id\": 1, \"add_bos_token\": true, \"add_eos_token\": "      \
    "false}"
#define BL "{\"type\": \"byte_level\", \"add_prefix_space\": false, \"use_regex\": false}"
#define SPLIT(re)                                                                                  \
    "{\"type\": \"split\", \"regex\": \"" re "\", \"behavior\": \"isolated\", \"invert\": false}"

TEST(bad_objects_are_refused)
{
    json_error_t je;
    json_t *good =
        json_loads(OBJ("[\"a\", \"b\", \"ab\"]", "[[\"a\", \"b\"]]", "[" BL "]"), 0, &je);
    tokenizer *t = NULL;
    dsq_error err = {0};
    CHECK(tokenizer_load(&t, good, "x.dsq", &err) == 0);
    int *ids;
    size_t n;
    CHECK(t && tokenizer_encode(t, "abba", 4, 0, &ids, &n, &err) == 0);
    CHECK(t && n == 3 && ids[0] == 2 && ids[1] == 1 && ids[2] == 0);
    if (t)
        free(ids);
    tokenizer_free(t);
    json_decref(good);

    check_refused(OBJ("[\"a\", 5]", "[]", "[" BL "]"), "tokens[1]");
    check_refused(OBJ("[\"a\", \"b\"]", "[[\"a\", \"b\"]]", "[" BL "]"), "merges[0]");
    check_refused(OBJ("[\"a\", \"b\"]", "[]", "[]"), "pre_tokenizer");
    check_refused(OBJ("[\"a\", \"b\"]", "[]", "[" SPLIT("[a") "," BL "]"),
                  "pre_tokenizer[0].regex");
    check_refused(OBJ("[\"a\", \"b\"]", "[]", "[" SPLIT("[a[b]]") "," BL "]"), "nested");
    check_refused(OBJ("[\"a\", \"b\"]", "[]", "[" SPLIT("[a-z&&b]") "," BL "]"), "&&");
    check_refused(OBJ("[\"a\", \"b\"]", "[]", "[" SPLIT("[\\\\W]") "," BL "]"), "\\W");
    check_refused(OBJ("[\"a\", \"b\"]", "[]", "[" BL "," SPLIT("a") "]"), "last");
    check_refused(
        OBJ("[\"a\", \"b\"]", "[]",
            "[{\"type\": \"byte_level\", \"add_prefix_space\": false, \"use_regex\": true}]"),
        "use_regex");
    check_refused(OBJ("[\"a\", null]", "[]", "[" BL "]"), "eos_token_id");
    check_refused("{\"model\": \"wordpiece\"}", "model");
}

/* ---- timing (printed, not asserted) ---- */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void time_paragraph(const char *cases_path, const char *dir)
{
    json_t *doc = load_json(cases_path);
    tokenizer *t =
        doc ? load_dir(dir, (int)json_integer_value(json_object_get(doc, "bos_token_id")),
                       (int)json_integer_value(json_object_get(doc, "eos_token_id")), 512)
            : NULL;
    const char *text = NULL;
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(doc, "cases"), i, c)
    {
        const char *name = json_string_value(json_object_get(c, "name"));
        if (name && strcmp(name, "paragraph_5k") == 0)
            text = json_string_value(json_object_get(c, "text"));
    }
    CHECK(t && text);
    if (t && text) {
        size_t len = strlen(text), n = 0;
        double t0 = now();
        for (int k = 0; k < 100; k++) {
            int *ids;
            dsq_error err;
            CHECK(tokenizer_encode(t, text, len, 0, &ids, &n, &err) == 0);
            free(ids);
        }
        double dt = now() - t0;
        printf(
            "  timing: %s: 100 x %zu bytes (%zu tokens): %.1f ms total, %.3f ms each, %.1f MB/s\n",
            dir, len, n, 1e3 * dt, 10 * dt, 100.0 * (double)len / dt / 1e6);
    }
    tokenizer_free(t);
    json_decref(doc);
}

TEST(timing_5k_paragraph)
{
    time_paragraph(data_path("tokenizer-cases/tiny-fixture/cases.json"), data_path("tiny-v2-lite"));
    time_paragraph(data_path("tokenizer-cases/deepseek-llm/cases.json"),
                   data_path("tokenizer-cases/deepseek-llm"));
}
