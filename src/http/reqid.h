/*
 * reqid: request ids (X-Request-Id).
 *
 * A client's id is kept when it is 1..HTTP_REQID_MAX characters of
 * [A-Za-z0-9._~:/+=-] (enough for UUIDs, ULIDs, base64 and W3C trace ids,
 * nothing that could break a log line or a header); otherwise we make one:
 * 32 lower-case hex digits, the same shape as a W3C trace id.
 */
#ifndef HTTP_REQID_H
#define HTTP_REQID_H

#include <stdbool.h>
#include <stddef.h>

#include "base/str.h"

#define HTTP_REQID_MAX     128
#define HTTP_REQID_GEN_LEN 32

bool http_reqid_valid(str_t id);
/* Writes HTTP_REQID_GEN_LEN hex digits to out (not NUL-terminated). */
void http_reqid_generate(char *out);

#endif
