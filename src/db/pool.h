/*
 * pool: asynchronous PostgreSQL for one worker: a few connections in libpq
 * pipeline mode, driven by the worker's h2o loop.
 *
 * A unit of work is a batch: up to DB_MAX_BATCH prepared statements sent back
 * to back and closed by one Sync, so PostgreSQL runs them as one implicit
 * transaction (all or nothing) with no client round trip inside it. No
 * connection ever sits idle in an open transaction, which is why pipelined
 * connections can carry writes too (docs/adr/0002-db-batches.md).
 *
 * Contract: db_submit() either fails at once (the callback never runs) or
 * returns 0, and then the callback runs exactly once, later, from the loop —
 * unless db_op_cancel() was called first. Params are copied at submit.
 *
 * Resilience: connections connect without blocking (PQconnectStart/Poll),
 * reconnect with jittered exponential backoff, and are re-prepared. Waiting
 * for a free pipeline slot is bounded in count (max_waiters) and in time (the
 * request's deadline cancels the op). With no healthy connection, or with the
 * circuit breaker open, db_submit fails fast with ERR_UNAVAILABLE. Cancelling
 * an op that PostgreSQL is running sends a cancel request from a helper
 * thread (PQcancel blocks; PostgreSQL 15 has no asynchronous cancel).
 *
 * Not thread-safe: a pool belongs to its worker's thread.
 */
#ifndef DB_POOL_H
#define DB_POOL_H

#include <h2o.h>
#include <libpq-fe.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/breaker.h"
#include "base/timer.h"

#define DB_MAX_BATCH  4
#define DB_MAX_PARAMS 16

typedef struct db_pool db_pool_t;
typedef struct db_op db_op_t;

typedef struct {
    const char *name; /* prepared statement name */
    const char *sql;
} db_stmt_t;

typedef struct {
    const char *conninfo;
    unsigned conns;        /* connections of this worker */
    unsigned max_pipeline; /* batches in flight per connection */
    unsigned max_waiters;  /* batches waiting for a slot */
    int64_t statement_timeout_ms;
    const db_stmt_t *stmts; /* prepared on every connection */
    size_t nstmts;
    unsigned breaker_threshold;
    uint64_t breaker_cooldown_ms;
    unsigned worker_id; /* for logs */
    /* decremented when this pool gets its first healthy connection, and
       incremented when it loses its last (readiness across workers) */
    _Atomic int *down_counter;
} db_pool_opts_t;

/* One statement of a batch: text-format parameters (NULL value = SQL NULL).
   Results come back in binary format (see db/row.h for decoding). */
typedef struct {
    const char *stmt;
    int nparams;
    const char *const *values;
    const int *lengths; /* NULL: values are NUL-terminated */
} db_query_t;

/*
 * err == 0: every statement succeeded; results[i] is statement i's result.
 * err == ERR_IO: a statement failed; see db_error_sqlstate(). Results are
 * still given (the failed one, then PIPELINE_ABORTED ones).
 * err == ERR_UNAVAILABLE: the connection was lost; results are NULL.
 * The pool frees the results after the callback returns.
 */
typedef void (*db_cb)(db_op_t *op, int err, PGresult *const *results, size_t nresults);

typedef struct {
    unsigned size;
    unsigned ready;
    unsigned busy; /* connections with work in flight */
    unsigned waiting;
    unsigned max_waiters;
    breaker_state_t breaker;
} db_pool_stats_t;

db_pool_t *db_pool_new(h2o_loop_t *loop, timer_heap_t *timers, const db_pool_opts_t *opts);
/* Closes every connection. Ops not cancelled yet get their callback with
   ERR_UNAVAILABLE (requests were answered or cancelled before shutdown got
   here; what is left is fire-and-forget work). Callbacks must not submit. */
void db_pool_free(db_pool_t *p);

int db_submit(db_pool_t *p, const db_query_t *qs, size_t n, uint64_t deadline_ms, db_cb cb, void *arg,
              db_op_t **out) __attribute__((warn_unused_result));
void *db_op_arg(const db_op_t *op);
/* The callback will not run. Safe from any callback, any state. */
void db_op_cancel(db_op_t *op);

/* The SQLSTATE of the first failed result ("23505"), or "" if none. */
const char *db_error_sqlstate(PGresult *const *results, size_t n);

bool db_pool_healthy(const db_pool_t *p);
void db_pool_stats(const db_pool_t *p, db_pool_stats_t *out);

/* The cancel helper thread, shared by all pools. Start before workers. */
int db_cancel_start(void) __attribute__((warn_unused_result));
void db_cancel_stop(void);

#endif
