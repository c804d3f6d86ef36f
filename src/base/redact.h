/*
 * redact: keeps passwords out of logs and error messages.
 *
 * Three pure rewrites into a caller's buffer (always NUL-terminated,
 * truncated to fit): the userinfo of a URL ("redis://:pw@h" ->
 * "redis://:***@h"), every occurrence of a known secret in a message, and
 * every double-quoted fragment of a message (libpq quotes the part of a
 * connection string it could not parse, which may be the password itself).
 * They never allocate and never fail.
 */
#ifndef BASE_REDACT_H
#define BASE_REDACT_H

#include <stddef.h>

#include "base/str.h"

#define REDACTED "***"

/* scheme://user:password@host... -> scheme://user:***@host...; a userinfo
   without ':' is all password to Redis, so it becomes ***. Other text,
   and URLs without userinfo, are copied unchanged. Returns out. */
const char *redact_url(str_t url, char *out, size_t outlen);

/* msg with every occurrence of secret (when non-empty) replaced. */
const char *redact_secret(str_t msg, str_t secret, char *out, size_t outlen);

/* msg with the inside of every "..." replaced (an unclosed quote runs to
   the end of msg). */
const char *redact_quoted(str_t msg, char *out, size_t outlen);

#endif
