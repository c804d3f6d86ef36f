/*
 * cursor: opaque, versioned, signed keyset-pagination cursors.
 *
 *   cursor = base64url( 0x01 || last_id[16] || HMAC-SHA256(key, 0x01 || last_id)[0..16) )
 *
 * The version byte lets the format change without breaking cursors in
 * flight; the MAC (truncated to 128 bits, as NIST SP 800-107 allows) makes
 * a forged or altered cursor a clean 400 rather than a query on attacker-
 * chosen input. Cursors carry no expiry: a keyset position stays valid.
 */
#ifndef ROUTES_CURSOR_H
#define ROUTES_CURSOR_H

#include <stddef.h>

#include "base/str.h"
#include "base/uuid.h"

#define CURSOR_LEN 44 /* base64url of 33 bytes */

/* Sets the HMAC key (copied). Call once before workers start. */
int cursor_set_key(const char *key, size_t len) __attribute__((warn_unused_result));
/* Forgets the key (at shutdown). */
void cursor_clear_key(void);
/* Writes CURSOR_LEN characters to out: 0, or ERR_NOMEM (OpenSSL could
   not allocate its per-thread context). */
int cursor_encode(const uuid_bytes_t *last_id, char *out) __attribute__((warn_unused_result));
/* 0, or ERR_INVAL for anything not made by cursor_encode with this key. */
int cursor_decode(str_t s, uuid_bytes_t *last_id) __attribute__((warn_unused_result));

#endif
