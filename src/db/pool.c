/*
 * pool: connection state machine, batch FIFO per connection, waiters, the
 * heartbeat, and the cancel thread.
 *
 *   DOWN --retry timer--> CONNECTING --PQconnectPoll OK--> SETUP --set up--> READY
 *     ^                        |                             |                 |
 *     +------------- any error (fail queued work, back off) -+-----------------+
 *
 * SETUP is a few batches sent back to back: session settings and one
 * prepare per statement (prepared mode only), then a clock query whose
 * answer makes the connection READY. The heartbeat connection runs only
 * clock queries; each answer is a heartbeat and a sample of the offset
 * between PostgreSQL's clock and ours (write guards compare deadlines on
 * PostgreSQL's clock).
 *
 * The read loop is bounded by our own FIFO of batches (libpq's PQgetResult
 * returns NULL forever when nothing is queued). Each batch yields, per
 * statement, one result then NULL, then PGRES_PIPELINE_SYNC.
 */
#include "db/pool.h"
#include "db/secret.h"

#include <errno.h>
#include <fcntl.h>
#include <h2o/timeout.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/rand.h"
#include "db/row.h"
#include "obs/log.h"
#include "obs/metrics.h"
#include "obs/trace.h"
#include "base/banned.h"

#define CONNECT_TIMEOUT_MS 5000
#define BACKOFF_MIN_MS     100
#define BACKOFF_MAX_MS     5000
/* A read whose time left is within this of the session's statement_timeout
   needs no statement_timeout of its own (prepared mode). */
#define READ_TIMEOUT_SLACK_MS 250
/* A cancel that has not stopped its batch by then was not delivered: the
   connection is failed instead (PostgreSQL then aborts the transaction). */
#define CANCEL_WAIT_MS 1000
/* client_connection_check_interval (prepared mode): how soon a backend
   notices that we closed its connection while it runs a statement. */
#define CLIENT_CHECK_MS   "1000"
#define SQLSTATE_CANCELED "57014"
#define SQLSTATE_TOO_LATE "57A01" /* api_batch_begin: the deadline had passed */

typedef enum { CONN_DOWN, CONN_CONNECTING, CONN_SETUP, CONN_READY } conn_state_t;
typedef enum { OP_REQUEST, OP_SETUP, OP_PREPARE, OP_CLOCK } op_kind_t;

typedef struct conn conn_t;
typedef struct cancel_target cancel_target_t;

/* A FIFO of batches: a connection's in-flight pipeline, or the waiters. */
typedef struct {
    struct db_op *head, *tail;
    unsigned n;
} opq_t;

struct db_op {
    db_op_t *next;
    db_pool_t *pool;
    conn_t *conn; /* NULL while waiting for a slot */
    db_cb cb;
    void *arg;
    op_kind_t kind;
    bool cancelled;
    bool writes;
    bool retried;  /* re-run once after a cancel meant for another batch */
    bool prefixed; /* res[0] is the pool's settings statement */
    uint64_t seq;  /* position on its connection, from 1 */
    uint64_t deadline_ms;
    int64_t lock_timeout_ms;
    uint64_t sent_us;         /* OP_CLOCK: for the offset estimate */
    trace_client_t span;      /* OP_REQUEST: its scope, CLIENT span and submit time */
    const db_stmt_t *prepare; /* OP_PREPARE */
    const char *sql;          /* OP_SETUP, OP_CLOCK: unnamed, no parameters */
    size_t nq;
    size_t got;
    PGresult *res[DB_MAX_BATCH + 1];
    struct {
        const db_stmt_t *stmt;
        int nparams;
        const char *values[DB_MAX_PARAMS];
        int lengths[DB_MAX_PARAMS];
    } q[DB_MAX_BATCH];
    char data[]; /* copies of parameter values */
};

struct conn {
    db_pool_t *pool;
    unsigned idx;
    bool heartbeat; /* the pool's heartbeat connection: never carries requests */
    conn_state_t state;
    PGconn *pg;
    h2o_socket_t *sock;
    int sock_src_fd; /* PQsocket() the h2o socket was made from */
    bool write_armed;
    PostgresPollingStatusType poll;
    opq_t fifo;      /* sent (and, from `unsent` on, queued) batches, in order */
    db_op_t *unsent; /* first op of the FIFO not yet handed to libpq */
    uint64_t next_seq;
    bool tcp; /* the socket is TCP (corkable), not a Unix socket */
    unsigned backoff_ms;
    struct timer retry;        /* DOWN: when to reconnect */
    struct timer timeout;      /* CONNECTING/SETUP: give up */
    struct timer cancel_watch; /* a cancel was sent for the head batch */
    uint64_t cancel_seq;       /* ... this one */
    cancel_target_t *target;   /* shared with the cancel thread (READY only) */
    bool logged_down;
};

struct db_pool {
    h2o_loop_t *loop;
    timer_heap_t *timers;
    db_pool_opts_t opts;
    char *conninfo;
    breaker_t breaker;
    unsigned ready; /* data connections READY */
    opq_t waiters;  /* batches waiting for a pipeline slot */
    bool healthy;
    bool counted_down; /* contributes 1 to opts.down_counter */
    /* the heartbeat */
    struct timer hb_timer;
    bool hb_alive;           /* the last heartbeat was answered in time */
    uint64_t hb_ok_ms;       /* when (0: never) */
    int64_t clock_offset_us; /* PostgreSQL's wall clock minus ours */
    uint64_t best_rtt_us;    /* of the sample the offset came from */
    bool logged_stall;
    char session_sql[320]; /* prepared mode: the session settings */
    /* Batches submitted during one loop turn are sent together at its end
       (a zero-length h2o timeout runs after the turn's I/O callbacks): one
       corked burst per connection wakes PostgreSQL once, not per request. */
    h2o_timeout_t send_turn;
    h2o_timeout_entry_t send_entry;
    conn_t hb;
    conn_t conns[];
};

/* The pool's own statements (prepared too, in prepared mode). */
static const db_stmt_t stmt_read_timeout = {"db_read_timeout",
                                            "SELECT set_config('statement_timeout', $1, true)"};
static const db_stmt_t stmt_guard = {"db_guard", "SELECT api_batch_begin($1::int8, $2::int4)"};
static const char clock_sql[] = "SELECT clock_timestamp()";

/* ---- the cancel thread ----
 *
 * PQcancel blocks (PostgreSQL 15 has no asynchronous cancel), so workers
 * hand cancel requests to this thread through a bounded FIFO. A request
 * names its target connection and the batch it means; the thread sends it
 * only if that batch is still the one the connection is running (the
 * worker publishes the head batch's sequence number in the target), so a
 * late cancel does not hit whatever runs next. The check and the send are
 * not atomic - no lock can make them so, the backend moves on by itself -
 * so a batch that fails with "canceled" although nobody meant it is run
 * again once (it rolled back entirely: a batch is one transaction). A
 * request older than CANCEL_WAIT_MS is dropped: by then the worker has
 * given up on it and failed the connection.
 */

struct cancel_target {
    _Atomic unsigned refs;
    _Atomic uint64_t running; /* seq of the batch at the pipeline's head; 0: none */
    PGcancel *cancel;
};

#define CANCEL_QUEUE_MAX 256

typedef struct {
    cancel_target_t *target;
    uint64_t seq;
    uint64_t posted_ms;
} cancel_req_t;

static pthread_mutex_t cancel_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cancel_cond = PTHREAD_COND_INITIALIZER;
static cancel_req_t cancel_queue[CANCEL_QUEUE_MAX];
static unsigned cancel_head, cancel_len;
static bool cancel_stop;
static bool cancel_exited;
static bool cancel_running;
static pthread_t cancel_thread;

static void target_release(cancel_target_t *t)
{
    if (t != NULL && atomic_fetch_sub(&t->refs, 1) == 1) {
        PQfreeCancel(t->cancel);
        free(t);
    }
}

static void *cancel_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&cancel_lock);
    for (;;) {
        while (cancel_len == 0 && !cancel_stop) {
            pthread_cond_wait(&cancel_cond, &cancel_lock);
        }
        if (cancel_len == 0) {
            break; /* stop, and nothing left to send */
        }
        cancel_req_t r = cancel_queue[cancel_head];
        cancel_head = (cancel_head + 1) % CANCEL_QUEUE_MAX;
        cancel_len--;
        pthread_mutex_unlock(&cancel_lock);
        bool current = atomic_load(&r.target->running) == r.seq;
        if (current && clock_mono_ms() - r.posted_ms < CANCEL_WAIT_MS) {
            char errbuf[256];
            if (!PQcancel(r.target->cancel, errbuf, sizeof(errbuf))) {
                log_warn("PostgreSQL cancel request failed: %s", errbuf);
            }
        }
        target_release(r.target);
        pthread_mutex_lock(&cancel_lock);
    }
    cancel_exited = true;
    pthread_cond_broadcast(&cancel_cond);
    pthread_mutex_unlock(&cancel_lock);
    return NULL;
}

int db_cancel_start(void)
{
    cancel_stop = false;
    cancel_exited = false;
    if (pthread_create(&cancel_thread, NULL, cancel_main, NULL) != 0) {
        return ERR_IO;
    }
    cancel_running = true;
    return 0;
}

void db_cancel_stop(void)
{
    if (!cancel_running) {
        return;
    }
    /* A PQcancel to a frozen server blocks until the server answers: wait a
       bounded time, then leave the thread to the process's exit. */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 2;
    pthread_mutex_lock(&cancel_lock);
    cancel_stop = true;
    pthread_cond_broadcast(&cancel_cond);
    while (!cancel_exited) {
        if (pthread_cond_timedwait(&cancel_cond, &cancel_lock, &until) == ETIMEDOUT) {
            break;
        }
    }
    bool exited = cancel_exited;
    pthread_mutex_unlock(&cancel_lock);
    if (exited) {
        pthread_join(cancel_thread, NULL);
    } else {
        log_warn("a PostgreSQL cancel request is still blocked at exit; not waiting for it");
        pthread_detach(cancel_thread);
    }
    cancel_running = false;
}

/* Queues a cancel for c's head batch. Returns false when it cannot be sent
   (no thread, queue full): the caller fails the connection instead. */
static bool post_cancel(conn_t *c, uint64_t seq)
{
    if (!cancel_running || c->target == NULL) {
        return false;
    }
    bool ok = false;
    pthread_mutex_lock(&cancel_lock);
    if (cancel_len < CANCEL_QUEUE_MAX && !cancel_stop) {
        atomic_fetch_add(&c->target->refs, 1);
        cancel_queue[(cancel_head + cancel_len) % CANCEL_QUEUE_MAX] =
            (cancel_req_t){.target = c->target, .seq = seq, .posted_ms = clock_mono_ms()};
        cancel_len++;
        pthread_cond_signal(&cancel_cond);
        ok = true;
    }
    pthread_mutex_unlock(&cancel_lock);
    return ok;
}

/* ---- ops ---- */

static void op_clear_results(db_op_t *op)
{
    for (size_t i = 0; i < op->got; i++) {
        PQclear(op->res[i]);
    }
    op->got = 0;
}

static void op_free(db_op_t *op)
{
    op_clear_results(op);
    free(op);
}

/* The label of a batch: its first statement's place in opts.stmts (by
   name pointer: the service's table and the pool's copy share them). */
static unsigned stmt_label(const db_pool_t *p, const db_stmt_t *st)
{
    for (size_t i = 0; i < p->opts.nstmts; i++) {
        if (p->opts.stmts[i].name == st->name) {
            return (unsigned)i;
        }
    }
    return UINT32_MAX; /* "other" */
}

/* A request batch is over: its duration and span. */
static void op_observe(db_op_t *op, int err)
{
    db_pool_t *p = op->pool;
    uint64_t now = trace_now_us();
    metrics_observe(MH_DB_BATCH, stmt_label(p, op->q[0].stmt), now - op->span.start_us);
    if (op->span.parent.s.sampled) {
        size_t skip = op->prefixed ? 1 : 0;
        trace_client_info_t info = {
            .db = TRACE_DB_POSTGRESQL, .nstmts = (unsigned)op->nq, .sql = op->q[0].stmt->sql, .end_us = now};
        for (size_t i = 0; i < op->nq && i < TRACE_MAX_STMTS; i++) {
            info.stmts[i] = op->q[i].stmt->name;
        }
        const char *state = err == ERR_IO ? db_error_sqlstate(op->res + skip, op->got - skip) : "";
        info.error = err == 0                 ? NULL
                     : err == ERR_TIMEOUT     ? "timeout"
                     : err == ERR_UNAVAILABLE ? "unavailable"
                     : state[0] != '\0'       ? state
                                              : "error";
        trace_client_end(&op->span, &info);
    }
}

static void op_complete(db_op_t *op, int err)
{
    if (op->kind == OP_REQUEST) {
        op_observe(op, err);
    }
    if (!op->cancelled && op->cb != NULL) {
        size_t skip = op->prefixed ? 1 : 0;
        bool give = err == 0 || err == ERR_IO;
        /* the callback runs in the scope the batch was submitted in */
        const trace_scope_t *prev = trace_scope_enter(op->span.parent.valid ? &op->span.parent.s : NULL);
        op->cb(op, err, give ? op->res + skip : NULL, give ? op->got - skip : 0);
        trace_scope_leave(prev);
    }
    op_free(op);
}

void *db_op_arg(const db_op_t *op)
{
    return op->arg;
}

const char *db_error_sqlstate(PGresult *const *results, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (PQresultStatus(results[i]) == PGRES_FATAL_ERROR) {
            const char *s = PQresultErrorField(results[i], PG_DIAG_SQLSTATE);
            return s ? s : "";
        }
    }
    return "";
}

/* ---- health ---- */

/* One predicate for readiness and for failing fast: a ready connection, a
   heartbeat answered in time, a closed breaker. */
/* The pool's gauges on this worker's metrics shard; called wherever they
   may have changed (a loop over the few data connections). */
static void publish(const db_pool_t *p)
{
    int64_t idle = 0, busy = 0, connecting = 0, down = 0, in_use = 0;
    for (unsigned i = 0; i < p->opts.conns; i++) {
        const conn_t *c = &p->conns[i];
        in_use += c->fifo.n;
        switch (c->state) {
        case CONN_READY:
            if (c->fifo.n > 0) {
                busy++;
            } else {
                idle++;
            }
            break;
        case CONN_CONNECTING:
        case CONN_SETUP:
            connecting++;
            break;
        case CONN_DOWN:
            down++;
            break;
        }
    }
    metrics_set(M_DB_CONN_IDLE, idle);
    metrics_set(M_DB_CONN_BUSY, busy);
    metrics_set(M_DB_CONN_CONNECTING, connecting);
    metrics_set(M_DB_CONN_DOWN, down);
    metrics_set(M_DB_IN_USE, in_use);
    metrics_set(M_DB_WAITING, p->waiters.n);
}

static void on_breaker_change(void *arg, breaker_state_t to)
{
    (void)arg;
    /* exported as 0 closed, 1 half-open, 2 open */
    metrics_set(M_BREAKER_PG, to == BREAKER_OPEN ? 2 : to == BREAKER_HALF_OPEN ? 1 : 0);
    metrics_inc(to == BREAKER_OPEN        ? M_BREAKER_PG_OPEN
                : to == BREAKER_HALF_OPEN ? M_BREAKER_PG_HALF_OPEN
                                          : M_BREAKER_PG_CLOSED);
}

static void update_health(db_pool_t *p)
{
    bool healthy = p->ready > 0 && p->hb_alive && p->breaker.state == BREAKER_CLOSED;
    if (healthy == p->healthy) {
        return;
    }
    p->healthy = healthy;
    if (p->opts.down_counter != NULL && p->counted_down == healthy) {
        p->counted_down = !healthy;
        atomic_fetch_add(p->opts.down_counter, healthy ? -1 : 1);
    }
}

/* PostgreSQL answered something. An open breaker stays open until its
   cool-down is over and a heartbeat (the half-open probe) is answered. */
static void pg_answered(db_pool_t *p)
{
    if (p->breaker.state != BREAKER_OPEN) {
        breaker_success(&p->breaker);
    }
}

/* ---- connection I/O ---- */

static void conn_fail(conn_t *c, const char *why);
static void conn_on_readable(h2o_socket_t *sock, const char *err);
static void conn_on_writable(h2o_socket_t *sock, const char *err);
static void pool_dispatch(db_pool_t *p);
static void queue_op(conn_t *c, db_op_t *op);

static void arm_write(conn_t *c)
{
    /* notify_write is one-shot and asserts if armed twice (2.2.5) */
    if (!c->write_armed && c->sock != NULL) {
        c->write_armed = true;
        h2o_socket_notify_write(c->sock, conn_on_writable);
    }
}

static void conn_flush(conn_t *c)
{
    int r = PQflush(c->pg);
    if (r < 0) {
        conn_fail(c, PQerrorMessage(c->pg));
    } else if (r > 0) {
        arm_write(c);
    }
}

static int attach_socket(conn_t *c)
{
    int src = PQsocket(c->pg);
    if (src < 0) {
        return ERR_IO;
    }
    if (c->sock != NULL && src == c->sock_src_fd) {
        return 0;
    }
    if (c->sock != NULL) {
        /* libpq moved to another socket (next address, SSL fallback) */
        h2o_socket_read_stop(c->sock);
        h2o_socket_close(c->sock);
        c->sock = NULL;
        c->write_armed = false;
    }
    /* h2o closes the fd it owns; libpq closes its own: give h2o a dup. */
    int fd = fcntl(src, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) {
        return ERR_IO;
    }
    c->sock = h2o_evloop_socket_create(c->pool->loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    c->sock->data = c;
    c->sock_src_fd = src;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    c->tcp = getsockname(src, (struct sockaddr *)&ss, &sl) == 0 &&
             (ss.ss_family == AF_INET || ss.ss_family == AF_INET6);
    h2o_socket_read_start(c->sock, conn_on_readable);
    return 0;
}

static void close_socket(conn_t *c)
{
    if (c->sock != NULL) {
        c->sock->data = NULL; /* a late notify must not reach c */
        h2o_socket_read_stop(c->sock);
        h2o_socket_close(c->sock);
        c->sock = NULL;
    }
    c->write_armed = false;
}

static void opq_push(opq_t *q, db_op_t *op)
{
    op->next = NULL;
    if (q->tail) {
        q->tail->next = op;
    } else {
        q->head = op;
    }
    q->tail = op;
    q->n++;
}

static db_op_t *opq_pop(opq_t *q)
{
    db_op_t *op = q->head;
    q->head = op->next;
    if (q->head == NULL) {
        q->tail = NULL;
    }
    q->n--;
    return op;
}

/* Takes op out of q wherever it is. Returns whether it was there. */
static bool opq_remove(opq_t *q, db_op_t *op)
{
    db_op_t **pp = &q->head;
    db_op_t *prev = NULL;
    while (*pp != NULL && *pp != op) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp == NULL) {
        return false;
    }
    *pp = op->next;
    if (q->tail == op) {
        q->tail = prev;
    }
    q->n--;
    return true;
}

static void fifo_push(conn_t *c, db_op_t *op)
{
    op->conn = c;
    op->seq = ++c->next_seq;
    opq_push(&c->fifo, op);
}

/* The head batch changed: tell the cancel thread which batch runs now, and
   cancel it at once if its request has already gone. */
static void head_changed(conn_t *c)
{
    db_op_t *head = c->fifo.head;
    bool sent = head != NULL && head != c->unsent;
    if (c->target != NULL) {
        atomic_store(&c->target->running, sent ? head->seq : 0);
    }
    if (sent && head->cancelled && c->cancel_seq != head->seq) {
        c->cancel_seq = head->seq;
        if (!post_cancel(c, head->seq) ||
            timer_arm(c->pool->timers, &c->cancel_watch, clock_mono_ms() + CANCEL_WAIT_MS) != 0) {
            conn_fail(c, "a cancel request could not be sent");
        }
    }
}

static void on_cancel_watch(struct timer *t)
{
    conn_t *c = t->data;
    db_op_t *head = c->fifo.head;
    if (head != NULL && head->seq == c->cancel_seq && c->state != CONN_DOWN) {
        /* PostgreSQL aborts a transaction whose client went away (for a
           statement running, within client_connection_check_interval). */
        conn_fail(c, "a cancel request was not delivered in time");
    }
}

static bool send_query(conn_t *c, const db_stmt_t *st, int n, const char *const *values, const int *lengths)
{
    /* binary results: uuid, int8 and timestamptz arrive as fixed-size
       integers, cheaper to decode than their text forms */
    if (c->pool->opts.prepared) {
        return PQsendQueryPrepared(c->pg, st->name, n, values, lengths, NULL, 1);
    }
    return PQsendQueryParams(c->pg, st->sql, n, NULL, values, lengths, NULL, 1);
}

/* The settings statement a request batch starts with, if any. */
static bool send_prefix(conn_t *c, db_op_t *op)
{
    db_pool_t *p = c->pool;
    uint64_t now = clock_mono_ms();
    int64_t left_ms = op->deadline_ms > now ? (int64_t)(op->deadline_ms - now) : 0;
    char a[24], b[24];
    op->prefixed = false;
    if (op->writes) {
        int64_t deadline_pg_us = clock_wall_us() + left_ms * 1000 + p->clock_offset_us;
        int64_t lock = op->lock_timeout_ms > 0 && op->lock_timeout_ms < left_ms ? op->lock_timeout_ms : 0;
        snprintf(a, sizeof(a), "%lld", (long long)deadline_pg_us);
        snprintf(b, sizeof(b), "%lld", (long long)lock);
        const char *v[] = {a, b};
        op->prefixed = true;
        return send_query(c, &stmt_guard, 2, v, NULL);
    }
    if (!p->opts.prepared || left_ms < p->opts.session_timeout_ms - READ_TIMEOUT_SLACK_MS) {
        snprintf(a, sizeof(a), "%lld", (long long)(left_ms > 0 ? left_ms : 1));
        const char *v[] = {a};
        op->prefixed = true;
        return send_query(c, &stmt_read_timeout, 1, v, NULL);
    }
    return true;
}

static int send_op(conn_t *c, db_op_t *op)
{
    bool ok = true;
    switch (op->kind) {
    case OP_REQUEST:
        ok = send_prefix(c, op);
        for (size_t i = 0; ok && i < op->nq; i++) {
            ok = send_query(c, op->q[i].stmt, op->q[i].nparams, op->q[i].values, op->q[i].lengths);
        }
        break;
    case OP_PREPARE:
        ok = PQsendPrepare(c->pg, op->prepare->name, op->prepare->sql, 0, NULL);
        break;
    case OP_CLOCK:
        op->sent_us = clock_mono_us();
        __attribute__((fallthrough));
    case OP_SETUP:
        ok = PQsendQueryParams(c->pg, op->sql, 0, NULL, NULL, NULL, NULL, 1);
        break;
    }
    if (!ok || !PQpipelineSync(c->pg)) {
        return ERR_IO;
    }
    return 0;
}

static db_op_t *op_new(db_pool_t *p, const db_batch_t *b)
{
    size_t data = 0;
    for (size_t i = 0; i < b->n; i++) {
        for (int k = 0; k < b->qs[i].nparams; k++) {
            const char *v = b->qs[i].values[k];
            if (v != NULL) {
                data += (b->qs[i].lengths ? (size_t)b->qs[i].lengths[k] : strlen(v)) + 1;
            }
        }
    }
    db_op_t *op = malloc(sizeof(*op) + data);
    if (op == NULL) {
        return NULL;
    }
    *op = (db_op_t){.pool = p,
                    .kind = OP_REQUEST,
                    .writes = b->writes,
                    .deadline_ms = b->deadline_ms,
                    .lock_timeout_ms = b->lock_timeout_ms,
                    .nq = b->n};
    trace_client_begin(&op->span);
    char *d = op->data;
    for (size_t i = 0; i < b->n; i++) {
        op->q[i].stmt = b->qs[i].stmt;
        op->q[i].nparams = b->qs[i].nparams;
        for (int k = 0; k < b->qs[i].nparams; k++) {
            const char *v = b->qs[i].values[k];
            if (v == NULL) {
                op->q[i].values[k] = NULL;
                op->q[i].lengths[k] = 0;
                continue;
            }
            size_t n = b->qs[i].lengths ? (size_t)b->qs[i].lengths[k] : strlen(v);
            memcpy(d, v, n);
            d[n] = '\0';
            op->q[i].values[k] = d;
            op->q[i].lengths[k] = (int)n;
            d += n + 1;
        }
    }
    return op;
}

static db_op_t *internal_op(conn_t *c, op_kind_t kind)
{
    db_op_t *op = calloc(1, sizeof(*op));
    if (op != NULL) {
        op->pool = c->pool;
        op->kind = kind;
        op->nq = 1;
    }
    return op;
}

/* ---- set-up ---- */

static void connected(conn_t *c)
{
    db_pool_t *p = c->pool;
    timer_cancel(p->timers, &c->timeout);
    c->state = CONN_READY;
    c->backoff_ms = 0;
    if (!c->heartbeat) {
        cancel_target_t *t = calloc(1, sizeof(*t));
        if (t != NULL) {
            t->cancel = PQgetCancel(c->pg);
            atomic_init(&t->refs, 1);
            if (t->cancel == NULL) {
                free(t);
                t = NULL;
            }
        }
        c->target = t; /* NULL: cancels for this connection fail it instead */
        p->ready++;
    }
    if (c->logged_down) {
        log_info("db worker %u %s: connected again", p->opts.worker_id, c->heartbeat ? "heartbeat" : "conn");
        c->logged_down = false;
    }
    pg_answered(p);
    update_health(p);
    head_changed(c);
    publish(p);
}

/* A clock answer: a heartbeat, and a sample of the clock offset. */
static void clock_sample(db_pool_t *p, db_op_t *op)
{
    int64_t pg_us;
    uint64_t rtt = clock_mono_us() - op->sent_us;
    if (op->got < 1 || PQresultStatus(op->res[0]) != PGRES_TUPLES_OK ||
        db_row_timestamptz(op->res[0], 0, 0, &pg_us) != 0) {
        return;
    }
    /* the sample with the shortest round trip bounds the error best; a
       fresh one replaces it once it is a minute old (clocks drift) */
    if (p->hb_ok_ms == 0 || rtt <= p->best_rtt_us || clock_mono_ms() - p->hb_ok_ms > 60000) {
        p->best_rtt_us = rtt;
        p->clock_offset_us = pg_us - (clock_wall_us() - (int64_t)rtt / 2);
    }
    p->hb_ok_ms = clock_mono_ms();
    if (!p->hb_alive && p->logged_stall) {
        log_info("db worker %u: PostgreSQL answers again", p->opts.worker_id);
        p->logged_stall = false;
    }
    p->hb_alive = true;
}

/*
 * Set-up of a READY-to-be connection: its batches are queued in order and
 * complete in order; the last one (a clock query) makes it READY.
 */
static void conn_start_setup(conn_t *c)
{
    db_pool_t *p = c->pool;
    if (PQsetnonblocking(c->pg, 1) != 0 || !PQenterPipelineMode(c->pg)) {
        conn_fail(c, PQerrorMessage(c->pg));
        return;
    }
    c->state = CONN_SETUP;
    bool prepared = p->opts.prepared && !c->heartbeat;
    size_t nprepares = prepared ? p->opts.nstmts + 2 : 0;
    if (prepared) {
        db_op_t *op = internal_op(c, OP_SETUP);
        if (op == NULL) {
            conn_fail(c, "out of memory");
            return;
        }
        op->sql = p->session_sql;
        queue_op(c, op);
    }
    for (size_t i = 0; i < nprepares; i++) {
        db_op_t *op = internal_op(c, OP_PREPARE);
        if (op == NULL) {
            conn_fail(c, "out of memory");
            return;
        }
        op->prepare = i < p->opts.nstmts    ? &p->opts.stmts[i]
                      : i == p->opts.nstmts ? &stmt_read_timeout
                                            : &stmt_guard;
        queue_op(c, op);
    }
    db_op_t *op = internal_op(c, OP_CLOCK);
    if (op == NULL) {
        conn_fail(c, "out of memory");
        return;
    }
    op->sql = clock_sql;
    queue_op(c, op);
}

static void on_notice(void *arg, const char *message)
{
    (void)arg;
    log_debug("postgres: %s", message); /* never to stderr from a worker */
}

static void conn_poll_connect(conn_t *c)
{
    c->poll = PQconnectPoll(c->pg);
    if (c->poll != PGRES_POLLING_FAILED && attach_socket(c) != 0) {
        conn_fail(c, "no socket");
        return;
    }
    switch (c->poll) {
    case PGRES_POLLING_WRITING:
        arm_write(c);
        return;
    case PGRES_POLLING_READING:
        return; /* the read callback is always on */
    case PGRES_POLLING_OK:
        conn_start_setup(c);
        return;
    default:
        conn_fail(c, PQerrorMessage(c->pg));
        return;
    }
}

static void conn_on_timeout(struct timer *t)
{
    conn_t *c = t->data;
    conn_fail(c, "timed out connecting");
}

static void conn_connect(conn_t *c)
{
    db_pool_t *p = c->pool;
    c->state = CONN_CONNECTING; /* so that conn_fail schedules a retry */
    c->pg = PQconnectStart(p->conninfo);
    if (c->pg == NULL) {
        conn_fail(c, "out of memory");
        return;
    }
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        conn_fail(c, PQerrorMessage(c->pg));
        return;
    }
    PQsetNoticeProcessor(c->pg, on_notice, NULL);
    c->poll = PGRES_POLLING_WRITING;
    if (timer_arm(p->timers, &c->timeout, clock_mono_ms() + CONNECT_TIMEOUT_MS) != 0 ||
        attach_socket(c) != 0) {
        conn_fail(c, "cannot watch the socket");
        return;
    }
    arm_write(c);
}

static void conn_on_retry(struct timer *t)
{
    conn_connect(t->data);
}

/* Takes every batch off c, fails them, and schedules a reconnect. */
static void conn_fail(conn_t *c, const char *why)
{
    db_pool_t *p = c->pool;
    if (c->state == CONN_DOWN) {
        return;
    }
    if (!c->logged_down) {
        /* one line per outage, not one per retry */
        char msg[256];
        db_secret_redact(p->conninfo, why, msg, sizeof(msg)); /* libpq may echo the conninfo */
        log_warn("db worker %u %s %u: connection lost or refused: %s", p->opts.worker_id,
                 c->heartbeat ? "heartbeat" : "conn", c->idx, msg);
        c->logged_down = true;
    }
    if (c->state == CONN_READY && !c->heartbeat) {
        p->ready--;
    }
    if (c->target != NULL) {
        atomic_store(&c->target->running, 0); /* pending cancels: nothing to hit */
        target_release(c->target);
        c->target = NULL;
    }
    c->state = CONN_DOWN;
    timer_cancel(p->timers, &c->timeout);
    timer_cancel(p->timers, &c->cancel_watch);
    close_socket(c);
    PQfinish(c->pg);
    c->pg = NULL;
    db_op_t *list = c->fifo.head;
    c->fifo = (opq_t){0};
    c->unsent = NULL;
    breaker_failure(&p->breaker, clock_mono_ms());
    if (c->heartbeat) {
        p->hb_alive = false;
    }

    c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (c->backoff_ms > BACKOFF_MAX_MS) {
        c->backoff_ms = BACKOFF_MAX_MS;
    }
    /* +-25% jitter so workers do not reconnect in lockstep */
    uint64_t jitter = rand_u64() % (c->backoff_ms / 2 + 1);
    uint64_t delay = c->backoff_ms - c->backoff_ms / 4 + jitter;
    if (timer_arm(p->timers, &c->retry, clock_mono_ms() + delay) != 0) {
        log_error("db: cannot schedule a reconnect");
    }
    update_health(p);
    publish(p);

    /* Callbacks last: they may submit new work to the pool. */
    while (list != NULL) {
        db_op_t *op = list;
        list = op->next;
        op_complete(op, ERR_UNAVAILABLE);
    }
    if (!p->healthy) {
        db_op_t *w = p->waiters.head;
        p->waiters = (opq_t){0};
        while (w != NULL) {
            db_op_t *op = w;
            w = op->next;
            op_complete(op, ERR_UNAVAILABLE);
        }
    }
}

static conn_t *pick_conn(db_pool_t *p);

/* A request batch ended with a cancel nobody meant for it (see the cancel
   thread): it rolled back; run it again if it still has time. */
static bool retry_spurious_cancel(conn_t *c, db_op_t *op, bool failed)
{
    if (!failed || op->retried || op->cancelled || clock_mono_ms() >= op->deadline_ms ||
        strcmp(db_error_sqlstate(op->res, op->got), SQLSTATE_CANCELED) != 0) {
        return false;
    }
    op->retried = true;
    op_clear_results(op);
    conn_t *to = pick_conn(c->pool);
    if (to == NULL) {
        opq_push(&c->pool->waiters, op);
        op->conn = NULL;
    } else {
        queue_op(to, op);
    }
    return true;
}

/* A batch's Sync arrived: what it means depends on what the batch was. */
static void batch_done(conn_t *c, db_op_t *op)
{
    db_pool_t *p = c->pool;
    bool failed = op->got < op->nq + (op->prefixed ? 1 : 0);
    for (size_t i = 0; i < op->got; i++) {
        ExecStatusType s = PQresultStatus(op->res[i]);
        failed |= s != PGRES_TUPLES_OK && s != PGRES_COMMAND_OK;
    }
    switch (op->kind) {
    case OP_REQUEST: {
        pg_answered(p); /* whatever it said */
        if (retry_spurious_cancel(c, op, failed)) {
            return;
        }
        int err = failed ? ERR_IO : 0;
        if (failed && op->prefixed && PQresultStatus(op->res[0]) == PGRES_FATAL_ERROR) {
            /* the settings statement itself failed: the batch did nothing */
            const char *ss = db_error_sqlstate(op->res, 1);
            if (strcmp(ss, SQLSTATE_TOO_LATE) == 0 || strcmp(ss, SQLSTATE_CANCELED) == 0) {
                err = ERR_TIMEOUT;
            } else {
                log_error("db: a batch's settings failed (%s): %s (is the schema migrated?)", ss,
                          PQresultErrorMessage(op->res[0]));
                err = ERR_UNAVAILABLE;
            }
        }
        op_complete(op, err);
        return;
    }
    case OP_SETUP:
    case OP_PREPARE:
        if (failed) {
            const char *why = "set-up failed";
            for (size_t i = 0; i < op->got; i++) {
                if (PQresultStatus(op->res[i]) == PGRES_FATAL_ERROR) {
                    why = PQresultErrorMessage(op->res[i]);
                    break;
                }
            }
            log_error("db worker %u conn %u: set-up failed: %s", p->opts.worker_id, c->idx, why);
            op_free(op);
            conn_fail(c, "set-up failed");
            return;
        }
        op_free(op);
        return;
    case OP_CLOCK:
        if (failed) {
            op_free(op);
            conn_fail(c, "the clock query failed");
            return;
        }
        clock_sample(p, op);
        pg_answered(p); /* the heartbeat is also the half-open probe */
        op_free(op);
        if (c->state == CONN_SETUP) {
            connected(c);
        } else {
            update_health(p);
        }
        return;
    }
}

static void process_results(conn_t *c)
{
    int nulls = 0;
    while (c->fifo.head != NULL && c->fifo.head != c->unsent && c->state != CONN_DOWN && !PQisBusy(c->pg)) {
        PGresult *r = PQgetResult(c->pg);
        if (r == NULL) {
            if (++nulls > 1) {
                break; /* nothing more has arrived */
            }
            continue; /* end of one statement's results */
        }
        nulls = 0;
        db_op_t *op = c->fifo.head;
        if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            opq_pop(&c->fifo);
            timer_cancel(c->pool->timers, &c->cancel_watch);
            batch_done(c, op); /* callbacks: may queue more, or fail c */
            if (c->state != CONN_DOWN) {
                head_changed(c);
            }
            continue;
        }
        if (op->got < sizeof(op->res) / sizeof(op->res[0])) {
            op->res[op->got++] = r;
        } else {
            PQclear(r);
        }
    }
}

/* Socket errors and the connecting phase, shared by both directions.
   Returns true when the event was consumed. */
static bool connect_step(conn_t *c, const char *err, PostgresPollingStatusType ready_for)
{
    if (err != NULL) {
        conn_fail(c, err);
        return true;
    }
    if (c->state != CONN_CONNECTING) {
        return false;
    }
    if (c->poll == ready_for) {
        conn_poll_connect(c); /* only when libpq asked for this readiness */
    }
    return true;
}

static void conn_on_readable(h2o_socket_t *sock, const char *err)
{
    conn_t *c = sock->data;
    if (c == NULL) {
        return;
    }
    if (connect_step(c, err, PGRES_POLLING_READING)) {
        return;
    }
    if (!PQconsumeInput(c->pg) || PQstatus(c->pg) == CONNECTION_BAD) {
        conn_fail(c, PQerrorMessage(c->pg));
        return;
    }
    process_results(c);
    if (c->state != CONN_DOWN) {
        conn_flush(c);
    }
    if (c->state == CONN_READY && !c->heartbeat) {
        pool_dispatch(c->pool);
        publish(c->pool);
    }
}

static void conn_on_writable(h2o_socket_t *sock, const char *err)
{
    conn_t *c = sock->data;
    if (c == NULL || !c->write_armed || c->sock != sock) {
        return; /* disarmed, or a socket libpq has since replaced */
    }
    c->write_armed = false;
    if (connect_step(c, err, PGRES_POLLING_WRITING)) {
        return;
    }
    conn_flush(c);
}

/* ---- the pool ---- */

static void queue_op(conn_t *c, db_op_t *op)
{
    fifo_push(c, op);
    if (c->unsent == NULL) {
        c->unsent = op;
    }
    if (!h2o_timeout_is_linked(&c->pool->send_entry)) {
        h2o_timeout_link(c->pool->loop, &c->pool->send_turn, &c->pool->send_entry);
    }
}

static void cork(conn_t *c, int on)
{
    if (c->tcp) {
        (void)setsockopt(PQsocket(c->pg), IPPROTO_TCP, TCP_CORK, &on, sizeof(on));
    }
}

/* Hands c's queued batches to libpq in one corked burst. PQpipelineSync()
   flushes after each batch (libpq 15 has no PQsendPipelineSync). */
static void send_queued(conn_t *c)
{
    if (c->unsent == NULL || (c->state != CONN_READY && c->state != CONN_SETUP)) {
        return;
    }
    bool many = c->unsent->next != NULL;
    if (many) {
        cork(c, 1);
    }
    bool was_idle = c->fifo.head == c->unsent;
    int rc = 0;
    for (db_op_t *op = c->unsent; op != NULL && rc == 0; op = op->next) {
        rc = send_op(c, op);
    }
    c->unsent = NULL;
    if (many) {
        cork(c, 0);
    }
    if (rc != 0) {
        conn_fail(c, PQerrorMessage(c->pg)); /* fails the burst too */
        return;
    }
    if (was_idle) {
        head_changed(c);
    }
    if (c->state != CONN_DOWN) {
        conn_flush(c);
    }
}

/* End of a loop turn: send what the turn queued. */
static void on_send_turn(h2o_timeout_entry_t *entry)
{
    db_pool_t *p = H2O_STRUCT_FROM_MEMBER(db_pool_t, send_entry, entry);
    for (unsigned i = 0; i < p->opts.conns; i++) {
        send_queued(&p->conns[i]);
    }
    send_queued(&p->hb);
    publish(p);
}

static conn_t *pick_conn(db_pool_t *p)
{
    conn_t *best = NULL;
    for (unsigned i = 0; i < p->opts.conns; i++) {
        conn_t *c = &p->conns[i];
        if (c->state == CONN_READY && c->fifo.n < p->opts.max_pipeline &&
            (best == NULL || c->fifo.n < best->fifo.n)) {
            best = c;
        }
    }
    return best;
}

static void pool_dispatch(db_pool_t *p)
{
    while (p->waiters.head != NULL) {
        conn_t *c = pick_conn(p);
        if (c == NULL) {
            return;
        }
        db_op_t *op = opq_pop(&p->waiters);
        metrics_observe(MH_DB_POOL_WAIT, 0, trace_now_us() - op->span.start_us);
        queue_op(c, op);
    }
}

/* Every data connection is failed: PostgreSQL does not answer, so what they
   carry will not come back before its deadline. */
static void fail_all(db_pool_t *p, const char *why)
{
    for (unsigned i = 0; i < p->opts.conns; i++) {
        conn_fail(&p->conns[i], why);
    }
    conn_fail(&p->hb, why);
}

/*
 * The heartbeat, every heartbeat_ms: one clock query in flight at a time on
 * the heartbeat connection, which carries nothing else - so a statement
 * that waits on a lock can never delay it. Unanswered within stall_ms:
 * PostgreSQL is stalled.
 */
static void on_heartbeat_tick(struct timer *t)
{
    db_pool_t *p = t->data;
    uint64_t now = clock_mono_ms();
    conn_t *hb = &p->hb;
    db_op_t *inflight = hb->fifo.head;
    if (inflight != NULL && hb->state == CONN_READY && inflight->sent_us != 0 &&
        clock_mono_us() - inflight->sent_us > (uint64_t)p->opts.stall_ms * 1000) {
        if (!p->logged_stall) {
            log_warn(
                "db worker %u: PostgreSQL did not answer a heartbeat within %lld ms: failing fast until it "
                "does",
                p->opts.worker_id, (long long)p->opts.stall_ms);
            p->logged_stall = true;
        }
        p->hb_alive = false;
        breaker_trip(&p->breaker, now);
        fail_all(p, "PostgreSQL stalled (heartbeat unanswered)");
    } else if (p->hb_alive && (p->hb_ok_ms == 0 ||
                               now - p->hb_ok_ms > (uint64_t)(p->opts.stall_ms + p->opts.heartbeat_ms))) {
        p->hb_alive = false; /* not answered lately, whatever the reason */
    }
    if (hb->state == CONN_READY && hb->fifo.head == NULL) {
        if (p->breaker.state == BREAKER_OPEN) {
            (void)breaker_allow(&p->breaker, now); /* after the cool-down: the heartbeat is the probe */
        }
        db_op_t *op = internal_op(hb, OP_CLOCK);
        if (op != NULL) {
            op->sql = clock_sql;
            queue_op(hb, op);
        }
    }
    update_health(p);
    if (timer_arm(p->timers, &p->hb_timer, now + (uint64_t)p->opts.heartbeat_ms) != 0) {
        log_error("db: cannot schedule the heartbeat");
    }
}

int db_submit(db_pool_t *p, const db_batch_t *b, db_cb cb, void *arg, db_op_t **out)
{
    uint64_t now = clock_mono_ms();
    if (b->n == 0 || b->n > DB_MAX_BATCH) {
        return ERR_INVAL;
    }
    for (size_t i = 0; i < b->n; i++) {
        if (b->qs[i].nparams < 0 || b->qs[i].nparams > DB_MAX_PARAMS || b->qs[i].stmt == NULL) {
            return ERR_INVAL;
        }
    }
    if (b->deadline_ms <= now) {
        return ERR_TIMEOUT;
    }
    /* Fail fast: nothing healthy to run on, or PostgreSQL is not answering. */
    if (!p->healthy) {
        metrics_inc(M_DB_REJECT_UNAVAILABLE);
        return ERR_UNAVAILABLE;
    }
    conn_t *c = pick_conn(p);
    if (c == NULL && p->waiters.n >= p->opts.max_waiters) {
        metrics_inc(M_DB_REJECT_FULL);
        return ERR_UNAVAILABLE;
    }
    db_op_t *op = op_new(p, b);
    if (op == NULL) {
        return ERR_NOMEM;
    }
    op->cb = cb;
    op->arg = arg;
    *out = op;
    if (c == NULL) {
        opq_push(&p->waiters, op);
        metrics_set(M_DB_WAITING, p->waiters.n);
        return 0;
    }
    metrics_observe(MH_DB_POOL_WAIT, 0, 0);
    queue_op(c, op); /* sent at the end of this loop turn */
    return 0;
}

void db_op_cancel(db_op_t *op)
{
    db_pool_t *p = op->pool;
    if (op->conn == NULL) {
        /* still waiting for a slot: just forget it */
        if (opq_remove(&p->waiters, op)) {
            op_free(op);
        }
        return;
    }
    conn_t *c = op->conn;
    /* Not handed to libpq yet: take it out, PostgreSQL never sees it. */
    for (db_op_t *u = c->unsent; u != NULL; u = u->next) {
        if (u == op) {
            if (c->unsent == op) {
                c->unsent = op->next;
            }
            (void)opq_remove(&c->fifo, op);
            op_free(op);
            return;
        }
    }
    op->cancelled = true;
    op->cb = NULL;
    /* Running now: cancel it. Queued behind others: a write's guard makes
       it do nothing if it starts late; when it reaches the head still
       running, head_changed() cancels it then. */
    if (c->fifo.head == op) {
        c->cancel_seq = 0;
        head_changed(c);
    }
}

static void conn_init(db_pool_t *p, conn_t *c, unsigned idx, bool heartbeat)
{
    c->pool = p;
    c->idx = idx;
    c->heartbeat = heartbeat;
    c->state = CONN_DOWN;
    c->sock_src_fd = -1;
    timer_init(&c->retry, conn_on_retry, c);
    timer_init(&c->timeout, conn_on_timeout, c);
    timer_init(&c->cancel_watch, on_cancel_watch, c);
}

db_pool_t *db_pool_new(h2o_loop_t *loop, timer_heap_t *timers, const db_pool_opts_t *opts)
{
    unsigned n = opts->conns ? opts->conns : 1;
    db_pool_t *p = calloc(1, sizeof(*p) + n * sizeof(conn_t));
    if (p == NULL) {
        return NULL;
    }
    p->loop = loop;
    p->timers = timers;
    p->opts = *opts;
    p->opts.conns = n;
    p->counted_down = opts->down_counter != NULL; /* counted as down from the start */
    p->conninfo = strdup(opts->conninfo);
    if (p->conninfo == NULL) {
        free(p);
        return NULL;
    }
    /* Session settings, prepared mode only (a PgBouncer in transaction mode
       shares sessions: there everything is per batch). Generic plans are
       made once per statement; with sequential scans off they can never be
       a scan picked from the statistics of a table that was empty when the
       plan was made (docs/adr/0006-plan-stable-statements.md). */
    snprintf(p->session_sql, sizeof(p->session_sql),
             "SELECT set_config('statement_timeout', '%lld', false), "
             "set_config('enable_seqscan', 'off', false), "
             "set_config('plan_cache_mode', 'force_generic_plan', false), "
             "set_config('client_connection_check_interval', '" CLIENT_CHECK_MS "', false)",
             (long long)opts->session_timeout_ms);
    breaker_init(&p->breaker, opts->breaker_threshold, opts->breaker_cooldown_ms);
    breaker_observe(&p->breaker, on_breaker_change, p);
    metrics_set(M_DB_CAPACITY, (int64_t)n * opts->max_pipeline);
    metrics_set(M_DB_MAX_WAITING, opts->max_waiters);
    h2o_timeout_init(loop, &p->send_turn, 0);
    p->send_entry.cb = on_send_turn;
    timer_init(&p->hb_timer, on_heartbeat_tick, p);
    conn_init(p, &p->hb, 0, true);
    for (unsigned i = 0; i < n; i++) {
        conn_init(p, &p->conns[i], i, false);
    }
    conn_connect(&p->hb);
    for (unsigned i = 0; i < n; i++) {
        conn_connect(&p->conns[i]);
    }
    if (timer_arm(timers, &p->hb_timer, clock_mono_ms() + (uint64_t)opts->heartbeat_ms) != 0) {
        log_error("db: cannot schedule the heartbeat");
    }
    publish(p);
    return p;
}

static void conn_close(conn_t *c, db_op_t **list)
{
    db_pool_t *p = c->pool;
    timer_cancel(p->timers, &c->retry);
    timer_cancel(p->timers, &c->timeout);
    timer_cancel(p->timers, &c->cancel_watch);
    close_socket(c);
    if (c->target != NULL) {
        atomic_store(&c->target->running, 0);
        target_release(c->target);
        c->target = NULL;
    }
    if (c->pg != NULL) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
    c->state = CONN_DOWN;
    c->unsent = NULL;
    while (c->fifo.head != NULL) {
        db_op_t *op = opq_pop(&c->fifo);
        op->next = *list;
        *list = op;
    }
}

void db_pool_free(db_pool_t *p)
{
    if (p == NULL) {
        return;
    }
    /* Work nobody cancelled (fire-and-forget writes) still gets its one
       callback, as ERR_UNAVAILABLE, so its owner can free what it holds. */
    p->opts.down_counter = NULL;
    p->ready = 0;
    p->healthy = false; /* from here on, db_submit fails at once */
    timer_cancel(p->timers, &p->hb_timer);
    if (h2o_timeout_is_linked(&p->send_entry)) {
        h2o_timeout_unlink(&p->send_entry);
    }
    h2o_timeout_dispose(p->loop, &p->send_turn);
    db_op_t *list = NULL;
    conn_close(&p->hb, &list);
    for (unsigned i = 0; i < p->opts.conns; i++) {
        conn_close(&p->conns[i], &list);
    }
    while (list != NULL) {
        db_op_t *op = list;
        list = op->next;
        op_complete(op, ERR_UNAVAILABLE);
    }
    while (p->waiters.head != NULL) {
        op_complete(opq_pop(&p->waiters), ERR_UNAVAILABLE);
    }
    free(p->conninfo);
    free(p);
    /* this worker's pool is gone: its gauges say so */
    for (metric_t m = M_DB_CONN_IDLE; m <= M_DB_MAX_WAITING; m++) {
        metrics_set(m, 0);
    }
}

bool db_pool_healthy(const db_pool_t *p)
{
    return p != NULL && p->healthy;
}

void db_pool_stats(const db_pool_t *p, db_pool_stats_t *out)
{
    uint64_t now = clock_mono_ms();
    *out = (db_pool_stats_t){.size = p->opts.conns,
                             .ready = p->ready,
                             .waiting = p->waiters.n,
                             .max_waiters = p->opts.max_waiters,
                             .healthy = p->healthy,
                             .heartbeat_age_ms = p->hb_ok_ms ? now - p->hb_ok_ms : UINT64_MAX,
                             .breaker = p->breaker.state};
    for (unsigned i = 0; i < p->opts.conns; i++) {
        out->busy += p->conns[i].fifo.n > 0;
    }
}
