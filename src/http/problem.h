/*
 * problem: RFC 9457 problem details, and the one place where error codes
 * become HTTP statuses.
 *
 * A problem's "type" is a relative URI, HTTP_PROBLEM_BASE + slug (RFC 9457
 * section 3.1.1 allows relative references); docs/errors.md lists every slug.
 * Rendering is pure (no h2o), so it is unit-tested byte for byte.
 */
#ifndef HTTP_PROBLEM_H
#define HTTP_PROBLEM_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"
#include "base/str.h"

#define HTTP_PROBLEM_BASE         "/problems/"
#define HTTP_PROBLEM_MAX_ERRORS   32
#define HTTP_PROBLEM_CONTENT_TYPE "application/problem+json"

typedef struct {
    str_t field; /* JSON Pointer ("/email") or parameter name ("limit") */
    str_t message;
} http_field_error_t;

typedef struct {
    int status;
    const char *slug;  /* "not-found" */
    const char *title; /* NULL: the status's reason phrase */
    str_t detail;
    const http_field_error_t *errors; /* may be NULL */
    size_t nerrors;
    int retry_after_s; /* > 0: the response gets Retry-After */
    /* Not the request's outcome (another request got in the way): a retry
       may be answered otherwise, so it is never stored as the answer to an
       Idempotency-Key. 5xx answers are all of this kind. */
    bool retryable;
} http_problem_t;

/* The RFC 9110 reason phrase for status ("Not Found"), or "Error". */
const char *http_status_reason(int status);

/* Appends the problem as JSON to b. */
void http_problem_render(buf_t *b, const http_problem_t *p);

/*
 * Maps an err.h code from a lower layer to a problem: ERR_TIMEOUT -> 504,
 * ERR_UNAVAILABLE -> 503 (Retry-After 1), ERR_NOTFOUND -> 404,
 * ERR_CONFLICT -> 409, ERR_INVAL -> 400, ERR_RANGE -> 422, ERR_UNAUTHORIZED
 * -> 401, ERR_RETRY -> 409 (retryable), anything else -> 500. detail may be
 * STR_NULL for a default.
 */
void http_problem_from_err(int err, str_t detail, http_problem_t *out);

#endif
