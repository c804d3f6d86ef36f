/* query: a linear scan over '&'-separated pairs; nothing is allocated. */
#include "http/query.h"

#include "base/err.h"
#include "base/banned.h"

typedef struct {
    str_t rest;
} iter_t;

static bool next_pair(iter_t *it, str_t *name, str_t *value)
{
    while (it->rest.len > 0) {
        const char *amp = memchr(it->rest.ptr, '&', it->rest.len);
        size_t n = amp ? (size_t)(amp - it->rest.ptr) : it->rest.len;
        str_t pair = str_make(it->rest.ptr, n);
        it->rest = amp ? str_make(amp + 1, it->rest.len - n - 1) : str_make(it->rest.ptr + n, 0);
        if (pair.len == 0) {
            continue; /* "a=1&&b=2" */
        }
        const char *eq = memchr(pair.ptr, '=', pair.len);
        if (eq) {
            *name = str_make(pair.ptr, (size_t)(eq - pair.ptr));
            *value = str_make(eq + 1, pair.len - name->len - 1);
        } else {
            *name = pair;
            *value = str_make(pair.ptr + pair.len, 0);
        }
        return true;
    }
    return false;
}

int http_query_get(str_t query, str_t name, str_t *out)
{
    iter_t it = {query};
    str_t n, v;
    int found = 0;
    while (next_pair(&it, &n, &v)) {
        if (str_eq(n, name)) {
            if (found++) {
                return ERR_INVAL;
            }
            *out = v;
        }
    }
    return found ? 0 : ERR_NOTFOUND;
}

bool http_query_only(str_t query, const str_t *names, size_t count, str_t *unknown)
{
    iter_t it = {query};
    str_t n, v;
    while (next_pair(&it, &n, &v)) {
        bool known = false;
        for (size_t i = 0; i < count && !known; i++) {
            known = str_eq(n, names[i]);
        }
        if (!known) {
            *unknown = n;
            return false;
        }
    }
    return true;
}
