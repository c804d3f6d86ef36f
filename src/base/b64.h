/*
 * b64: base64url without padding (RFC 4648 section 5), as JWTs and our
 * cursors use it. Decoding is strict: no padding, no whitespace, no
 * characters outside the URL-safe alphabet, and no non-zero trailing bits,
 * so each byte string has exactly one encoding (a cursor cannot be altered
 * into an "equivalent" one).
 */
#ifndef BASE_B64_H
#define BASE_B64_H

#include <stddef.h>
#include <stdint.h>

#include "base/str.h"

static inline size_t b64url_encoded_len(size_t n)
{
    return (n * 4 + 2) / 3;
}

static inline size_t b64url_decoded_max(size_t n)
{
    return n * 3 / 4;
}

/* Writes b64url_encoded_len(n) characters to out. */
size_t b64url_encode(const uint8_t *in, size_t n, char *out);
/* Decodes s into out (room for b64url_decoded_max(s.len)). 0 or ERR_INVAL. */
int b64url_decode(str_t s, uint8_t *out, size_t *outlen) __attribute__((warn_unused_result));

#endif
