/* Saved log-probabilities of a base model (layout and precision in logits_file.h). */
#include "logits_file.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "byteorder.h"
#include "input_file.h"

static void put_f32(uint8_t *p, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    le_put32(p, u);
}

static float get_f32(const uint8_t *p)
{
    uint32_t u = le_get32(p);
    float v;
    memcpy(&v, &u, 4);
    return v;
}

uint64_t logits_file_size(const logits_header *h)
{
    return LOGITS_HEADER_BYTES +
           (uint64_t)h->n_chunk * h->scored * (uint64_t)logits_stored_row_bytes(h->vocab);
}

uint64_t logits_hash_tokens(const int *ids, size_t n)
{
    XXH3_state_t *s = XXH3_createState();
    if (!s) { /* hash in one go from a converted copy instead */
        uint8_t *b = malloc(n * 4 + 1);
        if (!b)
            return 0;
        for (size_t i = 0; i < n; i++)
            le_put32(b + 4 * i, (uint32_t)ids[i]);
        uint64_t hv = XXH3_64bits(b, n * 4);
        free(b);
        return hv;
    }
    XXH3_64bits_reset(s);
    uint8_t buf[4096];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        le_put32(buf + k, (uint32_t)ids[i]);
        k += 4;
        if (k == sizeof buf) {
            XXH3_64bits_update(s, buf, k);
            k = 0;
        }
    }
    XXH3_64bits_update(s, buf, k);
    uint64_t hv = XXH3_64bits_digest(s);
    XXH3_freeState(s);
    return hv;
}

void logits_row_encode(const float *logits, uint32_t vocab, double lse, uint32_t top, double nll,
                       uint8_t *out)
{
    float lo = logits[0];
    for (uint32_t i = 1; i < vocab; i++)
        lo = logits[i] < lo ? logits[i] : lo;
    /* Codes count steps up from the f32 offset; the top (largest) log-prob is code 65535. */
    const float offset = (float)((double)lo - lse);
    const double top_lp = (double)logits[top] - lse;
    const float scale = (float)((top_lp - (double)offset) / 65535.0);
    put_f32(out, offset);
    put_f32(out + 4, scale);
    le_put32(out + 8, top);
    put_f32(out + 12, (float)nll);
    uint8_t *codes = out + LOGITS_ROW_HEADER_BYTES;
    const double inv = scale > 0 ? 1.0 / (double)scale : 0.0;
    for (uint32_t i = 0; i < vocab; i++) {
        double c = ((double)logits[i] - lse - (double)offset) * inv;
        long q = lrint(c);
        q = q < 0 ? 0 : q > 65535 ? 65535 : q;
        codes[2 * i] = (uint8_t)q;
        codes[2 * i + 1] = (uint8_t)(q >> 8);
    }
}

void logits_row_read_info(const uint8_t *row, logits_row_info *info)
{
    info->offset = get_f32(row);
    info->scale = get_f32(row + 4);
    info->top = le_get32(row + 8);
    info->nll = get_f32(row + 12);
}

void logits_row_decode(const uint8_t *row, uint32_t vocab, double *logp)
{
    logits_row_info in;
    logits_row_read_info(row, &in);
    const uint8_t *codes = row + LOGITS_ROW_HEADER_BYTES;
    /* Relative to the largest code, then renormalized: the f32 offset cancels exactly. */
    unsigned cmax = 0;
    for (uint32_t i = 0; i < vocab; i++) {
        unsigned c = (unsigned)codes[2 * i] | (unsigned)codes[2 * i + 1] << 8;
        cmax = c > cmax ? c : cmax;
    }
    double sum = 0;
    for (uint32_t i = 0; i < vocab; i++) {
        unsigned c = (unsigned)codes[2 * i] | (unsigned)codes[2 * i + 1] << 8;
        logp[i] = ((double)c - (double)cmax) * (double)in.scale;
        sum += exp(logp[i]);
    }
    const double log_z = log(sum);
    for (uint32_t i = 0; i < vocab; i++)
        logp[i] -= log_z;
}

/* ---- writing ------------------------------------------------------------------------------ */

static void encode_header(const logits_header *h, uint8_t out[LOGITS_HEADER_BYTES])
{
    memset(out, 0, LOGITS_HEADER_BYTES);
    memcpy(out, LOGITS_FILE_MAGIC, 8); /* 7 characters and the NUL */
    le_put32(out + 8, LOGITS_FILE_VERSION);
    le_put32(out + 12, LOGITS_HEADER_BYTES);
    le_put32(out + 16, h->vocab);
    le_put32(out + 20, h->ctx);
    le_put32(out + 24, h->n_chunk);
    le_put32(out + 28, h->scored);
    le_put64(out + 32, h->n_tokens);
    le_put64(out + 40, h->text_hash);
    le_put64(out + 48, h->tokenizer_hash);
    le_put64(out + 56, XXH3_64bits(out, 56));
}

static int write_all(logits_writer *w, const uint8_t *p, size_t n, dsq_error *err)
{
    while (n > 0) {
        ssize_t k = write(w->af.fd, p, n > (1u << 30) ? (1u << 30) : n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            int e = k < 0 ? errno : ENOSPC;
            return dsq_fail(err, dsq_status_from_errno(e), "%s: write failed: %s", w->af.final_path,
                            strerror(e));
        }
        p += k;
        n -= (size_t)k;
    }
    return DSQ_OK;
}

int logits_writer_open(logits_writer *w, const char *path, const logits_header *h, dsq_error *err)
{
    memset(w, 0, sizeof *w);
    w->af.fd = -1;
    w->h = *h;
    int rc = atomic_file_create(&w->af, path, err);
    if (rc)
        return rc;
    w->open = 1;
    uint8_t hdr[LOGITS_HEADER_BYTES];
    encode_header(h, hdr);
    if ((rc = write_all(w, hdr, sizeof hdr, err)))
        logits_writer_abort(w);
    return rc;
}

int logits_writer_write(logits_writer *w, const uint8_t *rows, size_t n, dsq_error *err)
{
    const uint64_t promised = (uint64_t)w->h.n_chunk * w->h.scored;
    if (w->rows_written + n > promised)
        return dsq_fail(err, DSQ_EUSAGE, "%s: more rows than the header promises (%" PRIu64 ")",
                        w->af.final_path, promised);
    const size_t rb = logits_row_bytes(w->h.vocab);
    for (size_t i = 0; i < n; i++) {
        const uint8_t *row = rows + i * rb;
        uint8_t sum[8];
        le_put64(sum, XXH3_64bits(row, rb));
        int rc = write_all(w, row, rb, err);
        if (!rc)
            rc = write_all(w, sum, sizeof sum, err);
        if (rc)
            return rc;
        w->rows_written++;
    }
    return DSQ_OK;
}

int logits_writer_finish(logits_writer *w, dsq_error *err)
{
    const uint64_t promised = (uint64_t)w->h.n_chunk * w->h.scored;
    if (w->rows_written != promised) {
        int rc = dsq_fail(err, DSQ_EUSAGE, "%s: %" PRIu64 " of %" PRIu64 " rows written",
                          w->af.final_path, w->rows_written, promised);
        logits_writer_abort(w);
        return rc;
    }
    int rc = atomic_file_commit(&w->af, err);
    w->open = 0;
    return rc;
}

void logits_writer_abort(logits_writer *w)
{
    if (w->open)
        atomic_file_abort(&w->af);
    w->open = 0;
}

/* ---- reading ------------------------------------------------------------------------------ */

static int read_at(logits_reader *r, void *buf, size_t n, uint64_t off, const char *what,
                   dsq_error *err)
{
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t k = pread(r->fd, p, n > (1u << 30) ? (1u << 30) : n, (off_t)off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return dsq_fail(err, dsq_status_from_errno(errno), "%s: cannot read %s: %s", r->path,
                            what, strerror(errno));
        if (k == 0)
            return dsq_fail(err, DSQ_EINPUT,
                            "%s: truncated: the file ends inside %s (offset %" PRIu64 ")", r->path,
                            what, off);
        p += k;
        n -= (size_t)k;
        off += (uint64_t)k;
    }
    return DSQ_OK;
}

int logits_reader_open(logits_reader *r, const char *path, dsq_error *err)
{
    memset(r, 0, sizeof *r);
    r->fd = -1;
    r->path = strdup(path);
    if (!r->path)
        return dsq_fail(err, DSQ_ERESOURCE, "%s: out of memory", path);
    struct stat st;
    int rc = input_open(path, 0, &r->fd, &st, err);
    if (rc) {
        logits_reader_close(r);
        return rc;
    }
    r->size = (uint64_t)st.st_size;
    uint8_t b[LOGITS_HEADER_BYTES];
    if (r->size >= 8 && (rc = read_at(r, b, 8, 0, "the magic", err))) {
        logits_reader_close(r);
        return rc;
    }
    if (r->size < 8 || memcmp(b, LOGITS_FILE_MAGIC, 8) != 0) {
        logits_reader_close(r);
        return dsq_fail(err, DSQ_EINPUT,
                        "%s: not a dsq logits file (made by 'dsq ppl --save-logits')", path);
    }
    if (r->size < LOGITS_HEADER_BYTES) {
        logits_reader_close(r);
        return dsq_fail(err, DSQ_EINPUT,
                        "%s: truncated: %" PRIu64 " bytes, shorter than the "
                        "%d-byte header",
                        path, r->size, LOGITS_HEADER_BYTES);
    }
    if ((rc = read_at(r, b, sizeof b, 0, "the header", err))) {
        logits_reader_close(r);
        return rc;
    }
    uint32_t version = le_get32(b + 8), hbytes = le_get32(b + 12);
    if (version != LOGITS_FILE_VERSION || hbytes != LOGITS_HEADER_BYTES) {
        logits_reader_close(r);
        return dsq_fail(err, DSQ_EINPUT,
                        "%s: logits file version %u (header %u bytes); this dsq "
                        "reads version %d (save the base again with --save-logits)",
                        path, version, hbytes, LOGITS_FILE_VERSION);
    }
    if (le_get64(b + 56) != XXH3_64bits(b, 56)) {
        logits_reader_close(r);
        return dsq_fail(err, DSQ_EINPUT, "%s: the header is damaged (checksum mismatch)", path);
    }
    logits_header *h = &r->h;
    h->vocab = le_get32(b + 16);
    h->ctx = le_get32(b + 20);
    h->n_chunk = le_get32(b + 24);
    h->scored = le_get32(b + 28);
    h->n_tokens = le_get64(b + 32);
    h->text_hash = le_get64(b + 40);
    h->tokenizer_hash = le_get64(b + 48);
    rc = DSQ_OK;
    /* vocab < 2^26 and n_chunk * ctx <= n_tokens < 2^40 keep the size below 2^64 */
    const bool sane = h->vocab > 0 && h->vocab < (1u << 26) && h->ctx >= 4 && h->ctx % 2 == 0 &&
                      h->scored == h->ctx - 1 - h->ctx / 2 && h->n_chunk > 0 &&
                      h->n_tokens < ((uint64_t)1 << 40) &&
                      (uint64_t)h->n_chunk * h->ctx <= h->n_tokens;
    const uint64_t want = sane ? logits_file_size(h) : 0;
    if (!sane)
        rc = dsq_fail(err, DSQ_EINPUT,
                      "%s: inconsistent header (vocab %u, ctx %u, %u chunks of "
                      "%u scored tokens, %" PRIu64 " tokens)",
                      path, h->vocab, h->ctx, h->n_chunk, h->scored, h->n_tokens);
    else if (r->size < want)
        rc = dsq_fail(err, DSQ_EINPUT,
                      "%s: truncated: %" PRIu64 " bytes, the header promises "
                      "%" PRIu64 " (%u chunks of %u rows of %zu bytes)",
                      path, r->size, want, h->n_chunk, h->scored,
                      logits_stored_row_bytes(h->vocab));
    else if (r->size > want)
        rc = dsq_fail(err, DSQ_EINPUT,
                      "%s: %" PRIu64 " bytes, %" PRIu64 " more than the header "
                      "promises",
                      path, r->size, r->size - want);
    if (rc)
        logits_reader_close(r);
    return rc;
}

int logits_reader_check(const logits_reader *r, const logits_header *e, dsq_error *err)
{
    const logits_header *h = &r->h;
    if (h->tokenizer_hash != e->tokenizer_hash || h->vocab != e->vocab)
        return dsq_fail(err, DSQ_EINPUT,
                        "%s: made by a model with another tokenizer (vocab %u, "
                        "tokenizer hash %016" PRIx64 "; this model: vocab %u, %016" PRIx64 "): "
                        "the base must be the same model, unquantized",
                        r->path, h->vocab, h->tokenizer_hash, e->vocab, e->tokenizer_hash);
    if (h->ctx != e->ctx)
        return dsq_fail(err, DSQ_EINPUT, "%s: made with --ctx %u, this run uses --ctx %u", r->path,
                        h->ctx, e->ctx);
    if (h->text_hash != e->text_hash || h->n_tokens != e->n_tokens)
        return dsq_fail(err, DSQ_EINPUT,
                        "%s: made from another text (%" PRIu64 " tokens, hash "
                        "%016" PRIx64 "; --text has %" PRIu64 " tokens, hash %016" PRIx64 ")",
                        r->path, h->n_tokens, h->text_hash, e->n_tokens, e->text_hash);
    if (h->n_chunk != e->n_chunk || h->scored != e->scored)
        return dsq_fail(err, DSQ_EINPUT,
                        "%s: holds %u chunks of %u scored tokens, this run has "
                        "%u of %u",
                        r->path, h->n_chunk, h->scored, e->n_chunk, e->scored);
    return DSQ_OK;
}

int logits_reader_read_chunk(logits_reader *r, uint32_t chunk, uint8_t *rows, dsq_error *err)
{
    const logits_header *h = &r->h;
    if (chunk >= h->n_chunk)
        return dsq_fail(err, DSQ_EUSAGE, "%s: chunk %u of %u", r->path, chunk + 1, h->n_chunk);
    const size_t rb = logits_row_bytes(h->vocab), stored = logits_stored_row_bytes(h->vocab);
    for (uint32_t i = 0; i < h->scored; i++) {
        const uint64_t off = LOGITS_HEADER_BYTES + ((uint64_t)chunk * h->scored + i) * stored;
        uint8_t *row = rows + (size_t)i * rb, sum[8];
        char what[64];
        snprintf(what, sizeof what, "row %u of chunk %u", i + 1, chunk + 1);
        int rc = read_at(r, row, rb, off, what, err);
        if (!rc)
            rc = read_at(r, sum, sizeof sum, off + rb, what, err);
        if (rc)
            return rc;
        const uint64_t want = le_get64(sum), got = XXH3_64bits(row, rb);
        if (got != want)
            return dsq_fail(err, DSQ_EINPUT,
                            "%s: row %u of chunk %u is damaged (row %" PRIu64 " of the file: "
                            "checksum %016" PRIx64 ", expected %016" PRIx64 ")",
                            r->path, i + 1, chunk + 1, (uint64_t)chunk * h->scored + i + 1, got,
                            want);
        logits_row_info in;
        logits_row_read_info(row, &in);
        if (!isfinite(in.offset) || !isfinite(in.scale) || in.scale < 0 || in.top >= h->vocab ||
            !isfinite(in.nll))
            return dsq_fail(err, DSQ_EINPUT,
                            "%s: row %u of chunk %u is damaged (offset %g, "
                            "scale %g, top %u, nll %g)",
                            r->path, i + 1, chunk + 1, (double)in.offset, (double)in.scale, in.top,
                            (double)in.nll);
    }
    return DSQ_OK;
}

void logits_reader_close(logits_reader *r)
{
    if (r->fd >= 0)
        close(r->fd);
    free(r->path);
    memset(r, 0, sizeof *r);
    r->fd = -1;
}
