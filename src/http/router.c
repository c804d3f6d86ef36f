/*
 * router: patterns are split into segments once, at start-up; matching walks
 * the request path's segments against each route in table order. Tables are
 * small (tens of routes), so a linear scan over pre-split segments beats a
 * trie in code size and is not measurable next to the rest of a request.
 */
#include "http/router.h"

#include <stdio.h>
#include <stdlib.h>
#include "base/banned.h"

typedef struct {
    str_t text; /* literal, or the parameter's name */
    bool param;
} seg_t;

typedef struct {
    const http_route_t *route;
    size_t nsegs;
    seg_t segs[HTTP_MAX_SEGMENTS];
} compiled_t;

struct http_router {
    size_t n;
    compiled_t routes[];
};

static const struct {
    const char *name;
    unsigned bit;
} methods[] = {
    {"GET", HTTP_GET},     {"HEAD", HTTP_HEAD},     {"POST", HTTP_POST},       {"PUT", HTTP_PUT},
    {"PATCH", HTTP_PATCH}, {"DELETE", HTTP_DELETE}, {"OPTIONS", HTTP_OPTIONS},
};

unsigned http_method_parse(str_t method)
{
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        if (str_eq(method, str_from_cstr(methods[i].name))) {
            return methods[i].bit;
        }
    }
    return 0;
}

size_t http_methods_format(unsigned mask, char *out, size_t outlen)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        if ((mask & methods[i].bit) == 0) {
            continue;
        }
        int n = snprintf(out + len, outlen - len, "%s%s", len ? ", " : "", methods[i].name);
        if (n < 0 || (size_t)n >= outlen - len) {
            break;
        }
        len += (size_t)n;
    }
    return len;
}

/* Splits "/a/b" into segments. An empty segment ("//", trailing "/") is kept
   as empty text, so "/v1/users/" never matches "/v1/users". */
static int split(str_t path, seg_t *segs, size_t max, size_t *n)
{
    *n = 0;
    if (path.len == 0 || path.ptr[0] != '/') {
        return -1;
    }
    size_t i = 1;
    for (;;) {
        size_t start = i;
        while (i < path.len && path.ptr[i] != '/') {
            i++;
        }
        if (*n == max) {
            return -1;
        }
        segs[(*n)++] = (seg_t){str_make(path.ptr + start, i - start), false};
        if (i >= path.len) {
            return 0;
        }
        i++; /* skip '/' */
    }
}

http_router_t *http_router_new(const http_route_t *routes, size_t n, uint32_t enabled_flags)
{
    http_router_t *r = calloc(1, sizeof(*r) + n * sizeof(compiled_t));
    if (r == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if ((routes[i].flags & HTTP_ROUTE_DEBUG) && !(enabled_flags & HTTP_ROUTE_DEBUG)) {
            continue;
        }
        compiled_t *c = &r->routes[r->n];
        c->route = &routes[i];
        if (split(str_from_cstr(routes[i].pattern), c->segs, HTTP_MAX_SEGMENTS, &c->nsegs) != 0) {
            free(r);
            return NULL;
        }
        size_t nparams = 0;
        for (size_t s = 0; s < c->nsegs; s++) {
            str_t t = c->segs[s].text;
            if (t.len >= 2 && t.ptr[0] == '{' && t.ptr[t.len - 1] == '}') {
                c->segs[s] = (seg_t){str_make(t.ptr + 1, t.len - 2), true};
                if (++nparams > HTTP_MAX_PARAMS) {
                    free(r);
                    return NULL;
                }
            }
        }
        r->n++;
    }
    return r;
}

void http_router_free(http_router_t *r)
{
    free(r);
}

static bool match_route(const compiled_t *c, const seg_t *segs, size_t nsegs, http_match_t *m)
{
    if (c->nsegs != nsegs) {
        return false;
    }
    size_t np = 0;
    for (size_t i = 0; i < nsegs; i++) {
        if (c->segs[i].param) {
            if (segs[i].text.len == 0) {
                return false;
            }
            m->param_names[np] = c->segs[i].text;
            m->params[np++] = segs[i].text;
        } else if (!str_eq(c->segs[i].text, segs[i].text)) {
            return false;
        }
    }
    m->nparams = np;
    return true;
}

http_route_status_t http_router_match(const http_router_t *r, unsigned method, str_t path, http_match_t *m)
{
    seg_t segs[HTTP_MAX_SEGMENTS];
    size_t nsegs;
    *m = (http_match_t){0};
    if (split(path, segs, HTTP_MAX_SEGMENTS, &nsegs) != 0) {
        return HTTP_ROUTE_NOT_FOUND;
    }
    unsigned allow = 0;
    for (size_t i = 0; i < r->n; i++) {
        const compiled_t *c = &r->routes[i];
        http_match_t tmp;
        if (!match_route(c, segs, nsegs, &tmp)) {
            continue;
        }
        unsigned accepts = c->route->methods;
        if (accepts & HTTP_GET) {
            accepts |= HTTP_HEAD;
        }
        if (accepts & method) {
            *m = tmp;
            m->route = c->route;
            return HTTP_ROUTE_FOUND;
        }
        allow |= accepts;
    }
    if (allow != 0) {
        m->allow = allow;
        return HTTP_ROUTE_BAD_METHOD;
    }
    return HTTP_ROUTE_NOT_FOUND;
}

str_t http_match_param(const http_match_t *m, str_t name)
{
    for (size_t i = 0; i < m->nparams; i++) {
        if (str_eq(m->param_names[i], name)) {
            return m->params[i];
        }
    }
    return STR_NULL;
}
