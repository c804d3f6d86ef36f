/* capacity: the start-up pool-sizing check (see capacity.h for the formula). */
#include "db/capacity.h"

#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/err.h"
#include "obs/log.h"
#include "base/banned.h"

/* One round trip; the asking backend is left out of the count. */
#define CAPACITY_SQL                                                                                         \
    "SELECT current_setting('max_connections')::int8,"                                                       \
    " current_setting('superuser_reserved_connections')::int8,"                                              \
    " (SELECT count(*) FROM pg_stat_activity"                                                                \
    "  WHERE backend_type = 'client backend' AND pid <> pg_backend_pid())"

int64_t db_capacity_per_instance(int64_t pool_size, int64_t workers)
{
    int64_t per_worker = workers > 0 ? pool_size / workers : pool_size;
    if (per_worker < 1) {
        per_worker = 1;
    }
    return workers * (per_worker + 1);
}

int db_capacity_fits(const db_capacity_opts_t *o, int64_t budget, const char *source, char *err,
                     size_t errlen)
{
    /* Bounded by config (instances <= 10000, pool <= 1024, workers <= 256):
       no overflow. */
    int64_t per_instance = db_capacity_per_instance(o->pool_size, o->workers);
    int64_t need = o->instances * per_instance;
    if (need <= budget) {
        return 0;
    }
    snprintf(err, errlen,
             "pool sizing: DATABASE_INSTANCES (%lld) x %lld connections per instance "
             "(DATABASE_POOL_SIZE %lld over WORKERS %lld, plus a heartbeat per worker) = %lld, "
             "more than %s allows (%lld); lower DATABASE_POOL_SIZE, or raise the database's limit",
             (long long)o->instances, (long long)per_instance, (long long)o->pool_size, (long long)o->workers,
             (long long)need, source, (long long)budget);
    return ERR_RANGE;
}

int db_capacity_judge(const db_capacity_opts_t *o, const db_capacity_server_t *s, bool *tight, char *err,
                      size_t errlen)
{
    int64_t budget = s->max_connections - s->reserved;
    char source[96];
    snprintf(source, sizeof(source),
             "PostgreSQL (max_connections %lld - superuser_reserved_connections %lld)",
             (long long)s->max_connections, (long long)s->reserved);
    int rc = db_capacity_fits(o, budget, source, err, errlen);
    *tight = rc == 0 && budget - s->in_use < db_capacity_per_instance(o->pool_size, o->workers);
    return rc;
}

/* Waits until the connection's socket is ready for `events`, or the deadline. */
static int wait_socket(PGconn *c, short events, uint64_t deadline_ms)
{
    for (;;) {
        uint64_t now = clock_mono_ms();
        if (now >= deadline_ms) {
            return ERR_TIMEOUT;
        }
        struct pollfd p = {.fd = PQsocket(c), .events = events};
        int n = poll(&p, 1, (int)(deadline_ms - now));
        if (n > 0) {
            return 0;
        }
        if (n < 0 && errno != EINTR) {
            return ERR_IO;
        }
    }
}

static int64_t field_i64(const PGresult *r, int col)
{
    return strtoll(PQgetvalue(r, 0, col), NULL, 10);
}

int db_capacity_query(const char *conninfo, int64_t timeout_ms, db_capacity_server_t *out, char *err,
                      size_t errlen)
{
    uint64_t deadline = clock_mono_ms() + (uint64_t)timeout_ms;
    int rc = 0;
    PGresult *res = NULL;
    PGconn *c = PQconnectStart(conninfo);
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return ERR_NOMEM;
    }
    /* libpq's own connect_timeout has a 2 s floor and counts per address;
       polling ourselves keeps one bound for the whole exchange. */
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    while (rc == 0 && st != PGRES_POLLING_OK) {
        if (PQstatus(c) == CONNECTION_BAD || st == PGRES_POLLING_FAILED) {
            snprintf(err, errlen, "%s", PQerrorMessage(c));
            rc = ERR_IO;
            break;
        }
        rc = wait_socket(c, st == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline);
        if (rc == 0) {
            st = PQconnectPoll(c);
        }
    }
    if (rc == 0 && (PQsetnonblocking(c, 1) != 0 || !PQsendQuery(c, CAPACITY_SQL))) {
        snprintf(err, errlen, "%s", PQerrorMessage(c));
        rc = ERR_IO;
    }
    while (rc == 0 && PQflush(c) == 1) {
        rc = wait_socket(c, POLLOUT, deadline);
    }
    while (rc == 0 && PQisBusy(c)) {
        rc = wait_socket(c, POLLIN, deadline);
        if (rc == 0 && !PQconsumeInput(c)) {
            snprintf(err, errlen, "%s", PQerrorMessage(c));
            rc = ERR_IO;
        }
    }
    if (rc == 0) {
        res = PQgetResult(c);
        if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 || PQnfields(res) != 3) {
            snprintf(err, errlen, "%s", PQresultErrorMessage(res));
            rc = ERR_IO;
        } else {
            out->max_connections = field_i64(res, 0);
            out->reserved = field_i64(res, 1);
            out->in_use = field_i64(res, 2);
        }
    }
    if (rc == ERR_TIMEOUT) {
        snprintf(err, errlen, "no answer within %lld ms", (long long)timeout_ms);
    }
    PQclear(res);
    PQfinish(c);
    return rc;
}

int db_capacity_check(const char *conninfo, const db_capacity_opts_t *o, char *err, size_t errlen)
{
    if (o->max_connections > 0) {
        return db_capacity_fits(o, o->max_connections, "DATABASE_MAX_CONNECTIONS", err, errlen);
    }
    db_capacity_server_t s;
    char why[256];
    int rc = db_capacity_query(conninfo, o->timeout_ms, &s, why, sizeof(why));
    if (rc != 0) {
        /* trim libpq's trailing newline */
        size_t n = strlen(why);
        while (n > 0 && (why[n - 1] == '\n' || why[n - 1] == ' ')) {
            why[--n] = '\0';
        }
        log_warn("pool sizing not checked: cannot ask PostgreSQL for max_connections (%s)", why);
        return 0;
    }
    bool tight = false;
    rc = db_capacity_judge(o, &s, &tight, err, errlen);
    if (rc == 0 && tight) {
        log_warn("pool sizing: PostgreSQL has %lld of %lld connections in use; this instance's %lld "
                 "may not all connect now",
                 (long long)s.in_use, (long long)(s.max_connections - s.reserved),
                 (long long)db_capacity_per_instance(o->pool_size, o->workers));
    }
    return rc;
}
