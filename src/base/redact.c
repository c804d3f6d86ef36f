/* redact: URL userinfo, known secrets, quoted fragments. */
#include "base/redact.h"

#include <string.h>

#include "base/banned.h"

typedef struct {
    char *p;
    size_t len, cap; /* cap excludes the NUL */
} out_t;

static void put(out_t *o, const char *s, size_t n)
{
    size_t room = o->cap - o->len;
    if (n > room) {
        n = room;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

static out_t out_init(char *buf, size_t outlen)
{
    out_t o = {buf, 0, outlen > 0 ? outlen - 1 : 0};
    if (outlen > 0) {
        buf[0] = '\0';
    }
    return o;
}

const char *redact_url(str_t url, char *buf, size_t outlen)
{
    out_t o = out_init(buf, outlen);
    if (outlen == 0) {
        return buf;
    }
    const char *sep = url.len >= 3 ? memmem(url.ptr, url.len, "://", 3) : NULL;
    if (sep == NULL) {
        put(&o, url.ptr, url.len);
        return buf;
    }
    const char *auth = sep + 3;
    const char *end = url.ptr + url.len;
    /* The authority ends at the first '/', '?' or '#' (RFC 3986 3.2); its
       userinfo at the last '@' inside it. */
    const char *auth_end = auth;
    while (auth_end < end && *auth_end != '/' && *auth_end != '?' && *auth_end != '#') {
        auth_end++;
    }
    const char *at = NULL;
    for (const char *p = auth; p < auth_end; p++) {
        if (*p == '@') {
            at = p;
        }
    }
    if (at == NULL) {
        put(&o, url.ptr, url.len);
        return buf;
    }
    const char *colon = memchr(auth, ':', (size_t)(at - auth));
    put(&o, url.ptr, (size_t)((colon ? colon + 1 : auth) - url.ptr));
    put(&o, REDACTED, sizeof(REDACTED) - 1);
    put(&o, at, (size_t)(end - at));
    return buf;
}

const char *redact_secret(str_t msg, str_t secret, char *buf, size_t outlen)
{
    out_t o = out_init(buf, outlen);
    if (outlen == 0) {
        return buf;
    }
    size_t i = 0;
    while (i < msg.len) {
        if (secret.len > 0 && msg.len - i >= secret.len && memcmp(msg.ptr + i, secret.ptr, secret.len) == 0) {
            put(&o, REDACTED, sizeof(REDACTED) - 1);
            i += secret.len;
        } else {
            put(&o, msg.ptr + i, 1);
            i++;
        }
    }
    return buf;
}

const char *redact_quoted(str_t msg, char *buf, size_t outlen)
{
    out_t o = out_init(buf, outlen);
    if (outlen == 0) {
        return buf;
    }
    size_t i = 0;
    while (i < msg.len) {
        const char *q = memchr(msg.ptr + i, '"', msg.len - i);
        if (q == NULL) {
            put(&o, msg.ptr + i, msg.len - i);
            break;
        }
        put(&o, msg.ptr + i, (size_t)(q - (msg.ptr + i)) + 1);
        const char *close = memchr(q + 1, '"', (size_t)(msg.ptr + msg.len - (q + 1)));
        put(&o, REDACTED, sizeof(REDACTED) - 1);
        if (close == NULL) {
            break;
        }
        put(&o, "\"", 1);
        i = (size_t)(close + 1 - msg.ptr);
    }
    return buf;
}
