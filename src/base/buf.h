/*
 * buf: a growable byte buffer with a hard cap.
 *
 * Writes never fail at the call site: when growing would pass the cap (or
 * malloc fails) the buffer becomes "failed", ignores further writes, and
 * buf_failed() says so. Check once, after the last write. The buffer owns
 * its heap memory; buf_reset() keeps it for reuse, buf_deinit() frees it.
 */
#ifndef BASE_BUF_H
#define BASE_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include <string.h>

#include "base/str.h"

typedef struct {
    char *ptr;
    size_t len;
    size_t cap;
    size_t max; /* hard cap on len */
    bool failed;
} buf_t;

void buf_init(buf_t *b, size_t max);
void buf_deinit(buf_t *b);
/* Empties the buffer and clears the failed flag; keeps the memory. */
void buf_reset(buf_t *b);
void buf_append_slow(buf_t *b, const void *p, size_t n);

/* Inline when it fits: responses are built from many small appends. */
static inline void buf_append(buf_t *b, const void *p, size_t n)
{
    if (!b->failed && n <= b->cap - b->len) {
        if (n > 0) {
            memcpy(b->ptr + b->len, p, n);
            b->len += n;
        }
        return;
    }
    buf_append_slow(b, p, n);
}

static inline void buf_putc(buf_t *b, char c)
{
    if (!b->failed && b->len < b->cap) {
        b->ptr[b->len++] = c;
        return;
    }
    buf_append_slow(b, &c, 1);
}
void buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Makes room for n more bytes and returns where they go (NULL when failed). */
char *buf_reserve(buf_t *b, size_t n);

static inline bool buf_failed(const buf_t *b)
{
    return b->failed;
}

static inline str_t buf_str(const buf_t *b)
{
    return str_make(b->ptr, b->len);
}

#endif
