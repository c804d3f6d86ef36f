/*
 * pool: asynchronous PostgreSQL for one worker: a few connections in libpq
 * pipeline mode, driven by the worker's h2o loop, plus one heartbeat
 * connection that tells whether PostgreSQL answers at all.
 *
 * A unit of work is a batch: up to DB_MAX_BATCH statements sent back to
 * back and closed by one Sync, so PostgreSQL runs them as one implicit
 * transaction (all or nothing) with no client round trip inside it. No
 * connection ever sits idle in an open transaction, which is why pipelined
 * connections can carry writes too (docs/adr/0002-db-batches.md).
 *
 * Deadlines (docs/database.md, "Deadlines and cancellation"): the pool puts
 * a settings statement first in a batch. A write batch starts with a guard
 * (migrations/0003) that does nothing but fail if PostgreSQL starts the
 * batch after its request's deadline, and otherwise sets statement_timeout
 * to the time left; so a write whose client was told "timeout" never
 * commits later. A read gets the time left as its statement_timeout when it
 * has less than the session's (or always, with unnamed statements).
 *
 * Health: the heartbeat connection runs a trivial query every heartbeat_ms;
 * one not answered within stall_ms means PostgreSQL is stalled (a frozen
 * process or host accepts connections and answers nothing): the breaker
 * opens at once, every connection is failed (their requests get 503 now,
 * not at their deadlines) and re-made. Lock waits and request timeouts
 * never count against the breaker. The pool is healthy while it has a
 * ready connection, the heartbeat answers and the breaker is closed;
 * readiness and db_submit both read that one predicate.
 *
 * Contract: db_submit() either fails at once (the callback never runs) or
 * returns 0, and then the callback runs exactly once, later, from the loop —
 * unless db_op_cancel() was called first. Params are copied at submit.
 *
 * Not thread-safe: a pool belongs to its worker's thread. The cancel helper
 * thread (db_cancel_start) is shared by every pool.
 */
#ifndef DB_POOL_H
#define DB_POOL_H

#include <h2o/socket.h>
#include <libpq-fe.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/breaker.h"
#include "base/timer.h"

#define DB_MAX_BATCH  4 /* the caller's statements; the pool may add one */
#define DB_MAX_PARAMS 16

typedef struct db_pool db_pool_t;
typedef struct db_op db_op_t;

/* A statement: prepared under `name` on every connection, or sent as
   unnamed `sql` (DATABASE_PREPARED=0, e.g. behind PgBouncer). */
typedef struct {
    const char *name;
    const char *sql;
} db_stmt_t;

/* One statement of a batch: text-format parameters (NULL value = SQL NULL).
   Results come back in binary format (see db/row.h for decoding). */
typedef struct {
    const db_stmt_t *stmt;
    int nparams;
    const char *const *values;
    const int *lengths; /* NULL: values are NUL-terminated */
} db_query_t;

typedef struct {
    const db_query_t *qs;
    size_t n;                /* 1..DB_MAX_BATCH */
    uint64_t deadline_ms;    /* monotonic: the request's deadline */
    bool writes;             /* guarded: does nothing if it starts after the deadline */
    int64_t lock_timeout_ms; /* writes only; 0: lock waits end at the deadline */
} db_batch_t;

typedef struct {
    const char *conninfo;       /* from db_conninfo_prepare(): no DNS on the loop */
    unsigned conns;             /* data connections of this worker (+1 heartbeat) */
    unsigned max_pipeline;      /* batches in flight per connection */
    unsigned max_waiters;       /* batches waiting for a slot */
    bool prepared;              /* named prepared statements and session settings */
    int64_t session_timeout_ms; /* prepared mode: the session's statement_timeout */
    int64_t heartbeat_ms;
    int64_t stall_ms;
    const db_stmt_t *stmts; /* prepared on every data connection */
    size_t nstmts;
    unsigned breaker_threshold;
    uint64_t breaker_cooldown_ms;
    unsigned worker_id; /* for logs */
    /* decremented when this pool becomes healthy, incremented when it stops
       being healthy (readiness across workers); starts counted as down */
    _Atomic int *down_counter;
} db_pool_opts_t;

/*
 * err == 0: every statement succeeded; results[i] is statement i's result.
 * err == ERR_IO: a statement failed; see db_error_sqlstate(). Results are
 * still given (the failed one, then PIPELINE_ABORTED ones).
 * err == ERR_TIMEOUT: PostgreSQL started the batch after its deadline and
 * did nothing (writes only); results are NULL.
 * err == ERR_UNAVAILABLE: the connection was lost or PostgreSQL stalled;
 * results are NULL. Whether a write committed is then unknown.
 * The pool frees the results after the callback returns.
 */
typedef void (*db_cb)(db_op_t *op, int err, PGresult *const *results, size_t nresults);

typedef struct {
    unsigned size;
    unsigned ready;
    unsigned busy; /* connections with work in flight */
    unsigned waiting;
    unsigned max_waiters;
    bool healthy;
    uint64_t heartbeat_age_ms; /* since the last answered heartbeat (UINT64_MAX: never) */
    breaker_state_t breaker;
} db_pool_stats_t;

db_pool_t *db_pool_new(h2o_loop_t *loop, timer_heap_t *timers, const db_pool_opts_t *opts);
/* Closes every connection. Ops not cancelled yet get their callback with
   ERR_UNAVAILABLE (requests were answered or cancelled before shutdown got
   here; what is left is fire-and-forget work). Callbacks must not submit. */
void db_pool_free(db_pool_t *p);

int db_submit(db_pool_t *p, const db_batch_t *b, db_cb cb, void *arg, db_op_t **out)
    __attribute__((warn_unused_result));
void *db_op_arg(const db_op_t *op);
/* The callback will not run. Safe from any callback, any state. A batch
   PostgreSQL is running gets a cancel request. */
void db_op_cancel(db_op_t *op);

/* The SQLSTATE of the first failed result ("23505"), or "" if none. */
const char *db_error_sqlstate(PGresult *const *results, size_t n);

bool db_pool_healthy(const db_pool_t *p);
void db_pool_stats(const db_pool_t *p, db_pool_stats_t *out);

/* The cancel helper thread, shared by all pools. Start before workers (and
   after the termination signals are blocked); stop after they are gone. */
int db_cancel_start(void) __attribute__((warn_unused_result));
void db_cancel_stop(void);

#endif
