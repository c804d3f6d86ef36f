/*
 * jw: the writer. The escaper validates UTF-8 (RFC 3629: no overlongs, no
 * surrogates, nothing past U+10FFFF) because echoed request data may be any
 * bytes; text from PostgreSQL and jansson is already valid and passes through.
 */
#include "base/jw.h"

#include <inttypes.h>
#include <stdio.h>
#include "base/banned.h"

void jw_init(jw_t *j, buf_t *b)
{
    *j = (jw_t){.b = b};
}

static void begin_value(jw_t *j)
{
    if (j->after_key) {
        j->after_key = false;
        return;
    }
    if (j->depth > 0) {
        uint32_t bit = 1u << (j->depth - 1);
        if (j->need_comma & bit) {
            buf_putc(j->b, ',');
        }
        j->need_comma |= bit;
    }
}

static void open_container(jw_t *j, char c)
{
    begin_value(j);
    if (j->depth >= JW_MAX_DEPTH) {
        j->b->failed = true;
        return;
    }
    buf_putc(j->b, c);
    j->depth++;
    j->need_comma &= ~(1u << (j->depth - 1));
}

static void close_container(jw_t *j, char c)
{
    if (j->depth == 0) {
        j->b->failed = true;
        return;
    }
    j->depth--;
    buf_putc(j->b, c);
}

void jw_obj_open(jw_t *j)
{
    open_container(j, '{');
}

void jw_obj_close(jw_t *j)
{
    close_container(j, '}');
}

void jw_arr_open(jw_t *j)
{
    open_container(j, '[');
}

void jw_arr_close(jw_t *j)
{
    close_container(j, ']');
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when invalid. */
static size_t utf8_seq_len(const unsigned char *p, size_t avail)
{
    unsigned char c = p[0];
    if (c < 0x80) {
        return 1;
    }
    size_t n;
    uint32_t min;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
        n = 2, min = 0x80, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        n = 3, min = 0x800, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
        n = 4, min = 0x10000, cp = c & 0x07;
    } else {
        return 0;
    }
    if (avail < n) {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        return 0;
    }
    return n;
}

/* 1 for bytes that leave the fast path: controls, '"', '\\', non-ASCII */
static const unsigned char special[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

void jw_escape(buf_t *b, str_t s)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s.ptr;
    size_t i = 0;
    size_t run = 0; /* start of bytes that need no escaping */
    while (i < s.len) {
        unsigned char c = p[i];
        if (!special[c]) {
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t n = utf8_seq_len(p + i, s.len - i);
            if (n > 0) {
                i += n;
                continue;
            }
        }
        buf_append(b, p + run, i - run);
        if (c >= 0x80) {
            buf_append(b, "\\ufffd", 6);
        } else if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            buf_append(b, e, 2);
        } else if (c == '\n') {
            buf_append(b, "\\n", 2);
        } else if (c == '\r') {
            buf_append(b, "\\r", 2);
        } else if (c == '\t') {
            buf_append(b, "\\t", 2);
        } else {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            buf_append(b, e, 6);
        }
        i++;
        run = i;
    }
    buf_append(b, p + run, s.len - run);
}

void jw_key(jw_t *j, str_t key)
{
    begin_value(j);
    buf_putc(j->b, '"');
    jw_escape(j->b, key);
    buf_append(j->b, "\":", 2);
    j->after_key = true;
}

void jw_key_raw(jw_t *j, const char *quoted, size_t n)
{
    begin_value(j);
    buf_append(j->b, quoted, n);
    j->after_key = true;
}

void jw_str_plain(jw_t *j, str_t s)
{
    begin_value(j);
    buf_putc(j->b, '"');
    buf_append(j->b, s.ptr, s.len);
    buf_putc(j->b, '"');
}

void jw_str(jw_t *j, str_t s)
{
    begin_value(j);
    buf_putc(j->b, '"');
    jw_escape(j->b, s);
    buf_putc(j->b, '"');
}

void jw_int(jw_t *j, int64_t v)
{
    begin_value(j);
    char tmp[24];
    size_t i = sizeof(tmp);
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0) {
        tmp[--i] = '-';
    }
    buf_append(j->b, tmp + i, sizeof(tmp) - i);
}

void jw_double(jw_t *j, double v, int decimals)
{
    begin_value(j);
    buf_printf(j->b, "%.*f", decimals, v);
}

void jw_bool(jw_t *j, bool v)
{
    begin_value(j);
    if (v) {
        buf_append(j->b, "true", 4);
    } else {
        buf_append(j->b, "false", 5);
    }
}

void jw_null(jw_t *j)
{
    begin_value(j);
    buf_append(j->b, "null", 4);
}

void jw_raw(jw_t *j, str_t encoded)
{
    begin_value(j);
    buf_append(j->b, encoded.ptr, encoded.len);
}
