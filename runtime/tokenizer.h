/* Byte-level BPE tokenizer built from the normalized tokenizer object of a .dsq file
 * (convert/tokenizer_import.h documents it). Encoding matches Hugging Face `tokenizers` token for
 * token: added tokens are split out of the raw text first, then the split steps, the byte-level
 * step and BPE by merge rank run on every remaining piece.
 *
 * Input that is not valid UTF-8 (HF only takes Python str): every invalid byte sequence is
 * replaced by U+FFFD the way Python's bytes.decode('utf-8', errors='replace') does (one U+FFFD
 * per maximal subpart of an ill-formed sequence), so the ids equal HF's for the replaced text.
 *
 * Split regexes are written for Oniguruma's Ruby syntax, which HF compiles them with; they are
 * rewritten for PCRE2 at load (\s \w \h \b, ^ $ as line anchors, \uHHHH, (?m), ...) and a
 * construct with no faithful PCRE2 spelling (nested classes, &&) is refused at load. */
#ifndef DSQ_TOKENIZER_H
#define DSQ_TOKENIZER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "error.h"

typedef struct tokenizer tokenizer;

/* Builds the tokenizer from the normalized object (borrowed; nothing of it is kept). `where`
 * names the file in errors. */
int tokenizer_load(tokenizer **out, const json_t *tok, const char *where, dsq_error *err);
void tokenizer_free(tokenizer *t);

/* What tokenizer_encode adds around the text; `true` means BOS alone. */
#define TOKENIZER_ADD_BOS 1
#define TOKENIZER_ADD_EOS 2
/* The flags for plain text: add_bos_token and add_eos_token of the stored object. */
int tokenizer_default_add(const tokenizer *t);

/* Encodes len bytes of text (any bytes; see the note above on invalid UTF-8). add: a set of
 * TOKENIZER_ADD_* flags. Added and special tokens written in the text become their ids, as in
 * HF. *ids is malloc'd (also when *n is 0); the caller frees it. */
int tokenizer_encode(const tokenizer *t, const char *text, size_t len, int add, int **ids,
                     size_t *n, dsq_error *err);

/* The bytes token id stands for: the byte-level alphabet decoded (a token with a character
 * outside that alphabet stands for its own UTF-8, as HF's ByteLevel decoder has it); an added
 * token stands for its content. NULL (and *len 0) for an id that names no token. The bytes
 * need not be valid UTF-8 on their own: feed them through a utf8_stream. */
const char *tokenizer_token_bytes(const tokenizer *t, int id, size_t *len);
/* True for added tokens marked special (BOS, EOS, ...), which a chat front end may hide. */
bool tokenizer_is_special(const tokenizer *t, int id);
int tokenizer_bos(const tokenizer *t);
int tokenizer_eos(const tokenizer *t);
int tokenizer_n_tokens(const tokenizer *t); /* largest id + 1 */

/* Streaming-safe decoding: push each token's bytes, get back only complete UTF-8 characters. A
 * character split across tokens is held until it is complete; each ill-formed sequence becomes
 * U+FFFD as HF's decode (errors='replace') makes it. Start from a zeroed struct. */
typedef struct {
    unsigned char pending[4];
    int n;
} utf8_stream;
/* Bytes out must hold for a push of len bytes (an invalid byte becomes 3 bytes of U+FFFD). */
#define UTF8_STREAM_OUT_MAX(len) (3 * (size_t)(len) + 4)
/* Appends to out the complete characters now known; returns the bytes written. */
size_t utf8_stream_push(utf8_stream *s, const char *bytes, size_t len, char *out);
/* Ends the stream: a held incomplete character becomes U+FFFD. out holds >= 4 bytes. */
size_t utf8_stream_flush(utf8_stream *s, char *out);

/* If text[0..len) is valid UTF-8, returns NULL; otherwise a malloc'd copy with every invalid
 * sequence replaced by U+FFFD (as above) and its length in *out_len. *oom is set on failure. */
char *utf8_sanitize(const char *text, size_t len, size_t *out_len, bool *oom);

#endif
