/* Tokenizer import, pre-tokenizer side: normalizer, pre_tokenizer and decoder -> the normalized
 * "pre_tokenizer" steps (DeepSeek's included), and refusal of what they cannot represent. */
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "tokenizer_test_util.h"

static const json_t *pre_step(const json_t *tok, size_t i)
{
    return json_array_get(json_object_get(tok, "pre_tokenizer"), i);
}

static const char *str_at(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "(none)";
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

/* ---- refusals ------------------------------------------------------------------------------ */

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
