/* Tokenizer import: tokenizer.json's model and added_tokens + tokenizer_config.json -> the
 * normalized tokenizer object, and refusals (the pre-tokenizer's: test_pretokenizer_import.c). */
#include <stdlib.h>
#include <time.h>

#include "tokenizer_test_util.h"

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

/* ---- DeepSeek ------------------------------------------------------------------------------ */

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

TEST(non_positive_vocab_size_is_refused)
{
    dsq_error err = {0};
    json_t *out, *t;
    CHECK_EQ_INT(tokenizer_import(case_dir("vsize", BASE, NULL), BOS, EOS, 0, &out, &t, &err),
                 DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "vocab_size 0");
}
