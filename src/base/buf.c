/* buf: growable byte buffer with a hard cap and a sticky failure flag. */
#include "base/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include "base/banned.h"

void buf_init(buf_t *b, size_t max)
{
    *b = (buf_t){.max = max};
}

void buf_deinit(buf_t *b)
{
    free(b->ptr);
    *b = (buf_t){0};
}

void buf_reset(buf_t *b)
{
    b->len = 0;
    b->failed = false;
}

char *buf_reserve(buf_t *b, size_t n)
{
    if (b->failed) {
        return NULL;
    }
    if (n > b->max - b->len) {
        b->failed = true;
        return NULL;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) {
            cap *= 2;
        }
        if (cap > b->max) {
            cap = b->max;
        }
        char *p = realloc(b->ptr, cap);
        if (p == NULL) {
            b->failed = true;
            return NULL;
        }
        b->ptr = p;
        b->cap = cap;
    }
    return b->ptr + b->len;
}

void buf_append_slow(buf_t *b, const void *p, size_t n)
{
    char *dst = buf_reserve(b, n);
    if (dst != NULL && n > 0) {
        memcpy(dst, p, n);
        b->len += n;
    }
}

void buf_printf(buf_t *b, const char *fmt, ...)
{
    va_list ap;
    char small[128];
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = true;
        return;
    }
    if ((size_t)n < sizeof(small)) {
        buf_append(b, small, (size_t)n);
        return;
    }
    char *dst = buf_reserve(b, (size_t)n + 1);
    if (dst == NULL) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(dst, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}
