/*
 * capacity: does the fleet's PostgreSQL pool fit what the database (or
 * PgBouncer) allows? Checked once at start, before any worker connects.
 *
 * One process cannot count its siblings, so the operator says how many
 * there may be at once (DATABASE_INSTANCES: replicas plus a rolling
 * restart's surge) and the check is
 *
 *     DATABASE_INSTANCES x per_instance <= budget
 *     per_instance = WORKERS x (max(1, DATABASE_POOL_SIZE / WORKERS) + 1)
 *
 * (each worker gets its share of the pool, at least one connection, plus
 * its heartbeat connection: src/app/app.c and src/db/pool.h)
 * where the budget is DATABASE_MAX_CONNECTIONS when set (behind PgBouncer:
 * its default_pool_size for the api's database and user), else what
 * PostgreSQL itself says: max_connections - superuser_reserved_connections,
 * asked with one short-lived connection. A pool that does not fit is a
 * configuration error: the start stops. A database that cannot be asked
 * (down, slow) is not: the server starts, and readiness tells the rest.
 *
 * Blocking, on the main thread, bounded in time; never on a worker.
 */
#ifndef DB_CAPACITY_H
#define DB_CAPACITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int64_t instances;       /* DATABASE_INSTANCES */
    int64_t pool_size;       /* DATABASE_POOL_SIZE: data connections per instance */
    int64_t workers;         /* WORKERS: each adds a heartbeat connection */
    int64_t max_connections; /* DATABASE_MAX_CONNECTIONS; 0 = ask PostgreSQL */
    int64_t timeout_ms;      /* bound on asking PostgreSQL, connect included */
} db_capacity_opts_t;

/* What PostgreSQL reported. */
typedef struct {
    int64_t max_connections;
    int64_t reserved; /* superuser_reserved_connections */
    int64_t in_use;   /* client backends now, the asking one excluded */
} db_capacity_server_t;

/* The PostgreSQL connections one instance opens (the formula above). */
int64_t db_capacity_per_instance(int64_t pool_size, int64_t workers);

/*
 * The arithmetic: 0 when instances x per_instance <= budget, else ERR_RANGE
 * with a message naming the variables and the numbers. `source` says where
 * the budget came from (for the message).
 */
int db_capacity_fits(const db_capacity_opts_t *o, int64_t budget, const char *source, char *err,
                     size_t errlen) __attribute__((warn_unused_result));

/*
 * Judges what PostgreSQL reported: 0 when the fleet's pool fits
 * max_connections - reserved, else ERR_RANGE with a message. *tight is set
 * when it fits but the connections free right now are fewer than one
 * instance needs (other clients, or a rolling restart's overlap).
 */
int db_capacity_judge(const db_capacity_opts_t *o, const db_capacity_server_t *s, bool *tight, char *err,
                      size_t errlen) __attribute__((warn_unused_result));

/*
 * Asks PostgreSQL (conninfo: the app's DATABASE_URL) for its limits, within
 * timeout_ms. Returns 0, ERR_TIMEOUT, or ERR_IO with libpq's message in err.
 */
int db_capacity_query(const char *conninfo, int64_t timeout_ms, db_capacity_server_t *out, char *err,
                      size_t errlen) __attribute__((warn_unused_result));

/*
 * The start-up check. Returns 0 when the pool fits or could not be checked
 * (logged as a warning), ERR_RANGE when it does not fit (message in err).
 * Also warns when PostgreSQL's free connections right now are fewer than
 * this instance's pool.
 */
int db_capacity_check(const char *conninfo, const db_capacity_opts_t *o, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
