/*
 * pool: connection state machine, batch FIFO per connection, waiters, and
 * the cancel thread.
 *
 *   DOWN --retry timer--> CONNECTING --PQconnectPoll OK--> SETUP --prepared--> READY
 *     ^                        |                             |                   |
 *     +------------- any error (fail queued work, back off) -+-------------------+
 *
 * The read loop is bounded by our own FIFO of batches (libpq's PQgetResult
 * returns NULL forever when nothing is queued). Each batch yields, per
 * statement, one result then NULL, then PGRES_PIPELINE_SYNC.
 */
#include "db/pool.h"
#include "db/secret.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/rand.h"
#include "obs/log.h"
#include "base/banned.h"

#define CONNECT_TIMEOUT_MS 5000
#define BACKOFF_MIN_MS     100
#define BACKOFF_MAX_MS     5000

typedef enum { CONN_DOWN, CONN_CONNECTING, CONN_SETUP, CONN_READY } conn_state_t;

typedef struct conn conn_t;

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
    bool cancelled;
    bool internal; /* the set-up batch of a connection */
    size_t nq;
    size_t got;
    PGresult *res[DB_MAX_BATCH];
    struct {
        const char *stmt;
        int nparams;
        const char *values[DB_MAX_PARAMS];
        int lengths[DB_MAX_PARAMS];
    } q[DB_MAX_BATCH];
    char data[]; /* copies of parameter values */
};

struct conn {
    db_pool_t *pool;
    unsigned idx;
    conn_state_t state;
    PGconn *pg;
    h2o_socket_t *sock;
    int sock_src_fd; /* PQsocket() the h2o socket was made from */
    bool write_armed;
    PostgresPollingStatusType poll;
    opq_t fifo;      /* sent (and, from `unsent` on, queued) batches, in order */
    db_op_t *unsent; /* first op of the FIFO not yet handed to libpq */
    bool tcp;        /* the socket is TCP (corkable), not a Unix socket */
    unsigned backoff_ms;
    struct timer retry;   /* DOWN: when to reconnect */
    struct timer timeout; /* CONNECTING/SETUP: give up */
    bool logged_down;
};

struct db_pool {
    h2o_loop_t *loop;
    timer_heap_t *timers;
    db_pool_opts_t opts;
    char *conninfo;
    breaker_t breaker;
    unsigned ready;
    opq_t waiters; /* batches waiting for a pipeline slot */
    /* Batches submitted during one loop turn are sent together at its end
       (a zero-length h2o timeout runs after the turn's I/O callbacks): one
       corked burst per connection wakes PostgreSQL once, not per request. */
    h2o_timeout_t send_turn;
    h2o_timeout_entry_t send_entry;
    conn_t conns[];
};

/* ---- the cancel thread ---- */

typedef struct cancel_req {
    struct cancel_req *next;
    PGcancel *cancel;
} cancel_req_t;

static pthread_mutex_t cancel_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cancel_cond = PTHREAD_COND_INITIALIZER;
static cancel_req_t *cancel_queue;
static bool cancel_stop;
static bool cancel_running;
static pthread_t cancel_thread;

static void *cancel_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&cancel_lock);
    for (;;) {
        while (cancel_queue == NULL && !cancel_stop) {
            pthread_cond_wait(&cancel_cond, &cancel_lock);
        }
        cancel_req_t *r = cancel_queue;
        if (r == NULL) {
            break; /* stop, and nothing left to send */
        }
        cancel_queue = r->next;
        pthread_mutex_unlock(&cancel_lock);
        char errbuf[256];
        if (!PQcancel(r->cancel, errbuf, sizeof(errbuf))) {
            log_warn("PostgreSQL cancel request failed: %s", errbuf);
        }
        PQfreeCancel(r->cancel);
        free(r);
        pthread_mutex_lock(&cancel_lock);
    }
    pthread_mutex_unlock(&cancel_lock);
    return NULL;
}

int db_cancel_start(void)
{
    cancel_stop = false;
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
    pthread_mutex_lock(&cancel_lock);
    cancel_stop = true;
    pthread_cond_signal(&cancel_cond);
    pthread_mutex_unlock(&cancel_lock);
    pthread_join(cancel_thread, NULL);
    cancel_running = false;
}

static void post_cancel(conn_t *c)
{
    if (!cancel_running) {
        return;
    }
    cancel_req_t *r = malloc(sizeof(*r));
    if (r == NULL) {
        return;
    }
    r->cancel = PQgetCancel(c->pg); /* its own copy: safe if c goes away */
    if (r->cancel == NULL) {
        free(r);
        return;
    }
    pthread_mutex_lock(&cancel_lock);
    r->next = cancel_queue;
    cancel_queue = r;
    pthread_cond_signal(&cancel_cond);
    pthread_mutex_unlock(&cancel_lock);
}

/* ---- ops ---- */

static void op_free(db_op_t *op)
{
    for (size_t i = 0; i < op->got; i++) {
        PQclear(op->res[i]);
    }
    free(op);
}

static void op_complete(db_op_t *op, int err)
{
    if (!op->cancelled && op->cb != NULL) {
        op->cb(op, err, err == ERR_UNAVAILABLE ? NULL : op->res, err == ERR_UNAVAILABLE ? 0 : op->got);
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

/* ---- connection I/O ---- */

static void conn_fail(conn_t *c, const char *why);
static void conn_on_readable(h2o_socket_t *sock, const char *err);
static void pool_dispatch(db_pool_t *p);

static void conn_on_writable(h2o_socket_t *sock, const char *err);

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
    opq_push(&c->fifo, op);
}

static int send_op(conn_t *c, db_op_t *op)
{
    for (size_t i = 0; i < op->nq; i++) {
        int ok;
        if (op->q[i].stmt[0] == '\0') {
            /* internal: unnamed statement text in values[0] (set-up only) */
            ok = PQsendQueryParams(c->pg, op->q[i].values[0], 0, NULL, NULL, NULL, NULL, 0);
        } else {
            /* binary results: uuid, int8 and timestamptz arrive as fixed-size
               integers, cheaper to decode than their text forms */
            ok = PQsendQueryPrepared(c->pg, op->q[i].stmt, op->q[i].nparams, op->q[i].values,
                                     op->q[i].lengths, NULL, 1);
        }
        if (!ok) {
            return ERR_IO;
        }
    }
    if (!PQpipelineSync(c->pg)) {
        return ERR_IO;
    }
    return 0;
}

static void on_setup_done(db_op_t *op, int err, PGresult *const *results, size_t n)
{
    conn_t *c = op->arg;
    (void)results;
    (void)n;
    if (err != 0) {
        const char *why = n > 0 ? PQresultErrorMessage(results[0]) : "set-up failed";
        for (size_t i = 0; i < n; i++) {
            if (PQresultStatus(results[i]) == PGRES_FATAL_ERROR) {
                why = PQresultErrorMessage(results[i]);
                break;
            }
        }
        log_error("db worker %u conn %u: preparing statements failed: %s", c->pool->opts.worker_id, c->idx,
                  why);
        /* conn_fail runs from the read loop once this callback returns */
        return;
    }
    timer_cancel(c->pool->timers, &c->timeout);
    c->state = CONN_READY;
    c->backoff_ms = 0;
    if (c->pool->ready++ == 0 && c->pool->opts.down_counter != NULL) {
        atomic_fetch_sub(c->pool->opts.down_counter, 1);
    }
    if (c->logged_down) {
        log_info("db worker %u conn %u: connected again", c->pool->opts.worker_id, c->idx);
        c->logged_down = false;
    }
    breaker_success(&c->pool->breaker);
}

static db_op_t *op_new(db_pool_t *p, const db_query_t *qs, size_t n)
{
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        for (int k = 0; k < qs[i].nparams; k++) {
            const char *v = qs[i].values[k];
            if (v != NULL) {
                bytes += (qs[i].lengths ? (size_t)qs[i].lengths[k] : strlen(v)) + 1;
            }
        }
    }
    db_op_t *op = calloc(1, sizeof(*op) + bytes);
    if (op == NULL) {
        return NULL;
    }
    op->pool = p;
    op->nq = n;
    char *d = op->data;
    for (size_t i = 0; i < n; i++) {
        op->q[i].stmt = qs[i].stmt;
        op->q[i].nparams = qs[i].nparams;
        for (int k = 0; k < qs[i].nparams; k++) {
            const char *v = qs[i].values[k];
            if (v == NULL) {
                op->q[i].values[k] = NULL;
                continue;
            }
            size_t len = qs[i].lengths ? (size_t)qs[i].lengths[k] : strlen(v);
            memcpy(d, v, len);
            d[len] = '\0';
            op->q[i].values[k] = d;
            op->q[i].lengths[k] = (int)len;
            d += len + 1;
        }
    }
    return op;
}

static db_op_t *internal_op(conn_t *c, size_t nq, db_cb cb)
{
    db_op_t *op = calloc(1, sizeof(*op));
    if (op != NULL) {
        *op = (db_op_t){.pool = c->pool, .internal = true, .nq = nq, .cb = cb, .arg = c};
    }
    return op;
}

/*
 * Set-up: one batch of session settings, then one batch per prepared
 * statement, each closed by its own Sync. They complete in order, so the
 * last one's completion (on_setup_done) makes the connection READY.
 */
static void conn_start_setup(conn_t *c)
{
    db_pool_t *p = c->pool;
    if (PQsetnonblocking(c->pg, 1) != 0 || !PQenterPipelineMode(c->pg)) {
        conn_fail(c, PQerrorMessage(c->pg));
        return;
    }
    c->state = CONN_SETUP;
    char timeout_sql[64]; /* copied by libpq before send_op returns */
    snprintf(timeout_sql, sizeof(timeout_sql), "SET statement_timeout = %lld",
             (long long)p->opts.statement_timeout_ms);
    size_t nbatches = 1 + p->opts.nstmts;
    for (size_t i = 0; i < nbatches; i++) {
        db_op_t *op = internal_op(c, i == 0 ? 2 : 1, i + 1 == nbatches ? on_setup_done : NULL);
        if (op == NULL) {
            conn_fail(c, "out of memory");
            return;
        }
        fifo_push(c, op);
        bool ok;
        if (i == 0) {
            op->q[0].stmt = "";
            op->q[0].values[0] = timeout_sql;
            /* LIMIT $n would otherwise be re-planned on every execution */
            op->q[1].stmt = "";
            op->q[1].values[0] = "SET plan_cache_mode = force_generic_plan";
            ok = send_op(c, op) == 0;
        } else {
            const db_stmt_t *st = &p->opts.stmts[i - 1];
            ok = PQsendPrepare(c->pg, st->name, st->sql, 0, NULL) && PQpipelineSync(c->pg);
        }
        if (!ok) {
            conn_fail(c, PQerrorMessage(c->pg));
            return;
        }
    }
    conn_flush(c);
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
        log_warn("db worker %u conn %u: connection lost or refused: %s", p->opts.worker_id, c->idx, msg);
        c->logged_down = true;
    }
    if (c->state == CONN_READY && --p->ready == 0 && p->opts.down_counter != NULL) {
        atomic_fetch_add(p->opts.down_counter, 1);
    }
    c->state = CONN_DOWN;
    timer_cancel(p->timers, &c->timeout);
    close_socket(c);
    PQfinish(c->pg);
    c->pg = NULL;
    db_op_t *list = c->fifo.head;
    c->fifo = (opq_t){0};
    c->unsent = NULL;
    breaker_failure(&p->breaker, clock_mono_ms());

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

    /* Callbacks last: they may submit new work to the pool. */
    while (list != NULL) {
        db_op_t *op = list;
        list = op->next;
        if (op->internal) {
            op_free(op);
        } else {
            op_complete(op, ERR_UNAVAILABLE);
        }
    }
    if (p->ready == 0) {
        db_op_t *w = p->waiters.head;
        p->waiters = (opq_t){0};
        while (w != NULL) {
            db_op_t *op = w;
            w = op->next;
            op_complete(op, ERR_UNAVAILABLE);
        }
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
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            opq_pop(&c->fifo);
            int err = 0;
            for (size_t i = 0; i < op->got; i++) {
                ExecStatusType s = PQresultStatus(op->res[i]);
                if (s != PGRES_TUPLES_OK && s != PGRES_COMMAND_OK) {
                    err = ERR_IO;
                }
            }
            if (op->got < op->nq) {
                err = ERR_IO;
            }
            bool setup_failed = op->internal && err != 0;
            if (!op->internal) {
                /* PostgreSQL answered: that is health, even for a constraint
                   error. 57xxx (cancelled, timed out) and 08xxx (connection
                   trouble) count against it. */
                const char *ss = err ? db_error_sqlstate(op->res, op->got) : "";
                if (strncmp(ss, "57", 2) == 0 || strncmp(ss, "08", 2) == 0) {
                    breaker_failure(&c->pool->breaker, clock_mono_ms());
                } else {
                    breaker_success(&c->pool->breaker);
                }
            }
            op_complete(op, err);
            if (setup_failed) {
                conn_fail(c, "set-up failed");
                return;
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
    if (c->state == CONN_READY) {
        pool_dispatch(c->pool);
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

/* End of a loop turn: hand every queued batch to libpq, one burst per
   connection. PQpipelineSync() flushes after each batch (libpq 15 has no
   PQsendPipelineSync), so the socket is corked around the burst. */
static void on_send_turn(h2o_timeout_entry_t *entry)
{
    db_pool_t *p = H2O_STRUCT_FROM_MEMBER(db_pool_t, send_entry, entry);
    for (unsigned i = 0; i < p->opts.conns; i++) {
        conn_t *c = &p->conns[i];
        if (c->unsent == NULL || c->state != CONN_READY) {
            continue;
        }
        bool many = c->unsent->next != NULL;
        if (many) {
            cork(c, 1);
        }
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
            continue;
        }
        conn_flush(c);
    }
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

static void start_op(conn_t *c, db_op_t *op)
{
    queue_op(c, op);
}

static void pool_dispatch(db_pool_t *p)
{
    while (p->waiters.head != NULL) {
        conn_t *c = pick_conn(p);
        if (c == NULL) {
            return;
        }
        start_op(c, opq_pop(&p->waiters));
    }
}

int db_submit(db_pool_t *p, const db_query_t *qs, size_t n, uint64_t deadline_ms, db_cb cb, void *arg,
              db_op_t **out)
{
    uint64_t now = clock_mono_ms();
    if (n == 0 || n > DB_MAX_BATCH) {
        return ERR_INVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (qs[i].nparams < 0 || qs[i].nparams > DB_MAX_PARAMS) {
            return ERR_INVAL;
        }
    }
    if (deadline_ms <= now) {
        return ERR_TIMEOUT;
    }
    /* Fail fast: nothing healthy to run on, or the breaker is open. */
    if (p->ready == 0 || !breaker_allow(&p->breaker, now)) {
        return ERR_UNAVAILABLE;
    }
    conn_t *c = pick_conn(p);
    if (c == NULL && p->waiters.n >= p->opts.max_waiters) {
        return ERR_UNAVAILABLE;
    }
    db_op_t *op = op_new(p, qs, n);
    if (op == NULL) {
        return ERR_NOMEM;
    }
    op->cb = cb;
    op->arg = arg;
    *out = op;
    if (c == NULL) {
        opq_push(&p->waiters, op);
        return 0;
    }
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
            if (p->breaker.state == BREAKER_HALF_OPEN) {
                p->breaker.probing = false; /* it may have been the probe */
            }
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
    /* Only the batch at the head is running; cancelling for a queued one
       would kill somebody else's statement. A queued one still runs, bounded
       by statement_timeout, and its result is dropped. */
    if (op->conn->fifo.head == op && op->conn->pg != NULL) {
        post_cancel(op->conn);
    }
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
    p->conninfo = strdup(opts->conninfo);
    if (p->conninfo == NULL) {
        free(p);
        return NULL;
    }
    breaker_init(&p->breaker, opts->breaker_threshold, opts->breaker_cooldown_ms);
    h2o_timeout_init(loop, &p->send_turn, 0);
    p->send_entry.cb = on_send_turn;
    for (unsigned i = 0; i < n; i++) {
        conn_t *c = &p->conns[i];
        c->pool = p;
        c->idx = i;
        c->state = CONN_DOWN;
        c->sock_src_fd = -1;
        timer_init(&c->retry, conn_on_retry, c);
        timer_init(&c->timeout, conn_on_timeout, c);
        conn_connect(c);
    }
    return p;
}

void db_pool_free(db_pool_t *p)
{
    if (p == NULL) {
        return;
    }
    /* Work nobody cancelled (fire-and-forget writes) still gets its one
       callback, as ERR_UNAVAILABLE, so its owner can free what it holds. */
    p->opts.down_counter = NULL;
    p->ready = 0; /* from here on, db_submit fails at once */
    if (h2o_timeout_is_linked(&p->send_entry)) {
        h2o_timeout_unlink(&p->send_entry);
    }
    h2o_timeout_dispose(p->loop, &p->send_turn);
    db_op_t *list = NULL;
    for (unsigned i = 0; i < p->opts.conns; i++) {
        conn_t *c = &p->conns[i];
        timer_cancel(p->timers, &c->retry);
        timer_cancel(p->timers, &c->timeout);
        close_socket(c);
        if (c->pg != NULL) {
            PQfinish(c->pg);
            c->pg = NULL;
        }
        c->state = CONN_DOWN;
        c->unsent = NULL;
        while (c->fifo.head != NULL) {
            db_op_t *op = opq_pop(&c->fifo);
            op->next = list;
            list = op;
        }
    }
    while (list != NULL) {
        db_op_t *op = list;
        list = op->next;
        if (op->internal) {
            op_free(op);
        } else {
            op_complete(op, ERR_UNAVAILABLE);
        }
    }
    while (p->waiters.head != NULL) {
        op_complete(opq_pop(&p->waiters), ERR_UNAVAILABLE);
    }
    free(p->conninfo);
    free(p);
}

bool db_pool_healthy(const db_pool_t *p)
{
    return p != NULL && p->ready > 0;
}

void db_pool_stats(const db_pool_t *p, db_pool_stats_t *out)
{
    *out = (db_pool_stats_t){.size = p->opts.conns,
                             .ready = p->ready,
                             .waiting = p->waiters.n,
                             .max_waiters = p->opts.max_waiters,
                             .breaker = p->breaker.state};
    for (unsigned i = 0; i < p->opts.conns; i++) {
        out->busy += p->conns[i].fifo.n > 0;
    }
}
