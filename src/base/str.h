/*
 * str: string views.
 *
 * A str_t is a pointer and a length into memory owned by someone else; it is
 * not NUL-terminated. Copy only when a view would outlive its buffer.
 */
#ifndef BASE_STR_H
#define BASE_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    const char *ptr;
    size_t len;
} str_t;

#define STR(lit) ((str_t){(lit), sizeof(lit) - 1})
#define STR_NULL ((str_t){NULL, 0})

static inline str_t str_make(const char *p, size_t n)
{
    return (str_t){p, n};
}

static inline str_t str_from_cstr(const char *s)
{
    return (str_t){s, s ? strlen(s) : 0};
}

static inline bool str_eq(str_t a, str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* ASCII case-insensitive equality (HTTP tokens, header values). */
bool str_eq_nocase(str_t a, str_t b);

static inline bool str_starts_with(str_t s, str_t prefix)
{
    return s.len >= prefix.len && memcmp(s.ptr, prefix.ptr, prefix.len) == 0;
}

/*
 * Parses a whole decimal integer in [min, max]. No sign unless min < 0, no
 * spaces, no trailing bytes. Returns 0, ERR_INVAL (not a number) or ERR_RANGE.
 */
int str_to_i64(str_t s, int64_t min, int64_t max, int64_t *out) __attribute__((warn_unused_result));

/* Writes v in decimal to out (at least STR_I64_MAX bytes, no NUL) and
   returns the length: the hot path's printf-free integer formatting. */
#define STR_I64_MAX 20
size_t str_fmt_i64(int64_t v, char *out);

/* Constant-time comparison for secrets (MACs): time depends on length only. */
bool str_eq_ct(const void *a, const void *b, size_t len);

#endif
