/* UTF-8 for the tokenizer: repair of invalid input (as Python's errors='replace'), the
 * streaming decoder for generated tokens, and the character helpers the encoder uses. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"
#include "tokenizer_bpe.h"

int utf8_check(const unsigned char *p, size_t n)
{
    unsigned c = p[0], lo = 0x80, hi = 0xBF;
    int need;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        lo = c == 0xE0 ? 0xA0 : 0x80;
        hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF;
    } else {
        return -1;
    }
    for (int k = 1; k < need; k++, lo = 0x80, hi = 0xBF) {
        if ((size_t)k >= n)
            return 0;
        if (p[k] < lo || p[k] > hi)
            return -k;
    }
    return need;
}

static const char REPLACEMENT[3] = {(char)0xEF, (char)0xBF, (char)0xBD}; /* U+FFFD */

char *utf8_sanitize(const char *text, size_t len, size_t *out_len, bool *oom_flag)
{
    const unsigned char *p = (const unsigned char *)text;
    size_t i = 0;
    *oom_flag = false;
    while (i < len) {
        int r = utf8_check(p + i, len - i);
        if (r <= 0)
            break;
        i += (size_t)r;
    }
    if (i == len)
        return NULL;
    char *out = malloc(3 * len + 1);
    if (!out) {
        *oom_flag = true;
        return NULL;
    }
    memcpy(out, text, i);
    size_t o = i;
    while (i < len) {
        int r = utf8_check(p + i, len - i);
        if (r > 0) {
            memcpy(out + o, p + i, (size_t)r);
            o += (size_t)r;
            i += (size_t)r;
        } else {
            memcpy(out + o, REPLACEMENT, 3);
            o += 3;
            i += r < 0 ? (size_t)-r : len - i; /* a truncated sequence at the end is one subpart */
        }
    }
    *out_len = o;
    return out;
}

size_t utf8_stream_push(utf8_stream *s, const char *bytes, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char b = (unsigned char)bytes[i];
        if (s->n == 0 && b < 0x80) {
            out[o++] = (char)b;
            continue;
        }
        s->pending[s->n++] = b;
        while (s->n > 0) {
            int r = utf8_check(s->pending, (size_t)s->n);
            if (r == 0)
                break;
            if (r > 0) {
                memcpy(out + o, s->pending, (size_t)r);
                o += (size_t)r;
            } else {
                memcpy(out + o, REPLACEMENT, 3);
                o += 3;
                r = -r;
            }
            memmove(s->pending, s->pending + r, (size_t)(s->n - r));
            s->n -= r;
        }
    }
    return o;
}

size_t utf8_stream_flush(utf8_stream *s, char *out)
{
    if (s->n == 0)
        return 0;
    s->n = 0; /* what is held is a valid start: one maximal subpart */
    memcpy(out, REPLACEMENT, 3);
    return 3;
}

uint32_t utf8_decode(const unsigned char *p, int *len)
{
    uint32_t c = p[0];
    if (c < 0x80) {
        *len = 1;
        return c;
    }
    int n = c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    c &= 0x3Fu >> (n - 1);
    for (int k = 1; k < n; k++)
        c = c << 6 | (p[k] & 0x3Fu);
    *len = n;
    return c;
}

/* the White_Space property, stable since Unicode 6.3 */
bool is_white_space(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}
