/* The base model's log-probabilities, saved by `dsq ppl --save-logits` and read back by
 * `dsq ppl --kld-base` to measure how far a quantized model's token distribution is from it.
 *
 * File layout (all little-endian), version 2 (version 1 had no row checksums; it is refused):
 *
 *   header, 64 bytes
 *      0  magic "DSQLOGP\0"
 *      8  u32 version (2)
 *     12  u32 header bytes (64)
 *     16  u32 vocab          logits per position (the model's vocab_size)
 *     20  u32 ctx            window length in tokens (--ctx)
 *     24  u32 n_chunk        windows evaluated
 *     28  u32 scored         scored positions per window: ctx - 1 - ctx/2
 *     32  u64 n_tokens       tokens of the whole text (with BOS, as tokenized)
 *     40  u64 text hash      XXH3-64 of the text's token ids, each as a little-endian i32
 *     48  u64 tokenizer hash XXH3-64 of json_dumps(tokenizer "tokens" array, JSON_COMPACT)
 *     56  u64 header hash    XXH3-64 of bytes 0..55
 *   then n_chunk * scored rows in window order, each 16 + 2 * vocab + 8 bytes:
 *      0  f32 offset         log-prob of code 0 (the row's smallest log-prob)
 *      4  f32 scale          log-prob step per code
 *      8  u32 top            index of the largest logit (the first on ties)
 *     12  f32 nll            -log p(the token that follows), from the double computation
 *     16  u16 code[vocab]    log p_i ~ offset + scale * code_i
 *     16 + 2 * vocab         u64 XXH3-64 of the row's bytes before it (as .dsq tensors carry):
 *                            a damaged row is refused, naming the file and the row
 *
 * Encoding and its precision. Each row stores log p_i linearly on 65536 levels spanning the
 * row's whole range [min log p, max log p] (nothing is clamped, unlike llama.cpp, which clamps
 * to 16 nats below the maximum and then drops those entries from the KL sum). With
 * R = max - min, scale = R / 65535 and the rounding error of every entry is at most
 * h = scale / 2 (+ a 2^-24 relative error of the f32 scale, ~1e-3 of a step at the top code).
 * A real model spans R ~ 30-60 nats: h <= 5e-4 nats, i.e. every probability, however small, is
 * kept to a relative 5e-4. (An f16 of log p would give 2^-11 relative: 5e-3 nats at log p = -10,
 * 1e-2 at -20; a scaled u16 is ten times finer where most of the vocabulary lies.)
 * The reader renormalizes the decoded row in double (so the f32 offset cancels and the base
 * distribution sums to 1); then for errors d_i in [-h, h] the KL divergence between the decoded
 * and the true distribution is at most (2h)^2 / 8 = h^2 / 2 (the log-ratio spans at most 2h;
 * Hoeffding's lemma on t -> log E_p[exp(t r)]): ~1e-7 nats at R = 60. The correct token's NLL
 * (f32, 6e-8 relative) and the top-1 index are stored as computed, so PPL(base), delta-p and top-1
 * agreement carry only that f32 rounding. Cost: 2 bytes per vocab entry, as in llama.cpp. */
#ifndef DSQ_LOGITS_FILE_H
#define DSQ_LOGITS_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "atomic_file.h"
#include "error.h"

#define LOGITS_FILE_MAGIC "DSQLOGP"
#define LOGITS_FILE_VERSION 2
#define LOGITS_HEADER_BYTES 64
#define LOGITS_ROW_HEADER_BYTES 16

typedef struct {
    uint32_t vocab, ctx, n_chunk, scored;
    uint64_t n_tokens, text_hash, tokenizer_hash;
} logits_header;

/* One row's fixed fields. */
typedef struct {
    float offset, scale;
    uint32_t top;
    float nll;
} logits_row_info;

/* Bytes of one row as encoded, decoded and passed to the writer and from the reader. */
static inline size_t logits_row_bytes(uint32_t vocab)
{
    return LOGITS_ROW_HEADER_BYTES + 2 * (size_t)vocab;
}

/* Bytes of one row in the file: the row and its checksum. */
static inline size_t logits_stored_row_bytes(uint32_t vocab)
{
    return logits_row_bytes(vocab) + 8;
}

/* Size of the whole file the header describes. */
uint64_t logits_file_size(const logits_header *h);

/* XXH3-64 of n token ids, each as a little-endian i32. */
uint64_t logits_hash_tokens(const int *ids, size_t n);

/* Encodes one position: logits (vocab floats), lse = log(sum exp(logits)) in double, top = the
 * index of the largest logit, nll = -log p(next token). Writes logits_row_bytes(vocab) bytes. */
void logits_row_encode(const float *logits, uint32_t vocab, double lse, uint32_t top, double nll,
                       uint8_t *out);

/* The fixed fields of a stored row. */
void logits_row_read_info(const uint8_t *row, logits_row_info *info);

/* Decodes a stored row into normalized log-probabilities (renormalized in double so that
 * sum exp(logp) = 1; see the precision note above). */
void logits_row_decode(const uint8_t *row, uint32_t vocab, double *logp);

/* Writing: the header first, then every row in order; the file appears under its name only
 * when finish succeeds (atomic_file: temporary file, fsync, rename). */
typedef struct {
    atomic_file af;
    logits_header h;
    uint64_t rows_written;
    int open;
} logits_writer;

int logits_writer_open(logits_writer *w, const char *path, const logits_header *h, dsq_error *err);
/* Appends n rows (n * logits_row_bytes(vocab) bytes), each with its checksum. */
int logits_writer_write(logits_writer *w, const uint8_t *rows, size_t n, dsq_error *err);
/* Fails (and removes the temporary file) unless every row the header promises was written. */
int logits_writer_finish(logits_writer *w, dsq_error *err);
/* Removes the temporary file; safe on a zeroed or finished writer. */
void logits_writer_abort(logits_writer *w);

/* Reading: open checks the magic, version, header hash, that the fields agree with each other,
 * and that the file holds exactly the rows the header promises (a truncated file is refused
 * here, naming the file). Every error names the file. */
typedef struct {
    int fd;
    char *path;
    logits_header h;
    uint64_t size;
} logits_reader;

int logits_reader_open(logits_reader *r, const char *path, dsq_error *err);
/* Checks the file was made by the same tokenizer (hash and vocab), with the same --ctx and from
 * the same text (token hash and count) as `expect` describes; a mismatch names the file and
 * what differs (DSQ_EINPUT). */
int logits_reader_check(const logits_reader *r, const logits_header *expect, dsq_error *err);
/* Reads the scored rows of window `chunk` into rows (scored * logits_row_bytes(vocab) bytes),
 * checking every row's checksum and fixed fields. */
int logits_reader_read_chunk(logits_reader *r, uint32_t chunk, uint8_t *rows, dsq_error *err);
void logits_reader_close(logits_reader *r);

#endif
