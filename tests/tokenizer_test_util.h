/* Helpers shared by the tokenizer import tests: a small tokenizer.json (BASE) to edit, scratch
 * folders holding test files, and import-and-check calls. */
#ifndef DSQ_TOKENIZER_TEST_UTIL_H
#define DSQ_TOKENIZER_TEST_UTIL_H

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "test.h"
#include "tokenizer_import.h"

/* tokenizer.json with the pre_tokenizer and decoder given (%s, %s). The vocab has holes at 4
 * and 8; <pad> is not in it, so HF gives it len(vocab) = 8. */
static const char *const TOKENIZER_FMT =
    "{\"version\": \"1.0\", \"truncation\": null, \"padding\": null,\n"
    " \"added_tokens\": [\n"
    "  {\"id\": 7, \"content\": \"<s>\", \"single_word\": false, \"lstrip\": false, \"rstrip\": "
    "false,"
    " \"normalized\": false, \"special\": true},\n"
    "  {\"id\": 9, \"content\": \"</s>\", \"single_word\": false, \"lstrip\": false, \"rstrip\": "
    "false,"
    " \"normalized\": false, \"special\": true},\n"
    "  {\"id\": 8, \"content\": \"<pad>\", \"single_word\": true, \"lstrip\": true, \"rstrip\": "
    "false,"
    " \"normalized\": true, \"special\": false}],\n"
    " \"normalizer\": null,\n"
    " \"pre_tokenizer\": %s,\n"
    " \"post_processor\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": "
    "false,"
    " \"use_regex\": true},\n"
    " \"decoder\": %s,\n"
    " \"model\": {\"type\": \"BPE\", \"dropout\": null, \"unk_token\": null,"
    " \"continuing_subword_prefix\": null, \"end_of_word_suffix\": null, \"fuse_unk\": false,"
    " \"byte_fallback\": false, \"ignore_merges\": false,\n"
    "  \"vocab\": {\"a\": 0, \"b\": 1, \"c\": 2, \"ab\": 3, \"abc\": 5, \"\\u0120\": 6, \"<s>\": 7,"
    " \"</s>\": 9},\n"
    "  \"merges\": [\"a b\", \"ab c\"]}}\n";

#define BYTE_LEVEL                                                                                 \
    "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true,"               \
    " \"use_regex\": false}"
static const char *const BASE_PRE_TOKENIZER =
    "{\"type\": \"Sequence\", \"pretokenizers\": [\n"
    "  {\"type\": \"Split\", \"pattern\": {\"Regex\": "
    "\"\\\\s?\\\\p{L}+\"}, \"behavior\": \"Isolated\","
    " \"invert\": false},\n"
    "  {\"type\": \"Split\", \"pattern\": {\"String\": "
    "\"a.b\"}, \"behavior\": \"MergedWithPrevious\","
    " \"invert\": false},\n"
    "  {\"type\": \"Split\", \"pattern\": {\"Regex\": \"x\"}, "
    "\"behavior\": \"Removed\", \"invert\": true},\n"
    "  " BYTE_LEVEL "]}";
static const char *const BASE_DECODER = "{\"type\": \"ByteLevel\", \"add_prefix_space\": true, "
                                        "\"trim_offsets\": true, \"use_regex\": true}";

/* tokenizer.json text (static buffer) for a pre_tokenizer and a decoder. */
static inline const char *tokenizer_json(const char *pre_tokenizer, const char *decoder)
{
    static char buf[2][8192];
    static int next;
    char *b = buf[next++ % 2];
    snprintf(b, sizeof buf[0], TOKENIZER_FMT, pre_tokenizer, decoder);
    return b;
}
#define BASE tokenizer_json(BASE_PRE_TOKENIZER, BASE_DECODER)

static const char *const BASE_EXPECTED =
    "{\"model\": \"bpe-byte-level\","
    " \"tokens\": [\"a\", \"b\", \"c\", \"ab\", null, \"abc\", \"\\u0120\", \"<s>\", \"<pad>\", "
    "\"</s>\"],"
    " \"merges\": [[\"a\", \"b\"], [\"ab\", \"c\"]],"
    " \"added_tokens\": ["
    "{\"id\": 7, \"content\": \"<s>\", \"special\": true, \"lstrip\": false, \"rstrip\": false,"
    " \"normalized\": false, \"single_word\": false},"
    " {\"id\": 8, \"content\": \"<pad>\", \"special\": false, \"lstrip\": true, \"rstrip\": false,"
    " \"normalized\": true, \"single_word\": true},"
    " {\"id\": 9, \"content\": \"</s>\", \"special\": true, \"lstrip\": false, \"rstrip\": false,"
    " \"normalized\": false, \"single_word\": false}],"
    " \"pre_tokenizer\": ["
    "{\"type\": \"split\", \"regex\": \"\\\\s?\\\\p{L}+\", \"behavior\": \"isolated\", \"invert\": "
    "false},"
    " {\"type\": \"split\", \"regex\": \"a\\\\.b\", \"behavior\": \"merged_with_previous\","
    " \"invert\": false},"
    " {\"type\": \"split\", \"regex\": \"x\", \"behavior\": \"removed\", \"invert\": true},"
    " {\"type\": \"byte_level\", \"add_prefix_space\": false, \"use_regex\": false}],"
    " \"ignore_merges\": false, \"bos_token_id\": 7, \"eos_token_id\": 9,"
    " \"add_bos_token\": true, \"add_eos_token\": false}";

#define BOS 7
#define EOS 9
#define VOCAB 16

static inline void write_file(const char *dir, const char *name, const char *text)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) {
        CHECK(fwrite(text, 1, strlen(text), f) == strlen(text));
        fclose(f);
    }
}

/* A fresh folder <tmp>/<name> holding the given files (NULL: not written). */
static inline const char *case_dir(const char *name, const char *tokenizer, const char *config)
{
    static char dirs[4][512];
    static int next;
    char *d = dirs[next++ % 4];
    snprintf(d, sizeof dirs[0], "%s/%s", test_tmp_dir(), name);
    CHECK(mkdir(d, 0755) == 0 || errno == EEXIST);
    if (tokenizer)
        write_file(d, "tokenizer.json", tokenizer);
    if (config)
        write_file(d, "tokenizer_config.json", config);
    return d;
}

/* s with its one occurrence of old replaced by repl (malloc'd). */
static inline char *subst(const char *s, const char *old, const char *repl)
{
    const char *at = strstr(s, old);
    CHECK_MSG(at != NULL, "\"%s\" not in the text", old);
    if (!at)
        at = s + strlen(s), old = "";
    size_t n = strlen(s) - strlen(old) + strlen(repl);
    char *r = malloc(n + 1);
    snprintf(r, n + 1, "%.*s%s%s", (int)(at - s), s, repl, at + strlen(old));
    return r;
}

/* A folder whose tokenizer.json is BASE with one substitution. */
static inline const char *base_with(const char *name, const char *old, const char *repl,
                                    const char *config)
{
    char *t = subst(BASE, old, repl);
    const char *d = case_dir(name, t, config);
    free(t);
    return d;
}

static inline json_t *import_ok(const char *dir, int bos, int eos, int vocab_size, json_t **tmpl)
{
    dsq_error err = {0};
    json_t *out = NULL, *t = NULL;
    int rc = tokenizer_import(dir, bos, eos, vocab_size, &out, &t, &err);
    CHECK_MSG(rc == DSQ_OK, "%s", err.msg);
    if (tmpl)
        *tmpl = t;
    else
        json_decref(t);
    return out;
}

/* The import fails with DSQ_EINPUT, a message naming the file and containing the needles. */
static inline void expect_fail(const char *dir, int bos, int eos, int vocab_size, const char *file,
                               const char *n1, const char *n2)
{
    dsq_error err = {0};
    json_t *out = (json_t *)1, *t = (json_t *)1;
    int rc = tokenizer_import(dir, bos, eos, vocab_size, &out, &t, &err);
    CHECK_EQ_INT(rc, DSQ_EINPUT);
    CHECK_EQ_INT(err.code, DSQ_EINPUT);
    CHECK(out == NULL && t == NULL);
    char path[600];
    snprintf(path, sizeof path, "%s/%s: ", dir, file);
    CHECK_MSG(strncmp(err.msg, path, strlen(path)) == 0, "\"%s\" does not start with \"%s\"",
              err.msg, path);
    CHECK_STR_CONTAINS(err.msg, n1);
    if (n2)
        CHECK_STR_CONTAINS(err.msg, n2);
}

static inline void check_json(const json_t *got, const char *expected_text)
{
    json_error_t je;
    json_t *want = json_loads(expected_text, 0, &je);
    CHECK_MSG(want != NULL, "expected text: %s", je.text);
    char *g = json_dumps(got, JSON_COMPACT), *w = json_dumps(want, JSON_COMPACT);
    /* Byte-exact, key order included. */
    CHECK_MSG(g && w && strcmp(g, w) == 0, "\n got  %s\n want %s", g ? g : "(null)",
              w ? w : "(null)");
    free(g);
    free(w);
    json_decref(want);
}

#endif
