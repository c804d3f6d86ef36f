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
/* A key given already quoted with its colon; see JW_KEY. */
void jw_key_raw(jw_t *j, const char *quoted, size_t n);
/* A literal key, without escaping it at run time: JW_KEY(j, "id"). */
#define JW_KEY(j, lit) jw_key_raw((j), "\"" lit "\":", sizeof("\"" lit "\":") - 1)
/* A string value known to need no escaping (UUIDs, timestamps, digits). */
void jw_str_plain(jw_t *j, str_t s);

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
