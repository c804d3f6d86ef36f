/*
 * jw: a small JSON writer on top of buf_t (jansson, which parses, owns the
 * json_ prefix).
 *
 * Output is always valid JSON text as long as calls are balanced: strings are
 * escaped per RFC 8259 section 7 and bytes that are not valid UTF-8 become
 * U+FFFD, so untrusted input (paths, header values) can be echoed safely.
 * Commas are placed automatically. Nesting is limited to JW_MAX_DEPTH;
 * deeper opens mark the buffer failed. It does not parse: input is jansson's job.
 */
#ifndef BASE_JW_H
#define BASE_JW_H

#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/str.h"

#define JW_MAX_DEPTH 32

typedef struct {
    buf_t *b;
    uint32_t need_comma; /* bit i: the container at depth i already has a member */
    uint8_t depth;
    bool after_key;
} jw_t;

void jw_init(jw_t *j, buf_t *b);
void jw_obj_open(jw_t *j);
void jw_obj_close(jw_t *j);
void jw_arr_open(jw_t *j);
void jw_arr_close(jw_t *j);
void jw_key(jw_t *j, str_t key);
void jw_str(jw_t *j, str_t s);
void jw_int(jw_t *j, int64_t v);
void jw_double(jw_t *j, double v, int decimals);
void jw_bool(jw_t *j, bool v);
void jw_null(jw_t *j);
/* Appends already-encoded JSON (a value) as the next member. */
void jw_raw(jw_t *j, str_t encoded);

/* Writes s escaped, without quotes, straight into b. */
void jw_escape(buf_t *b, str_t s);

static inline void jw_kv_str(jw_t *j, const char *key, str_t v)
{
    jw_key(j, str_from_cstr(key));
    jw_str(j, v);
}

static inline void jw_kv_int(jw_t *j, const char *key, int64_t v)
{
    jw_key(j, str_from_cstr(key));
    jw_int(j, v);
}

#endif
