/* conninfo: parse, resolve host names into hostaddr, add keepalive defaults. */
#include "db/conninfo.h"

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base/buf.h"
#include "base/err.h"
#include "db/secret.h"
#include "base/banned.h"

#define CONNINFO_MAX (64 * 1024)
#define HOSTS_MAX    16

/* Defaults for what a server on a network needs; an explicit setting in
   DATABASE_URL wins. tcp_user_timeout: unacknowledged data for this long
   means the peer is gone (ms). */
static const struct {
    const char *key, *value;
} defaults[] = {
    {"keepalives", "1"},       {"keepalives_idle", "30"},     {"keepalives_interval", "10"},
    {"keepalives_count", "3"}, {"tcp_user_timeout", "30000"},
};

static void put_str(buf_t *b, const char *s)
{
    buf_append(b, s, strlen(s));
}

static void put_value(buf_t *b, const char *key, const char *v)
{
    if (b->len > 0) {
        buf_putc(b, ' ');
    }
    put_str(b, key);
    put_str(b, "='");
    for (const char *p = v; *p; p++) {
        if (*p == '\'' || *p == '\\') {
            buf_putc(b, '\\');
        }
        buf_putc(b, *p);
    }
    buf_putc(b, '\'');
}

static bool is_numeric_host(const char *h)
{
    unsigned char a[16];
    return inet_pton(AF_INET, h, a) == 1 || inet_pton(AF_INET6, h, a) == 1;
}

/* One host of a (possibly comma-separated) host list -> its hostaddr entry:
   empty for sockets and numeric hosts (libpq needs none), else the first
   address the name resolves to. */
static int resolve_one(const char *host, size_t n, buf_t *hostaddr, char *err, size_t errlen)
{
    char name[256];
    if (n >= sizeof(name)) {
        snprintf(err, errlen, "invalid DATABASE_URL: a host name is longer than 255 bytes");
        return ERR_INVAL;
    }
    memcpy(name, host, n);
    name[n] = '\0';
    if (n == 0 || name[0] == '/' || name[0] == '@' || is_numeric_host(name)) {
        return 0;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC}, *res = NULL;
    int rc = getaddrinfo(name, NULL, &hints, &res);
    if (rc != 0 || res == NULL) {
        snprintf(err, errlen, "invalid DATABASE_URL: cannot resolve the host \"%s\": %s", name,
                 rc != 0 ? gai_strerror(rc) : "no address");
        return ERR_INVAL;
    }
    char addr[INET6_ADDRSTRLEN];
    rc = getnameinfo(res->ai_addr, res->ai_addrlen, addr, sizeof(addr), NULL, 0, NI_NUMERICHOST);
    freeaddrinfo(res);
    if (rc != 0) {
        snprintf(err, errlen, "invalid DATABASE_URL: cannot resolve the host \"%s\"", name);
        return ERR_INVAL;
    }
    put_str(hostaddr, addr);
    return 0;
}

int db_conninfo_prepare(const char *conninfo, char **out, char *err, size_t errlen)
{
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);
    if (opts == NULL) {
        bool nomem = perr == NULL;
        PQfreemem(perr);
        if (nomem) {
            snprintf(err, errlen, "out of memory");
            return ERR_NOMEM;
        }
        /* libpq quotes the fragment it could not parse, which may be the
           password: db_secret_check reports it with that withheld. */
        int rc = db_secret_check("DATABASE_URL", conninfo, err, errlen);
        return rc != 0 ? rc : ERR_INVAL;
    }
    const char *host = NULL, *hostaddr = NULL;
    bool present[sizeof(defaults) / sizeof(defaults[0])] = {false};
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        if (o->val == NULL) {
            continue;
        }
        if (strcmp(o->keyword, "host") == 0) {
            host = o->val;
        } else if (strcmp(o->keyword, "hostaddr") == 0) {
            hostaddr = o->val;
        }
        for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
            present[i] |= strcmp(o->keyword, defaults[i].key) == 0;
        }
    }

    int rc = 0;
    buf_t b, addrs;
    buf_init(&b, CONNINFO_MAX);
    buf_init(&addrs, CONNINFO_MAX);
    /* Resolve only when the user gave names and no hostaddr of their own. */
    bool any_name = false;
    if (host != NULL && (hostaddr == NULL || hostaddr[0] == '\0')) {
        const char *p = host;
        for (int i = 0; rc == 0; i++) {
            const char *comma = strchr(p, ',');
            size_t n = comma ? (size_t)(comma - p) : strlen(p);
            if (i >= HOSTS_MAX) {
                snprintf(err, errlen, "invalid DATABASE_URL: more than %d hosts", HOSTS_MAX);
                rc = ERR_INVAL;
                break;
            }
            if (i > 0) {
                buf_putc(&addrs, ',');
            }
            size_t before = addrs.len;
            rc = resolve_one(p, n, &addrs, err, errlen);
            any_name |= addrs.len > before;
            if (comma == NULL) {
                break;
            }
            p = comma + 1;
        }
    }
    for (PQconninfoOption *o = opts; rc == 0 && o->keyword != NULL; o++) {
        if (o->val != NULL && !(any_name && strcmp(o->keyword, "hostaddr") == 0)) {
            put_value(&b, o->keyword, o->val);
        }
    }
    if (rc == 0 && any_name) {
        buf_putc(&addrs, '\0');
        put_value(&b, "hostaddr", buf_failed(&addrs) ? "" : addrs.ptr);
    }
    for (size_t i = 0; rc == 0 && i < sizeof(defaults) / sizeof(defaults[0]); i++) {
        if (!present[i]) {
            put_value(&b, defaults[i].key, defaults[i].value);
        }
    }
    PQconninfoFree(opts);
    if (rc == 0) {
        buf_putc(&b, '\0');
        if (buf_failed(&b) || buf_failed(&addrs)) {
            snprintf(err, errlen, "invalid DATABASE_URL: longer than %d bytes", CONNINFO_MAX);
            rc = ERR_INVAL;
        }
    }
    if (rc == 0) {
        *out = strdup(b.ptr);
        if (*out == NULL) {
            rc = ERR_NOMEM;
            snprintf(err, errlen, "out of memory");
        }
    }
    buf_deinit(&b);
    buf_deinit(&addrs);
    return rc;
}
