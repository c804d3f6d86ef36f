/*
 * query: reading parameters from a raw query string ("limit=20&cursor=x").
 *
 * Values are returned raw (not percent-decoded): the parameters this API
 * defines are numbers and base64url, whose valid forms need no decoding, so
 * an encoded byte simply fails validation. A parameter given twice is an
 * error rather than a guess at which one the client meant.
 */
#ifndef HTTP_QUERY_H
#define HTTP_QUERY_H

#include "base/str.h"

/* Finds name in query. Returns 0 (value in *out), ERR_NOTFOUND, or
   ERR_INVAL when the parameter appears more than once. */
int http_query_get(str_t query, str_t name, str_t *out) __attribute__((warn_unused_result));

/* Whether every parameter name in query is one of names[0..n). */
bool http_query_only(str_t query, const str_t *names, size_t n, str_t *unknown);

#endif
