/* Opening and reading input files that may be hostile: never block (a FIFO in place of a file
 * would hang open() and read() for ever), refuse what is not a regular file, and read whole
 * text/JSON files and stdin lines only up to a stated cap. */
#ifndef DSQ_INPUT_FILE_H
#define DSQ_INPUT_FILE_H

#include <stddef.h>
#include <stdio.h>
#include <sys/stat.h>

#include "error.h"

/* Whole-file caps for the text inputs, far above what published checkpoints ship (config.json
 * ~2 KB, tokenizer.json ~5 MB, an index ~2 MB): a parsed JSON tree takes ~10-20x its text. */
#define INPUT_CAP_CONFIG (1u << 20)      /* config.json */
#define INPUT_CAP_TOKENIZER (64u << 20)  /* tokenizer.json */
#define INPUT_CAP_TOKENIZER_CONFIG (32u << 20) /* tokenizer_config.json (a template is <= 16 MB) */
#define INPUT_CAP_INDEX (64u << 20)      /* model.safetensors.index.json */
#define INPUT_CAP_TEXT (1u << 30)        /* dsq ppl --text */
#define INPUT_CAP_LINE (1u << 20)        /* one line of dsq chat's stdin */

/* "a FIFO", "a folder", "a character device"...: what a non-regular mode is, for messages. */
const char *input_file_kind(mode_t mode);

/* Opens path read-only without blocking, refuses anything but a regular file (naming what it
 * is), and clears O_NONBLOCK again. *fd receives the descriptor, st (if not NULL) its stat.
 * optional: a missing file is not an error; then *fd is -1 and DSQ_OK is returned. */
int input_open(const char *path, int optional, int *fd, struct stat *st, dsq_error *err);

/* The same as a stdio stream ("rb"); *f is NULL for a missing optional file. */
int input_fopen(const char *path, int optional, FILE **f, dsq_error *err);

/* Reads the whole of a regular file of at most cap bytes into *buf (NUL-terminated, *len bytes
 * without it). what names the file's role in messages ("config", "the text"). A larger file is
 * refused stating the cap (DSQ_EINPUT); no memory: DSQ_ERESOURCE. optional as input_open (then
 * *buf is NULL). */
int input_read_all(const char *path, size_t cap, const char *what, int optional, char **buf,
                   size_t *len, dsq_error *err);

/* Reads one line (without its '\n') of at most cap bytes from f into *line (NUL-terminated,
 * grown as needed; *alloc holds its size). Returns DSQ_OK with *len set, or -1 at the end of the
 * stream (nothing read), or an error: a longer line (DSQ_EINPUT, naming where and the cap), no
 * memory (DSQ_ERESOURCE) or a read error. where names the stream ("stdin"); line_no counts. */
int input_read_line(FILE *f, const char *where, size_t line_no, size_t cap, char **line,
                    size_t *alloc, size_t *len, dsq_error *err);

#endif
