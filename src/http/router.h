/*
 * router: method + path -> route, from a static table.
 *
 * Patterns are literal segments and "{name}" parameters ("/v1/users/{id}"),
 * matched segment by segment against the raw request path (before any query,
 * no percent-decoding: ids are plain ASCII and anything else fails their own
 * validation). The table is read-only and shared by all workers; matching
 * allocates nothing. A path that matches a pattern under another method gives
 * HTTP_ROUTE_BAD_METHOD with the allowed methods (for 405 + Allow).
 */
#ifndef HTTP_ROUTER_H
#define HTTP_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/str.h"

enum {
    HTTP_GET = 1 << 0,
    HTTP_HEAD = 1 << 1,
    HTTP_POST = 1 << 2,
    HTTP_PUT = 1 << 3,
    HTTP_PATCH = 1 << 4,
    HTTP_DELETE = 1 << 5,
    HTTP_OPTIONS = 1 << 6,
};

#define HTTP_MAX_PARAMS   4
#define HTTP_MAX_SEGMENTS 8

struct http_ctx;
typedef void (*http_handler_fn)(struct http_ctx *ctx);

typedef struct http_route {
    unsigned methods; /* HTTP_GET | ...; GET implies HEAD */
    const char *pattern;
    http_handler_fn handler;
    const char *scope;  /* OAuth scope the caller needs; NULL = public */
    uint32_t flags;     /* HTTP_ROUTE_* */
    int64_t timeout_ms; /* 0: REQUEST_TIMEOUT_MS; else the lower of the two */
} http_route_t;

enum {
    HTTP_ROUTE_DEBUG = 1 << 0,     /* only with API_DEBUG_ROUTES=1 */
    HTTP_ROUTE_API = 1 << 1,       /* under /v1: authenticated, rate limited */
    HTTP_ROUTE_HAS_BODY = 1 << 2,  /* takes a JSON body */
    HTTP_ROUTE_IDEMPOTENT = 1 << 3 /* honours Idempotency-Key */
};

typedef enum { HTTP_ROUTE_FOUND, HTTP_ROUTE_NOT_FOUND, HTTP_ROUTE_BAD_METHOD } http_route_status_t;

typedef struct {
    const http_route_t *route;
    unsigned allow; /* for HTTP_ROUTE_BAD_METHOD: methods the path accepts */
    size_t nparams;
    str_t param_names[HTTP_MAX_PARAMS];
    str_t params[HTTP_MAX_PARAMS];
} http_match_t;

typedef struct http_router http_router_t;

/*
 * Builds a router over routes[0..n) (which must outlive it), skipping routes
 * with flags & ~enabled_flags among HTTP_ROUTE_DEBUG. Returns NULL on a
 * malformed pattern (a bug: checked by the unit tests) or no memory.
 */
http_router_t *http_router_new(const http_route_t *routes, size_t n, uint32_t enabled_flags);
void http_router_free(http_router_t *r);

/* Method name -> HTTP_* bit; 0 for methods no route can have. */
unsigned http_method_parse(str_t method);
/* Writes "GET, HEAD, POST" for a mask into out (NUL-terminated). */
size_t http_methods_format(unsigned mask, char *out, size_t outlen);

http_route_status_t http_router_match(const http_router_t *r, unsigned method, str_t path, http_match_t *m);

/* The value of parameter name, or STR_NULL. */
str_t http_match_param(const http_match_t *m, str_t name);

#endif
