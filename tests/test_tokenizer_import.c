/* Tokenizer import: tokenizer.json + tokenizer_config.json -> the normalized tokenizer object,
 * and refusal of everything it cannot represent exactly. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "test.h"
#include "tokenizer_import.h"

/* tokenizer.json with the pre_tokenizer and decoder given (%s, %s). The vocab has holes at 4
 * and 8; <pad> is not in it, so HF gives it len(vocab) = 8. */
static const char *TOKENIZER_FMT =
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
static const char *BASE_PRE_TOKENIZER = "{\"type\": \"Sequence\", \"pretokenizers\": [\n"
                                        "  {\"type\": \"Split\", \"pattern\": {\"Regex\": "
                                        "\"\\\\s?\\\\p{L}+\"}, \"behavior\": \"Isolated\","
                                        " \"invert\": false},\n"
                                        "  {\"type\": \"Split\", \"pattern\": {\"String\": "
                                        "\"a.b\"}, \"behavior\": \"MergedWithPrevious\","
                                        " \"invert\": false},\n"
                                        "  {\"type\": \"Split\", \"pattern\": {\"Regex\": \"x\"}, "
                                        "\"behavior\": \"Removed\", \"invert\": true},\n"
                                        "  " BYTE_LEVEL "]}";
static const char *BASE_DECODER = "{\"type\": \"ByteLevel\", \"add_prefix_space\": true, "
                                  "\"trim_offsets\": true, \"use_regex\": true}";

/* tokenizer.json text (static buffer) for a pre_tokenizer and a decoder. */
static const char *tokenizer_json(const char *pre_tokenizer, const char *decoder)
{
    static char buf[2][8192];
    static int next;
    char *b = buf[next++ % 2];
    snprintf(b, sizeof buf[0], TOKENIZER_FMT, pre_tokenizer, decoder);
    return b;
}
#define BASE tokenizer_json(BASE_PRE_TOKENIZER, BASE_DECODER)

static const char *BASE_EXPECTED =
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

static void write_file(const char *dir, const char *name, const char *text)
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
static const char *case_dir(const char *name, const char *tokenizer, const char *config)
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
static char *subst(const char *s, const char *old, const char *repl)
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
static const char *base_with(const char *name, const char *old, const char *repl,
                             const char *config)
{
    char *t = subst(BASE, old, repl);
    const char *d = case_dir(name, t, config);
    free(t);
    return d;
}

static json_t *import_ok(const char *dir, int bos, int eos, int vocab_size, json_t **tmpl)
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
static void expect_fail(const char *dir, int bos, int eos, int vocab_size, const char *file,
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

static void check_json(const json_t *got, const char *expected_text)
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

static const json_t *pre_step(const json_t *tok, size_t i)
{
    return json_array_get(json_object_get(tok, "pre_tokenizer"), i);
}

static const char *str_at(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "(none)";
}

TEST(imports_tokens_merges_added_tokens_and_splits)
{
    json_t *tmpl;
    json_t *tok = import_ok(case_dir("base", BASE, NULL), BOS, EOS, VOCAB, &tmpl);
    check_json(tok, BASE_EXPECTED);
    CHECK(json_is_null(tmpl)); /* no tokenizer_config.json: defaults and no template */
    json_decref(tok);
    json_decref(tmpl);
}

TEST(merges_as_arrays_read_like_strings)
{
    const char *d =
        base_with("merge-arrays", "[\"a b\", \"ab c\"]", "[[\"a\", \"b\"], [\"ab\", \"c\"]]", NULL);
    json_t *tok = import_ok(d, BOS, EOS, VOCAB, NULL);
    check_json(json_object_get(tok, "merges"), "[[\"a\", \"b\"], [\"ab\", \"c\"]]");
    json_decref(tok);
}

TEST(merge_listed_twice_keeps_its_last_rank)
{
    /* HF builds a HashMap of pair -> rank: the later rank wins. */
    const char *d =
        base_with("merge-dup", "[\"a b\", \"ab c\"]", "[\"a b\", \"ab c\", [\"a\", \"b\"]]", NULL);
    json_t *tok = import_ok(d, BOS, EOS, VOCAB, NULL);
    check_json(json_object_get(tok, "merges"), "[[\"ab\", \"c\"], [\"a\", \"b\"]]");
    json_decref(tok);
}

TEST(string_pattern_is_escaped_like_rust_regex_escape)
{
    const char *d = base_with("string-pattern", "{\"String\": \"a.b\"}",
                              "{\"String\": \"x.+*?()|[]{}^$#&-~\\\\ y\"}", NULL);
    json_t *tok = import_ok(d, BOS, EOS, VOCAB, NULL);
    CHECK(strcmp(str_at(pre_step(tok, 1), "regex"),
                 "x\\.\\+\\*\\?\\(\\)\\|\\[\\]\\{\\}\\^\\$\\#\\&\\-\\~\\\\ y") == 0);
    json_decref(tok);
}

TEST(byte_level_use_regex_becomes_the_gpt2_split)
{
    /* use_regex is true when absent (serde default). */
    static const char *const variants[] = {
        "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true,"
        " \"use_regex\": true}",
        "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true}",
    };
    for (int v = 0; v < 2; v++) {
        char name[32];
        snprintf(name, sizeof name, "gpt2-%d", v);
        json_t *tok = import_ok(case_dir(name, tokenizer_json(variants[v], BASE_DECODER), NULL),
                                BOS, EOS, VOCAB, NULL);
        check_json(
            json_object_get(tok, "pre_tokenizer"),
            "[{\"type\": \"split\", \"regex\": \"'s|'t|'re|'ve|'m|'ll|'d| ?\\\\p{L}+|"
            " ?\\\\p{N}+| ?[^\\\\s\\\\p{L}\\\\p{N}]+|\\\\s+(?!\\\\S)|\\\\s+\","
            " \"behavior\": \"isolated\", \"invert\": false},"
            " {\"type\": \"byte_level\", \"add_prefix_space\": false, \"use_regex\": false}]");
        json_decref(tok);
    }
}

TEST(digits_and_punctuation_become_splits)
{
    /* Nested Sequences flatten in order. */
    const char *pre =
        "{\"type\": \"Sequence\", \"pretokenizers\": ["
        "{\"type\": \"Split\", \"pattern\": {\"Regex\": \"\\\\s?\\\\p{L}+\"}, \"behavior\": "
        "\"Isolated\","
        " \"invert\": false},"
        " {\"type\": \"Digits\", \"individual_digits\": true},"
        " {\"type\": \"Digits\", \"individual_digits\": false},"
        " {\"type\": \"Punctuation\"}, {\"type\": \"Punctuation\", \"behavior\": \"Contiguous\"},"
        " {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\":"
        " {\"String\": \"a.b\"}, \"behavior\": \"MergedWithPrevious\", \"invert\": false},"
        " {\"type\": \"Split\", \"pattern\": {\"Regex\": \"x\"}, \"behavior\": \"Removed\","
        " \"invert\": true}]}, " BYTE_LEVEL "]}";
    const char *d = case_dir("digits-punct", tokenizer_json(pre, BASE_DECODER), NULL);
    json_t *tok = import_ok(d, BOS, EOS, VOCAB, NULL);
    check_json(
        json_object_get(tok, "pre_tokenizer"),
        "[{\"type\": \"split\", \"regex\": \"\\\\s?\\\\p{L}+\", \"behavior\": \"isolated\","
        " \"invert\": false},"
        " {\"type\": \"split\", \"regex\": \"\\\\p{N}\", \"behavior\": \"isolated\","
        " \"invert\": false},"
        " {\"type\": \"split\", \"regex\": \"\\\\p{N}\", \"behavior\": \"contiguous\","
        " \"invert\": false},"
        " {\"type\": \"split\", \"regex\": \"[\\\\p{P}\\\\x{21}-\\\\x{2F}\\\\x{3A}-\\\\x{40}"
        "\\\\x{5B}-\\\\x{60}\\\\x{7B}-\\\\x{7E}]\", \"behavior\": \"isolated\","
        " \"invert\": false},"
        " {\"type\": \"split\", \"regex\": \"[\\\\p{P}\\\\x{21}-\\\\x{2F}\\\\x{3A}-\\\\x{40}"
        "\\\\x{5B}-\\\\x{60}\\\\x{7B}-\\\\x{7E}]\", \"behavior\": \"contiguous\","
        " \"invert\": false},"
        " {\"type\": \"split\", \"regex\": \"a\\\\.b\", \"behavior\": \"merged_with_previous\","
        " \"invert\": false},"
        " {\"type\": \"split\", \"regex\": \"x\", \"behavior\": \"removed\", \"invert\": true},"
        " {\"type\": \"byte_level\", \"add_prefix_space\": false, \"use_regex\": false}]");
    json_decref(tok);
}

TEST(config_sets_add_bos_add_eos_and_chat_template)
{
    const char *d = case_dir(
        "config", BASE,
        "{\"add_bos_token\": false, \"add_eos_token\": true,"
        " \"bos_token\": {\"__type\": \"AddedToken\", \"content\": \"<s>\", \"lstrip\": false},"
        " \"eos_token\": \"</s>\", \"pad_token\": null, \"tokenizer_class\": "
        "\"LlamaTokenizerFast\","
        " \"chat_template\": \"{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor "
        "%}\"}");
    json_t *tmpl;
    json_t *tok = import_ok(d, BOS, EOS, VOCAB, &tmpl);
    CHECK(json_is_false(json_object_get(tok, "add_bos_token")));
    CHECK(json_is_true(json_object_get(tok, "add_eos_token")));
    CHECK(strcmp(json_string_value(tmpl) ? json_string_value(tmpl) : "",
                 "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}") == 0);
    json_decref(tok);
    json_decref(tmpl);
}

TEST(config_without_add_keys_defaults_to_bos_only)
{
    const char *d = case_dir("config-defaults", BASE, "{\"bos_token\": \"<s>\"}");
    json_t *tmpl;
    json_t *tok = import_ok(d, BOS, EOS, VOCAB, &tmpl);
    CHECK(json_is_true(json_object_get(tok, "add_bos_token")));
    CHECK(json_is_false(json_object_get(tok, "add_eos_token")));
    CHECK(json_is_null(tmpl));
    json_decref(tok);
    json_decref(tmpl);
}

TEST(chat_template_list_takes_default_else_first)
{
    json_t *tmpl;
    const char *d = case_dir("tmpl-list", BASE,
                             "{\"chat_template\": [{\"name\": \"tool_use\", \"template\": \"T\"},"
                             " {\"name\": \"default\", \"template\": \"D\"}]}");
    json_t *tok = import_ok(d, BOS, EOS, VOCAB, &tmpl);
    CHECK(strcmp(json_string_value(tmpl) ? json_string_value(tmpl) : "", "D") == 0);
    json_decref(tok);
    json_decref(tmpl);
    d = case_dir("tmpl-list-first", BASE,
                 "{\"chat_template\": [{\"name\": \"rag\", \"template\": \"R\"},"
                 " {\"name\": \"tool_use\", \"template\": \"T\"}]}");
    tok = import_ok(d, BOS, EOS, VOCAB, &tmpl);
    CHECK(strcmp(json_string_value(tmpl) ? json_string_value(tmpl) : "", "R") == 0);
    json_decref(tok);
    json_decref(tmpl);
}

TEST(chat_template_jinja_file_is_read_when_config_has_none)
{
    const char *d = case_dir("tmpl-jinja", BASE, "{\"add_bos_token\": true}");
    write_file(d, "chat_template.jinja", "{{ bos_token }}J\n");
    json_t *tmpl;
    json_t *tok = import_ok(d, BOS, EOS, VOCAB, &tmpl);
    CHECK(strcmp(json_string_value(tmpl) ? json_string_value(tmpl) : "", "{{ bos_token }}J\n") ==
          0);
    json_decref(tok);
    json_decref(tmpl);
}

TEST(empty_sequence_normalizer_is_accepted)
{
    const char *d =
        base_with("norm-empty", "\"normalizer\": null",
                  "\"normalizer\": {\"type\": \"Sequence\", \"normalizers\": []}", NULL);
    json_t *tok = import_ok(d, BOS, EOS, VOCAB, NULL);
    check_json(tok, BASE_EXPECTED);
    json_decref(tok);
}

TEST(decoder_sequence_holding_byte_level_is_accepted)
{
    const char *d = case_dir("decoder-seq",
                             tokenizer_json(BASE_PRE_TOKENIZER,
                                            "{\"type\": \"Sequence\", \"decoders\": [{\"type\":"
                                            " \"Fuse\"}, {\"type\": \"ByteLevel\"}]}"),
                             NULL);
    json_t *tok = import_ok(d, BOS, EOS, VOCAB, NULL);
    check_json(tok, BASE_EXPECTED);
    json_decref(tok);
}

/* ---- DeepSeek ------------------------------------------------------------------------------ */

/* DeepSeek LLM / V2's letter class: 87 ranges of code points, in the order the files list them.
 * Built from numbers because a copy of the text may have been Unicode-normalized on the way
 * (U+1FD3 would become U+0390 and the range empty). */
static const uint32_t ds_letters[][2] = {
    {0x0041, 0x005A},   {0x0061, 0x007A},   {0x00B5, 0x00B5},   {0x00C0, 0x00D6},
    {0x00D8, 0x00F6},   {0x00F8, 0x01BA},   {0x01BC, 0x01BF},   {0x01C4, 0x0293},
    {0x0295, 0x02AF},   {0x0370, 0x0373},   {0x0376, 0x0376},   {0x0377, 0x0377},
    {0x037B, 0x037D},   {0x037F, 0x037F},   {0x0386, 0x0386},   {0x0388, 0x038A},
    {0x038C, 0x038C},   {0x038E, 0x03A1},   {0x03A3, 0x03F5},   {0x03F7, 0x0481},
    {0x048A, 0x052F},   {0x0531, 0x0556},   {0x10A0, 0x10C5},   {0x13A0, 0x13F5},
    {0x13F8, 0x13FD},   {0x1C90, 0x1CBA},   {0x1CBD, 0x1CBF},   {0x1D00, 0x1D2B},
    {0x1D6B, 0x1D77},   {0x1D79, 0x1D9A},   {0x1E00, 0x1F15},   {0x1F18, 0x1F1D},
    {0x1F20, 0x1F45},   {0x1F48, 0x1F4D},   {0x1F50, 0x1F57},   {0x1F59, 0x1F59},
    {0x1F5B, 0x1F5B},   {0x1F5D, 0x1F5D},   {0x1F5F, 0x1F7D},   {0x1F80, 0x1FB4},
    {0x1FB6, 0x1FBC},   {0x1FBE, 0x1FBE},   {0x1FC2, 0x1FC4},   {0x1FC6, 0x1FCC},
    {0x1FD0, 0x1FD3},   {0x1FD6, 0x1FDB},   {0x1FE0, 0x1FEC},   {0x1FF2, 0x1FF4},
    {0x1FF6, 0x1FFC},   {0x2102, 0x2102},   {0x2107, 0x2107},   {0x210A, 0x2113},
    {0x2115, 0x2115},   {0x2119, 0x211D},   {0x2124, 0x2124},   {0x2126, 0x2126},
    {0x2128, 0x2128},   {0x212A, 0x212D},   {0x212F, 0x2134},   {0x2139, 0x2139},
    {0x213C, 0x213F},   {0x2145, 0x2149},   {0x214E, 0x214E},   {0x2183, 0x2183},
    {0x2184, 0x2184},   {0x2C00, 0x2C7B},   {0x2C7E, 0x2CE4},   {0x2CEB, 0x2CEE},
    {0x2CF2, 0x2CF2},   {0x2CF3, 0x2CF3},   {0xA640, 0xA66D},   {0xA680, 0xA69B},
    {0xA722, 0xA76F},   {0xA771, 0xA787},   {0xA78B, 0xA78E},   {0xAB70, 0xABBF},
    {0xFB00, 0xFB06},   {0xFB13, 0xFB17},   {0xFF21, 0xFF3A},   {0xFF41, 0xFF5A},
    {0x10400, 0x1044F}, {0x104B0, 0x104D3}, {0x104D8, 0x104FB}, {0x10C80, 0x10CB2},
    {0x10CC0, 0x10CF2}, {0x118A0, 0x118DF}, {0x1E900, 0x1E943},
};
static const uint32_t ds_punct[][2] = {{0x21, 0x2F},     {0x3A, 0x7E},     {0xFF01, 0xFF0F},
                                       {0xFF1A, 0xFF5E}, {0x2018, 0x201F}, {0x3000, 0x3002}};
static const uint32_t ds_cjk[][2] = {{0x4E00, 0x9FA5}, {0x0800, 0x4E00}, {0xAC00, 0xD7FF}};

static char *put_utf8(char *p, uint32_t c)
{
    if (c < 0x80) {
        *p++ = (char)c;
    } else if (c < 0x800) {
        *p++ = (char)(0xC0 | c >> 6);
        *p++ = (char)(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
        *p++ = (char)(0xE0 | c >> 12);
        *p++ = (char)(0x80 | (c >> 6 & 0x3F));
        *p++ = (char)(0x80 | (c & 0x3F));
    } else {
        *p++ = (char)(0xF0 | c >> 18);
        *p++ = (char)(0x80 | (c >> 12 & 0x3F));
        *p++ = (char)(0x80 | (c >> 6 & 0x3F));
        *p++ = (char)(0x80 | (c & 0x3F));
    }
    return p;
}

/* prefix [ranges] suffix, each range "lo-hi" or one character when lo == hi. */
static void class_regex(char *out, const char *prefix, const uint32_t (*r)[2], size_t n,
                        const char *suffix)
{
    char *p = out + sprintf(out, "%s[", prefix);
    for (size_t i = 0; i < n; i++) {
        p = put_utf8(p, r[i][0]);
        if (r[i][1] != r[i][0]) {
            *p++ = '-';
            p = put_utf8(p, r[i][1]);
        }
    }
    sprintf(p, "]%s", suffix);
}

/* DeepSeek LLM / V2 / V2-Lite's pre-tokenizer as the normalized steps. */
static void check_deepseek_steps(const json_t *tok)
{
    char letters[1024], punct[128], cjk[64];
    class_regex(letters, "\\s?", ds_letters, sizeof ds_letters / sizeof *ds_letters, "+");
    class_regex(punct, "\\s?", ds_punct, 6, "+");
    class_regex(cjk, "", ds_cjk, 3, "+");
    const char *want[6] = {"[\r\n]", letters, punct, "\\s+$", cjk, "\\p{N}"};
    const json_t *steps = json_object_get(tok, "pre_tokenizer");
    CHECK_EQ_INT(json_array_size(steps), 7);
    for (size_t i = 0; i < 6; i++) {
        const json_t *s = json_array_get(steps, i);
        CHECK_MSG(strcmp(str_at(s, "type"), "split") == 0, "step %zu", i);
        CHECK_MSG(strcmp(str_at(s, "regex"), want[i]) == 0, "step %zu: %s", i, str_at(s, "regex"));
        CHECK_MSG(strcmp(str_at(s, "behavior"), "isolated") == 0, "step %zu", i);
        CHECK(json_is_false(json_object_get(s, "invert")));
    }
    const json_t *bl = json_array_get(steps, 6);
    CHECK(strcmp(str_at(bl, "type"), "byte_level") == 0);
    CHECK(json_is_false(json_object_get(bl, "add_prefix_space")));
}

TEST(deepseek_llm_tokenizer_imports_with_its_splits)
{
    /* Trained by HF tokenizers with DeepSeek's own pipeline (scripts/make_tokenizer_cases.py). */
    char dir[512];
    snprintf(dir, sizeof dir, "%s/tokenizer-cases/deepseek-llm", test_data_dir());
    json_t *tmpl;
    json_t *tok = import_ok(dir, 420, 421, 102400, &tmpl);
    if (!tok)
        return;
    check_deepseek_steps(tok);
    const json_t *tokens = json_object_get(tok, "tokens");
    CHECK_EQ_INT(json_array_size(tokens), 423);
    CHECK(strcmp(json_string_value(json_array_get(tokens, 220)), "\xC4\xA0") == 0); /* Ġ */
    CHECK(strcmp(json_string_value(json_array_get(tokens, 420)),
                 "<\xEF\xBD\x9C"
                 "begin\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>") == 0);
    CHECK_EQ_INT(json_array_size(json_object_get(tok, "merges")), 164);
    const json_t *added = json_object_get(tok, "added_tokens");
    CHECK_EQ_INT(json_array_size(added), 3);
    CHECK(json_is_true(json_object_get(json_array_get(added, 1), "special")));
    CHECK(json_is_false(json_object_get(json_array_get(added, 2), "special")));
    CHECK(json_is_true(json_object_get(tok, "add_bos_token")));
    CHECK(json_is_false(json_object_get(tok, "add_eos_token")));
    CHECK(strncmp(json_string_value(tmpl) ? json_string_value(tmpl) : "",
                  "{% if not add_generation_prompt is defined %}", 45) == 0);
    json_decref(tok);
    json_decref(tmpl);
}

TEST(unk_token_is_accepted_when_every_byte_symbol_is_in_the_vocab)
{
    /* Then the unknown token can never be produced. */
    char path[512];
    snprintf(path, sizeof path, "%s/tokenizer-cases/deepseek-llm/tokenizer.json", test_data_dir());
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    if (!f)
        return;
    static char text[64 << 10];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    char *t = subst(text, "\"unk_token\": null", "\"unk_token\": \"<unk>\"");
    json_t *tok = import_ok(case_dir("unk-full", t, NULL), 420, 421, 102400, NULL);
    CHECK(tok != NULL);
    json_decref(tok);
    free(t);
}

TEST(tiny_v2_lite_fixture_imports_with_deepseek_splits)
{
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/tiny-v2-lite", test_data_dir());
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (access(path, F_OK) != 0) {
        printf("  tiny_v2_lite_fixture_imports_with_deepseek_splits: skipped, no %s\n", path);
        return;
    }
    /* Read the ids and sizes from the fixture's own config.json. */
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_t *cfg = json_load_file(path, 0, NULL);
    CHECK(cfg != NULL);
    if (!cfg)
        return;
    json_t *tok = import_ok(dir, (int)json_integer_value(json_object_get(cfg, "bos_token_id")),
                            (int)json_integer_value(json_object_get(cfg, "eos_token_id")),
                            (int)json_integer_value(json_object_get(cfg, "vocab_size")), NULL);
    if (tok)
        check_deepseek_steps(tok);
    json_decref(tok);
    json_decref(cfg);
}

/* ---- size ---------------------------------------------------------------------------------- */

TEST(large_vocab_imports_in_linear_time)
{
    /* 150k tokens p<i>, q<i>, p<i>q<i> and 50k merges, like a real DeepSeek vocab: an O(n^2)
     * step would take minutes here. */
    enum { M = 50000 };
    size_t cap = (size_t)M * 80 + 4096, len = 0;
    char *t = malloc(cap);
    len += (size_t)sprintf(t + len, "{\"added_tokens\": [], \"normalizer\": null,"
                                    " \"pre_tokenizer\": {\"type\": \"ByteLevel\","
                                    " \"add_prefix_space\": false, \"use_regex\": false},"
                                    " \"decoder\": {\"type\": \"ByteLevel\"},"
                                    " \"model\": {\"type\": \"BPE\", \"vocab\": {");
    for (int i = 0; i < M; i++)
        len += (size_t)sprintf(t + len, "%s\"p%d\": %d, \"q%d\": %d, \"p%dq%d\": %d", i ? ", " : "",
                               i, 3 * i, i, 3 * i + 1, i, i, 3 * i + 2);
    len += (size_t)sprintf(t + len, "}, \"merges\": [");
    for (int i = 0; i < M; i++)
        len += (size_t)sprintf(t + len, "%s\"p%d q%d\"", i ? ", " : "", i, i);
    sprintf(t + len, "]}}");
    const char *d = case_dir("large", t, NULL);
    free(t);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    json_t *tok = import_ok(d, 0, 3 * M - 1, 3 * M, NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("  large vocab: %d tokens, %d merges imported in %.2f s\n", 3 * M, M,
           (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) * 1e-9);
    CHECK_EQ_INT(json_array_size(json_object_get(tok, "tokens")), 3 * M);
    CHECK_EQ_INT(json_array_size(json_object_get(tok, "merges")), M);
    const json_t *last = json_array_get(json_object_get(tok, "merges"), M - 1);
    CHECK(last && strcmp(json_string_value(json_array_get(last, 1)), "q49999") == 0);
    json_decref(tok);
}

/* ---- refusals ------------------------------------------------------------------------------ */

TEST(missing_tokenizer_json_is_refused)
{
    expect_fail(case_dir("missing", NULL, NULL), BOS, EOS, VOCAB, "tokenizer.json", "not found",
                NULL);
}

TEST(malformed_json_is_refused_with_line_and_column)
{
    expect_fail(
        case_dir("malformed", "{\"model\": {\"type\": \"BPE\",\n  \"vocab\": {\"a\": 0,,}}}", NULL),
        BOS, EOS, VOCAB, "tokenizer.json", "line 2", "column");
    expect_fail(case_dir("malformed-config", BASE, "{\"add_bos_token\": tru}"), BOS, EOS, VOCAB,
                "tokenizer_config.json", "malformed JSON", "line 1");
    expect_fail(case_dir("not-object", "[1, 2]", NULL), BOS, EOS, VOCAB, "tokenizer.json",
                "top level", NULL);
}

TEST(non_bpe_model_is_refused)
{
    expect_fail(base_with("wordpiece", "\"type\": \"BPE\"", "\"type\": \"WordPiece\"", NULL), BOS,
                EOS, VOCAB, "tokenizer.json", "model.type", "WordPiece");
}

TEST(unsupported_bpe_options_are_refused)
{
    expect_fail(base_with("fallback", "\"byte_fallback\": false", "\"byte_fallback\": true", NULL),
                BOS, EOS, VOCAB, "tokenizer.json", "model.byte_fallback", NULL);
    expect_fail(base_with("dropout", "\"dropout\": null", "\"dropout\": 0.1", NULL), BOS, EOS,
                VOCAB, "tokenizer.json", "model.dropout", NULL);
    expect_fail(base_with("prefix", "\"continuing_subword_prefix\": null",
                          "\"continuing_subword_prefix\": \"##\"", NULL),
                BOS, EOS, VOCAB, "tokenizer.json", "model.continuing_subword_prefix", "##");
    expect_fail(base_with("suffix", "\"end_of_word_suffix\": null",
                          "\"end_of_word_suffix\": \"</w>\"", NULL),
                BOS, EOS, VOCAB, "tokenizer.json", "model.end_of_word_suffix", NULL);
    expect_fail(base_with("unk", "\"unk_token\": null", "\"unk_token\": \"<unk>\"", NULL), BOS, EOS,
                VOCAB, "tokenizer.json", "model.unk_token", NULL);
}

TEST(dropout_zero_and_empty_affixes_are_accepted)
{
    const char *d = base_with("dropout-zero",
                              "\"dropout\": null, \"unk_token\": null,"
                              " \"continuing_subword_prefix\": null",
                              "\"dropout\": 0.0, \"unk_token\": null,"
                              " \"continuing_subword_prefix\": \"\"",
                              NULL);
    json_t *tok = import_ok(d, BOS, EOS, VOCAB, NULL);
    check_json(tok, BASE_EXPECTED);
    json_decref(tok);
}

TEST(normalizer_is_refused)
{
    expect_fail(
        base_with("nfc", "\"normalizer\": null", "\"normalizer\": {\"type\": \"NFC\"}", NULL), BOS,
        EOS, VOCAB, "tokenizer.json", "normalizer", "NFC");
    expect_fail(base_with("seq-nfc", "\"normalizer\": null",
                          "\"normalizer\": {\"type\": \"Sequence\", \"normalizers\":"
                          " [{\"type\": \"Lowercase\"}]}",
                          NULL),
                BOS, EOS, VOCAB, "tokenizer.json", "normalizer", "Sequence");
}

TEST(token_id_outside_vocab_size_is_refused)
{
    expect_fail(base_with("vocab-range", "\"abc\": 5", "\"abc\": 50", NULL), BOS, EOS, VOCAB,
                "tokenizer.json", "model.vocab", "\"abc\" has id 50");
    expect_fail(base_with("vocab-negative", "\"abc\": 5", "\"abc\": -1", NULL), BOS, EOS, VOCAB,
                "tokenizer.json", "model.vocab", "\"abc\" has id -1");
    /* </s> is 9: the embedding has only 9 rows. */
    expect_fail(case_dir("added-range", BASE, NULL), BOS, EOS, 9, "tokenizer.json", "</s>", "id 9");
}

TEST(same_id_for_two_tokens_is_refused)
{
    expect_fail(base_with("dup-id", "\"abc\": 5", "\"abc\": 3", NULL), BOS, EOS, VOCAB,
                "tokenizer.json", "model.vocab", "id 3 is given to both");
}

TEST(added_token_ids_that_hf_would_change_are_refused)
{
    expect_fail(base_with("added-moved", "{\"id\": 7, \"content\": \"<s>\"",
                          "{\"id\": 10, \"content\": \"<s>\"", NULL),
                BOS, EOS, VOCAB, "tokenizer.json", "added_tokens[0]", "model.vocab");
    expect_fail(base_with("added-new-id", "{\"id\": 8, \"content\": \"<pad>\"",
                          "{\"id\": 12, \"content\": \"<pad>\"", NULL),
                BOS, EOS, VOCAB, "tokenizer.json", "added_tokens[2]", "gives it id 8");
    expect_fail(base_with("added-twice", "{\"id\": 8, \"content\": \"<pad>\"",
                          "{\"id\": 7, \"content\": \"<s>\"", NULL),
                BOS, EOS, VOCAB, "tokenizer.json", "added_tokens[2]", "listed twice");
}

TEST(special_token_ids_must_name_tokens)
{
    expect_fail(case_dir("bos-hole", BASE, NULL), 4, EOS, VOCAB, "tokenizer.json", "bos_token_id 4",
                NULL);
    expect_fail(case_dir("eos-beyond", BASE, NULL), BOS, 12, VOCAB, "tokenizer.json",
                "eos_token_id 12", NULL);
}

TEST(config_token_names_must_match_the_ids)
{
    expect_fail(case_dir("bos-mismatch", BASE, "{\"bos_token\": {\"content\": \"</s>\"}}"), BOS,
                EOS, VOCAB, "tokenizer_config.json", "bos_token \"</s>\"", "token 7");
    expect_fail(case_dir("eos-mismatch", BASE, "{\"eos_token\": \"<pad>\"}"), BOS, EOS, VOCAB,
                "tokenizer_config.json", "eos_token", "token 9");
    expect_fail(case_dir("bos-type", BASE, "{\"bos_token\": 7}"), BOS, EOS, VOCAB,
                "tokenizer_config.json", "bos_token", NULL);
}

TEST(config_fields_of_wrong_type_are_refused)
{
    expect_fail(case_dir("add-bos-type", BASE, "{\"add_bos_token\": \"yes\"}"), BOS, EOS, VOCAB,
                "tokenizer_config.json", "add_bos_token", NULL);
    expect_fail(case_dir("tmpl-type", BASE, "{\"chat_template\": 3}"), BOS, EOS, VOCAB,
                "tokenizer_config.json", "chat_template", NULL);
    expect_fail(case_dir("tmpl-entry", BASE, "{\"chat_template\": [{\"name\": \"default\"}]}"), BOS,
                EOS, VOCAB, "tokenizer_config.json", "chat_template[0]", NULL);
}

TEST(wrong_json_types_are_refused)
{
    expect_fail(base_with("vocab-array",
                          "\"vocab\": {\"a\": 0, \"b\": 1, \"c\": 2, \"ab\": 3,"
                          " \"abc\": 5, \"\\u0120\": 6, \"<s>\": 7, \"</s>\": 9}",
                          "\"vocab\": [\"a\", \"b\"]", NULL),
                BOS, EOS, VOCAB, "tokenizer.json", "model.vocab", NULL);
    expect_fail(base_with("id-string", "\"abc\": 5", "\"abc\": \"5\"", NULL), BOS, EOS, VOCAB,
                "tokenizer.json", "model.vocab", "abc");
    expect_fail(
        base_with("merges-object", "\"merges\": [\"a b\", \"ab c\"]", "\"merges\": {}", NULL), BOS,
        EOS, VOCAB, "tokenizer.json", "model.merges", NULL);
    expect_fail(base_with("model-missing", "\"model\": {", "\"not_model\": {", NULL), BOS, EOS,
                VOCAB, "tokenizer.json", "model", NULL);
    char *t = subst(BASE, "\"added_tokens\": [", "\"added_tokens\": 1, \"unused\": [");
    expect_fail(case_dir("added-number", t, NULL), BOS, EOS, VOCAB, "tokenizer.json",
                "added_tokens", NULL);
    free(t);
    expect_fail(base_with("added-content", "\"content\": \"<pad>\"", "\"content\": \"\"", NULL),
                BOS, EOS, VOCAB, "tokenizer.json", "added_tokens[2].content", NULL);
    expect_fail(base_with("added-flag", "\"special\": false}", "\"special\": 0}", NULL), BOS, EOS,
                VOCAB, "tokenizer.json", "added_tokens[2].special", NULL);
    t = subst(BASE_PRE_TOKENIZER, ", \"behavior\": \"Removed\", \"invert\": true",
              ", \"behavior\": \"Removed\"");
    expect_fail(case_dir("invert-missing", tokenizer_json(t, BASE_DECODER), NULL), BOS, EOS, VOCAB,
                "tokenizer.json", "pre_tokenizer.pretokenizers[2].invert", NULL);
    free(t);
    t = subst(BASE_PRE_TOKENIZER, "\"Removed\"", "\"Dropped\"");
    expect_fail(case_dir("behavior-bad", tokenizer_json(t, BASE_DECODER), NULL), BOS, EOS, VOCAB,
                "tokenizer.json", "pre_tokenizer.pretokenizers[2].behavior", NULL);
    free(t);
    t = subst(BASE_PRE_TOKENIZER, "{\"Regex\": \"x\"}", "{\"Regex\": 1}");
    expect_fail(case_dir("pattern-bad", tokenizer_json(t, BASE_DECODER), NULL), BOS, EOS, VOCAB,
                "tokenizer.json", "pre_tokenizer.pretokenizers[2].pattern", NULL);
    free(t);
}

TEST(bad_merges_are_refused)
{
    expect_fail(base_with("merge-oov", "\"ab c\"", "\"a c\"", NULL), BOS, EOS, VOCAB,
                "tokenizer.json", "model.merges[1]", "\"ac\" is not in model.vocab");
    expect_fail(base_with("merge-oov-left", "\"ab c\"", "\"zz c\"", NULL), BOS, EOS, VOCAB,
                "tokenizer.json", "model.merges[1]", "\"zz\"");
    expect_fail(base_with("merge-spaces", "\"ab c\"", "\"ab  c\"", NULL), BOS, EOS, VOCAB,
                "tokenizer.json", "model.merges[1]", "one space");
    expect_fail(base_with("merge-triple", "\"ab c\"", "[\"ab\", \"c\", \"d\"]", NULL), BOS, EOS,
                VOCAB, "tokenizer.json", "model.merges[1]", NULL);
}

/* BASE with its pre_tokenizer's text edited; the import must fail naming needles. */
static void expect_pre_tokenizer_fail(const char *name, const char *old, const char *repl,
                                      const char *n1, const char *n2)
{
    char *t = subst(BASE_PRE_TOKENIZER, old, repl);
    expect_fail(case_dir(name, tokenizer_json(t, BASE_DECODER), NULL), BOS, EOS, VOCAB,
                "tokenizer.json", n1, n2);
    free(t);
}

TEST(unsupported_pre_tokenizers_are_refused)
{
    expect_pre_tokenizer_fail("metaspace", "{\"type\": \"Split\", \"pattern\": {\"Regex\": \"x\"}",
                              "{\"type\": \"Metaspace\", \"pattern\": {\"Regex\": \"x\"}",
                              "pre_tokenizer.pretokenizers[2]", "Metaspace");
    expect_pre_tokenizer_fail("after-byte-level", "\"use_regex\": false}]}",
                              "\"use_regex\": false}, {\"type\": \"Digits\","
                              " \"individual_digits\": true}]}",
                              "pre_tokenizer.pretokenizers[4]", "after ByteLevel");
    expect_pre_tokenizer_fail("no-byte-level", ",\n  " BYTE_LEVEL "]}", "]}", "pre_tokenizer",
                              "no ByteLevel");
    expect_pre_tokenizer_fail("prefix-and-regex",
                              "\"add_prefix_space\": false, \"trim_offsets\": true,"
                              " \"use_regex\": false}",
                              "\"add_prefix_space\": true, \"trim_offsets\": true,"
                              " \"use_regex\": true}",
                              "pre_tokenizer.pretokenizers[3]", "add_prefix_space");
    expect_pre_tokenizer_fail("prefix-missing", "\"add_prefix_space\": false, ", "",
                              "pre_tokenizer.pretokenizers[3].add_prefix_space", NULL);
    expect_fail(case_dir("pre-null", tokenizer_json("null", BASE_DECODER), NULL), BOS, EOS, VOCAB,
                "tokenizer.json", "pre_tokenizer", NULL);
}

TEST(non_byte_level_decoder_is_refused)
{
    expect_fail(case_dir("decoder-wp",
                         tokenizer_json(BASE_PRE_TOKENIZER, "{\"type\": \"WordPiece\"}"), NULL),
                BOS, EOS, VOCAB, "tokenizer.json", "decoder", "WordPiece");
    expect_fail(case_dir("decoder-null", tokenizer_json(BASE_PRE_TOKENIZER, "null"), NULL), BOS,
                EOS, VOCAB, "tokenizer.json", "decoder", NULL);
}

TEST(non_positive_vocab_size_is_refused)
{
    dsq_error err = {0};
    json_t *out, *t;
    CHECK_EQ_INT(tokenizer_import(case_dir("vsize", BASE, NULL), BOS, EOS, 0, &out, &t, &err),
                 DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "vocab_size 0");
}
