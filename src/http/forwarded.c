/* forwarded: CIDR sets and the X-Forwarded-For walk. */
#include "http/forwarded.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/banned.h"

static str_t trim(str_t s)
{
    while (s.len > 0 && (s.ptr[0] == ' ' || s.ptr[0] == '\t')) {
        s.ptr++, s.len--;
    }
    while (s.len > 0 && (s.ptr[s.len - 1] == ' ' || s.ptr[s.len - 1] == '\t')) {
        s.len--;
    }
    return s;
}

bool http_addr_parse(str_t text, uint8_t out[16])
{
    text = trim(text);
    char buf[HTTP_ADDR_MAX];
    if (text.len == 0 || text.len >= sizeof(buf)) {
        return false;
    }
    memcpy(buf, text.ptr, text.len);
    buf[text.len] = '\0';
    struct in_addr a4;
    if (inet_pton(AF_INET, buf, &a4) == 1) {
        memset(out, 0, 10);
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &a4, 4);
        return true;
    }
    return inet_pton(AF_INET6, buf, out) == 1;
}

int http_cidrs_parse(const char *list, http_cidrs_t *out, char *err, size_t errlen)
{
    out->n = 0;
    str_t rest = str_from_cstr(list ? list : "");
    while (rest.len > 0) {
        const char *comma = memchr(rest.ptr, ',', rest.len);
        str_t item = trim(str_make(rest.ptr, comma ? (size_t)(comma - rest.ptr) : rest.len));
        rest = comma ? str_make(comma + 1, rest.len - (size_t)(comma + 1 - rest.ptr)) : STR("");
        if (item.len == 0) {
            continue;
        }
        const char *slash = memchr(item.ptr, '/', item.len);
        str_t host = slash ? str_make(item.ptr, (size_t)(slash - item.ptr)) : item;
        http_cidr_t c;
        bool v4 = memchr(host.ptr, ':', host.len) == NULL;
        bool ok = out->n < HTTP_CIDRS_MAX && http_addr_parse(host, c.addr);
        int64_t bits = v4 ? 32 : 128;
        if (ok && slash != NULL) {
            ok = str_to_i64(str_make(slash + 1, item.len - (size_t)(slash + 1 - item.ptr)), 0, v4 ? 32 : 128,
                            &bits) == 0;
        }
        if (!ok) {
            snprintf(err, errlen,
                     out->n < HTTP_CIDRS_MAX
                         ? "invalid TRUSTED_PROXIES entry \"%.*s\": expected an address or address/prefix"
                         : "invalid TRUSTED_PROXIES: more than 64 entries (\"%.*s\")",
                     (int)item.len, item.ptr);
            return ERR_INVAL;
        }
        c.prefix = (unsigned)(v4 ? 96 + bits : bits);
        /* the network's own bits only, so "10.1.2.3/8" means 10.0.0.0/8 */
        for (unsigned i = c.prefix; i < 128; i++) {
            c.addr[i / 8] &= (uint8_t) ~(0x80u >> (i % 8));
        }
        out->v[out->n++] = c;
    }
    return 0;
}

static bool in_cidr(const http_cidr_t *c, const uint8_t a[16])
{
    unsigned full = c->prefix / 8, rem = c->prefix % 8;
    if (memcmp(c->addr, a, full) != 0) {
        return false;
    }
    return rem == 0 || ((c->addr[full] ^ a[full]) & (uint8_t)(0xffu << (8 - rem))) == 0;
}

bool http_cidrs_contain(const http_cidrs_t *set, const uint8_t addr[16])
{
    for (size_t i = 0; set != NULL && i < set->n; i++) {
        if (in_cidr(&set->v[i], addr)) {
            return true;
        }
    }
    return false;
}

static size_t put(str_t s, char *out)
{
    s = trim(s);
    size_t n = s.len < HTTP_ADDR_MAX - 1 ? s.len : HTTP_ADDR_MAX - 1;
    memcpy(out, s.ptr, n);
    out[n] = '\0';
    return n;
}

size_t http_forwarded_client(const http_cidrs_t *trusted, str_t peer, const str_t *xff, size_t nxff,
                             char *out)
{
    uint8_t a[16];
    if (trusted == NULL || trusted->n == 0 || !http_addr_parse(peer, a) || !http_cidrs_contain(trusted, a)) {
        return put(peer, out);
    }
    str_t leftmost = STR_NULL;
    for (size_t h = nxff; h-- > 0;) {
        const char *start = xff[h].ptr, *end = xff[h].ptr + xff[h].len;
        while (start != NULL && end > start) {
            const char *q = end;
            while (q > start && q[-1] != ',') {
                q--;
            }
            str_t e = str_make(q, (size_t)(end - q));
            if (!http_addr_parse(e, a)) {
                return put(peer, out); /* malformed: believe nothing */
            }
            if (!http_cidrs_contain(trusted, a)) {
                return put(e, out);
            }
            leftmost = e;
            if (q == start) {
                break;
            }
            end = q - 1; /* before the comma */
            if (end == start) {
                return put(peer, out); /* ",..." : an empty entry */
            }
        }
    }
    return put(leftmost.ptr != NULL ? leftmost : peer, out);
}
