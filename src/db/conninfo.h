/*
 * conninfo: the libpq connection string the pools use, made safe to use
 * from an event loop.
 *
 * libpq resolves host names with a blocking getaddrinfo() inside
 * PQconnectPoll(), which would stall a worker's loop at every (re)connect.
 * So the string is parsed once at start-up, every host name is resolved
 * here, and the address goes into `hostaddr=` (the name stays in `host=` for
 * TLS verification and .pgpass). TCP keepalives and tcp_user_timeout get
 * defaults unless the string sets them, so a dead peer or path is noticed by
 * the kernel, not only by our heartbeat. Names are resolved once: a DNS
 * change needs a restart (documented in docs/database.md).
 *
 * Never logs the string: it may hold a password.
 */
#ifndef DB_CONNINFO_H
#define DB_CONNINFO_H

#include <stddef.h>

/*
 * Parses conninfo (key=value or URI form), resolves host names (blocking:
 * start-up only) and writes a key=value string to *out (malloc'd, the
 * caller frees). Returns 0, or ERR_INVAL / ERR_NOMEM with a message in err
 * that never contains the password.
 */
int db_conninfo_prepare(const char *conninfo, char **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
