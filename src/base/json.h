/*
 * json: a small JSON writer on top of buf_t.
 *
 * Output is always valid JSON text as long as calls are balanced: strings are
 * escaped per RFC 8259 section 7 and bytes that are not valid UTF-8 become
 * U+FFFD, so untrusted input (paths, header values) can be echoed safely.
 * Commas are placed automatically. Nesting is limited to JSON_MAX_DEPTH;
 * deeper opens mark the buffer failed. It does not parse: input is jansson's job.
 */
#ifndef BASE_JSON_H
#define BASE_JSON_H

#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/str.h"

#define JSON_MAX_DEPTH 32

typedef struct {
    buf_t *b;
    uint32_t need_comma; /* bit i: the container at depth i already has a member */
    uint8_t depth;
    bool after_key;
} json_t;

void json_init(json_t *j, buf_t *b);
void json_obj_open(json_t *j);
void json_obj_close(json_t *j);
void json_arr_open(json_t *j);
void json_arr_close(json_t *j);
void json_key(json_t *j, str_t key);
void json_str(json_t *j, str_t s);
void json_int(json_t *j, int64_t v);
void json_double(json_t *j, double v, int decimals);
void json_bool(json_t *j, bool v);
void json_null(json_t *j);
/* Appends already-encoded JSON (a value) as the next member. */
void json_raw(json_t *j, str_t encoded);

/* Writes s escaped, without quotes, straight into b. */
void json_escape(buf_t *b, str_t s);

static inline void json_kv_str(json_t *j, const char *key, str_t v)
{
    json_key(j, str_from_cstr(key));
    json_str(j, v);
}

static inline void json_kv_int(json_t *j, const char *key, int64_t v)
{
    json_key(j, str_from_cstr(key));
    json_int(j, v);
}

#endif
