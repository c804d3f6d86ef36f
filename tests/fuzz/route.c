/*
 * route: path routing and query strings. The input is a request line's
 * method and target ("PATCH /v1/users/<id>?limit=5"; without a space, the
 * whole input is a GET target). The target is split at '?' as the server
 * does, the path matched against the real route table, and the parameters
 * read the way the handlers read them: the id, limit and cursor of the
 * users routes, the debug routes' ms.
 *
 * Properties: a match names a route that accepts the method, its
 * parameters are non-empty segments of the path; a 405 lists methods, none
 * of them the one asked for; http_query_get / http_query_only agree with a
 * naive second reading of the query; numbers and ids read back as written.
 */
#include <inttypes.h>
#include <string.h>

#include "base/err.h"
#include "base/uuid.h"
#include "http/query.h"
#include "http/router.h"
#include "routes/cursor.h"
#include "routes/routes.h"
#include "fuzz.h"

static http_router_t *router;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    router = http_router_new(routes_table, routes_count, HTTP_ROUTE_DEBUG);
    FUZZ_ASSERT(router != NULL);
    /* the key of the cursor target, which the seeds were made with */
    static const char key[] = "cursor-fuzz-key";
    FUZZ_ASSERT(cursor_set_key(key, sizeof(key) - 1) == 0);
    return 0;
}

/* The naive reading: how often name occurs among the '&'-separated
   non-empty pairs of q, and the value of its last occurrence. */
static size_t count_param(str_t q, str_t name, str_t *value)
{
    size_t count = 0, start = 0;
    for (size_t i = 0; i <= q.len; i++) {
        if (i < q.len && q.ptr[i] != '&') {
            continue;
        }
        str_t pair = str_make(q.ptr + start, i - start);
        start = i + 1;
        size_t eq = 0;
        while (eq < pair.len && pair.ptr[eq] != '=') {
            eq++;
        }
        if (pair.len > 0 && str_eq(str_make(pair.ptr, eq), name)) {
            count++;
            *value = eq < pair.len ? str_make(pair.ptr + eq + 1, pair.len - eq - 1) : STR("");
        }
    }
    return count;
}

static void check_query_get(str_t q, str_t name)
{
    str_t want = STR_NULL, got = STR_NULL;
    size_t n = count_param(q, name, &want);
    int rc = http_query_get(q, name, &got);
    if (n == 0) {
        FUZZ_ASSERT(rc == ERR_NOTFOUND);
    } else if (n == 1) {
        FUZZ_ASSERT(rc == 0);
        FUZZ_ASSERT(str_eq(got, want));
        FUZZ_ASSERT(fuzz_within(got, q));
    } else {
        FUZZ_ASSERT(rc == ERR_INVAL);
    }
}

/* The first pair's name whose name is not a known one, by the naive walk. */
static bool first_unknown(str_t q, const str_t *known, size_t nknown, str_t *unknown)
{
    str_t rest = q, pair, name, value;
    while (rest.len > 0) {
        (void)fuzz_split(rest, '&', &pair, &rest);
        if (pair.len == 0) {
            continue;
        }
        (void)fuzz_split(pair, '=', &name, &value);
        bool ok = false;
        for (size_t i = 0; i < nknown; i++) {
            ok = ok || str_eq(name, known[i]);
        }
        if (!ok) {
            *unknown = name;
            return true;
        }
    }
    return false;
}

/* str_to_i64 in the full range: a result prints back as its input (less
   leading zeros); an optional '-' and up to 18 digits always parse. */
static void check_number(str_t v)
{
    int64_t x = 0;
    int rc = str_to_i64(v, INT64_MIN, INT64_MAX, &x);
    size_t digits = 0, i = v.len > 0 && v.ptr[0] == '-' ? 1 : 0;
    while (i + digits < v.len && v.ptr[i + digits] >= '0' && v.ptr[i + digits] <= '9') {
        digits++;
    }
    if (digits >= 1 && digits <= 18 && i + digits == v.len) {
        FUZZ_ASSERT(rc == 0);
    }
    if (rc != 0) {
        return;
    }
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%" PRId64, x);
    /* the input with leading zeros dropped (keeping a last "0") */
    size_t s = i;
    while (s + 1 < v.len && v.ptr[s] == '0') {
        s++;
    }
    size_t want_len = (v.len - s) + i;
    bool neg_zero = x == 0 && i == 1; /* "-0" parses as 0 */
    if (!neg_zero) {
        FUZZ_ASSERT((size_t)n == want_len);
        FUZZ_ASSERT(i == 0 || buf[0] == '-');
        FUZZ_ASSERT(memcmp(buf + i, v.ptr + s, v.len - s) == 0);
    }
}

static void check_match(unsigned method, str_t path, http_route_status_t st, const http_match_t *m)
{
    switch (st) {
    case HTTP_ROUTE_FOUND: {
        FUZZ_ASSERT(m->route != NULL);
        unsigned accepts = m->route->methods | ((m->route->methods & HTTP_GET) ? HTTP_HEAD : 0);
        FUZZ_ASSERT(method != 0 && (accepts & method) == method);
        FUZZ_ASSERT(m->nparams <= HTTP_MAX_PARAMS);
        for (size_t i = 0; i < m->nparams; i++) {
            str_t p = m->params[i];
            FUZZ_ASSERT(p.len > 0 && fuzz_within(p, path));
            FUZZ_ASSERT(memchr(p.ptr, '/', p.len) == NULL);
            FUZZ_ASSERT(p.ptr[-1] == '/'); /* a whole segment */
            FUZZ_ASSERT(p.ptr + p.len == path.ptr + path.len || p.ptr[p.len] == '/');
            FUZZ_ASSERT(str_eq(http_match_param(m, m->param_names[i]), p));
        }
        break;
    }
    case HTTP_ROUTE_BAD_METHOD: {
        FUZZ_ASSERT(m->route == NULL && m->allow != 0 && (m->allow & method) == 0);
        char allow[64];
        size_t n = http_methods_format(m->allow, allow, sizeof(allow));
        FUZZ_ASSERT(n > 0 && n == strlen(allow));
        break;
    }
    case HTTP_ROUTE_NOT_FOUND:
        FUZZ_ASSERT(m->route == NULL && m->nparams == 0);
        break;
    }
}

/* What the users and debug handlers read from a matched request. */
static void read_params(const http_match_t *m, str_t query)
{
    str_t id = http_match_param(m, STR("id"));
    uuid_bytes_t u;
    if (id.ptr != NULL && uuid_parse(id, &u) == 0) {
        char back[UUID_STR_LEN];
        uuid_format(&u, back);
        FUZZ_ASSERT(id.len == UUID_STR_LEN && str_eq_nocase(id, str_make(back, sizeof(back))));
    }
    static const str_t known[] = {{"limit", 5}, {"cursor", 6}};
    str_t unknown = STR_NULL, want = STR_NULL;
    bool only = http_query_only(query, known, 2, &unknown);
    FUZZ_ASSERT(only == !first_unknown(query, known, 2, &want));
    if (!only) {
        FUZZ_ASSERT(str_eq(unknown, want) && fuzz_within(unknown, query));
    }
    str_t v;
    int64_t limit;
    if (http_query_get(query, STR("limit"), &v) == 0 && str_to_i64(v, 1, 100, &limit) == 0) {
        FUZZ_ASSERT(limit >= 1 && limit <= 100);
    }
    uuid_bytes_t after;
    if (http_query_get(query, STR("cursor"), &v) == 0 && cursor_decode(v, &after) == 0) {
        char again[CURSOR_LEN];
        FUZZ_ASSERT(cursor_encode(&after, again) == 0);
        FUZZ_ASSERT(str_eq(v, str_make(again, sizeof(again))));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    str_t in = fuzz_input(data, size), method_name, target;
    if (!fuzz_split(in, ' ', &method_name, &target)) {
        target = in;
        method_name = STR("GET");
    }
    unsigned method = http_method_parse(method_name);
    str_t path, query;
    if (!fuzz_split(target, '?', &path, &query)) {
        query = STR("");
    }

    http_match_t m;
    http_route_status_t st = http_router_match(router, method, path, &m);
    check_match(method, path, st, &m);
    if (st == HTTP_ROUTE_FOUND) {
        read_params(&m, query);
    }

    static const str_t names[] = {{"limit", 5}, {"cursor", 6}, {"ms", 2}, {"", 0}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        check_query_get(query, names[i]);
    }
    /* and whatever name the query starts with */
    str_t pair, rest, name, value;
    (void)fuzz_split(query, '&', &pair, &rest);
    (void)fuzz_split(pair, '=', &name, &value);
    check_query_get(query, name);
    check_number(value);
    return 0;
}
