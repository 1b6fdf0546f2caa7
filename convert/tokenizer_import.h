/* Imports the Hugging Face tokenizer of a DeepSeek checkpoint folder (tokenizer.json,
 * tokenizer_config.json) into the normalized tokenizer object stored in the .dsq metadata.
 *
 * Normalized tokenizer object (the runtime tokenizes with it exactly as HF `tokenizers` does):
 *
 *   { "model": "bpe-byte-level",
 *     "tokens": [ string | null, ... ],   index = token id; null where an id below the largest
 *                                         has no token. Holds model.vocab and added_tokens.
 *     "merges": [ ["a", "b"], ... ],      rank order (index = rank, lower merges first); each
 *                                         a, b and a+b is in model.vocab. A pair listed twice in
 *                                         tokenizer.json keeps only its last rank, as HF does.
 *     "added_tokens": [ {"id", "content", "special", "lstrip", "rstrip", "normalized",
 *                        "single_word"}, ... ]   sorted by id; matched in the raw text before
 *                                         pre-tokenization, as HF's AddedVocabulary does.
 *     "pre_tokenizer": [ steps applied in order to every piece produced so far ]
 *        {"type": "split", "regex": R, "behavior": B, "invert": bool}
 *             R: a regex with Unicode properties (\p{L}, \p{N}, ...), as HF writes it
 *             (Oniguruma syntax; runtime/tokenizer_split.c translates it for PCRE2).
 *             Every match of R in a piece is a delimiter; B says what becomes of it:
 *             "isolated" (own piece), "removed", "merged_with_previous", "merged_with_next",
 *             "contiguous" (adjacent delimiters form one piece). invert: the non-matches are the
 *             delimiters instead. HF's String patterns, Digits and Punctuation are converted:
 *               String s      -> s escaped like Rust regex::escape (\ before \.+*?()|[]{}^$#&-~)
 *               Digits        -> "\p{N}", isolated (individual_digits) or contiguous
 *               Punctuation   -> "[\p{P}\x{21}-\x{2F}\x{3A}-\x{40}\x{5B}-\x{60}\x{7B}-\x{7E}]"
 *               ByteLevel with use_regex -> the GPT-2 regex below, isolated, then byte_level
 *        {"type": "byte_level", "add_prefix_space": bool, "use_regex": false}
 *             always the last step: if add_prefix_space, " " is prepended to every piece that
 *             does not start with one; then each piece's UTF-8 bytes are mapped to GPT-2's
 *             byte-to-unicode alphabet and BPE runs on each piece alone. use_regex is always
 *             false here (a ByteLevel regex became the split step before it).
 *     "ignore_merges": bool,              true: a piece that is itself in the vocab is one token
 *     "bos_token_id": int, "eos_token_id": int,   from the model config; both are in "tokens"
 *     "add_bos_token": bool, "add_eos_token": bool }   from tokenizer_config.json (default
 *                                         true / false, as LlamaTokenizerFast has)
 *
 * GPT-2 regex: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * HF drops a character whose byte symbol is missing from the vocab (unk_token is null). */
#ifndef DSQ_TOKENIZER_IMPORT_H
#define DSQ_TOKENIZER_IMPORT_H

#include <jansson.h>

#include "error.h"

/* Reads dir/tokenizer.json and dir/tokenizer_config.json (optional; without a chat_template in
 * it, dir/chat_template.jinja is read if present) and returns the normalized tokenizer object
 * (new reference) in *out, the chat template string (new reference, or json_null()) in
 * *chat_template. vocab_size, bos_token_id and eos_token_id come from the model config: every
 * token id must be below vocab_size (the embedding rows), and both ids must name tokens. */
int tokenizer_import(const char *dir, int bos_token_id, int eos_token_id, int vocab_size,
                     json_t **out, json_t **chat_template, dsq_error *err);

#endif
