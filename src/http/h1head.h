/*
 * h1head: HTTP/1 framing checks that h2o 2.2.5 does not make, on the raw
 * request head (request line and header fields, as received).
 *
 * RFC 9112 section 6.3: a request with both Content-Length and
 * Transfer-Encoding, or with Content-Length values that differ, is a
 * request-smuggling attempt (a proxy in front may frame it differently).
 * Lines may end in CRLF or in a bare LF: h2o's parser (picohttpparser)
 * accepts both, so the check must read both or a bare-LF head slips past.
 * Pure: no allocation, no h2o types, so it can be fuzzed on its own.
 */
#ifndef HTTP_H1HEAD_H
#define HTTP_H1HEAD_H

#include <stddef.h>

/*
 * Checks the head at the start of p[0..n). Returns 0 (fine, or no complete
 * head in p yet), 400 (conflicting framing), 414 (request line longer than
 * max_head) or 431 (head longer than max_head).
 */
int http_h1_head_check(const char *p, size_t n, size_t max_head);

#endif
