/*
 * conditional: entity-tag lists of conditional requests (RFC 9110 section
 * 13): If-None-Match (weak comparison) and If-Match (strong comparison).
 *
 * Pure functions over header values, no allocation: they are fed untrusted
 * input directly (fuzzed in tests/fuzz/). A malformed member of a list is
 * skipped, never an error: a precondition that names nothing valid simply
 * matches nothing (RFC 9110 13.1.1: the server "MUST NOT perform the
 * requested method" unless a listed tag matches).
 */
#ifndef HTTP_CONDITIONAL_H
#define HTTP_CONDITIONAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/str.h"

#define HTTP_IF_MATCH_MAX 8 /* entity tags of an If-Match list kept; more are ignored */

/*
 * The next entity-tag of a comma-separated list: *tag is the tag with its
 * quotes (or "*", or the raw member when it is not quoted), *weak tells a
 * W/ prefix. Advances *list past it. Returns false at the end of the list.
 */
bool http_etag_next(str_t *list, str_t *tag, bool *weak);

/* If-None-Match: whether header (a list, or "*") names etag, comparing
   weakly (13.1.2: W/"1" matches "1"). */
bool http_if_none_match_hits(str_t header, str_t etag);

/* If-Match, for this API's strong numeric tags ("<version>"). */
typedef struct {
    bool present; /* the header was sent */
    bool any;     /* "*": the resource must merely exist */
    size_t n;
    int64_t versions[HTTP_IF_MATCH_MAX];
} http_if_match_t;

/* Parses header (STR_NULL: absent). Weak tags never match (13.1.1) and are
   left out, as are tags that are not a positive decimal number as the
   server writes it ("7", never "007": strong comparison, 8.8.3.2). */
void http_if_match_parse(str_t header, http_if_match_t *out);

#endif
