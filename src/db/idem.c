/* idem: record statements, storing, reading back, and the purge. */
#include "db/idem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/err.h"
#include "db/row.h"
#include "obs/log.h"
#include "obs/metrics.h"
#include "base/banned.h"

#define RECORD_COLS  "principal, key, fingerprint, status, body, etag, location"
#define RECORD_ARGS  "$1, $2, decode($3, 'hex'), $4, $5, NULLIF($6, ''), NULLIF($7, '')"
#define EXPIRED(ttl) "stored_at < now() - make_interval(secs => " ttl "::float8)"

enum { S_DELETE_EXPIRED, S_INSERT, S_INSERT_FINAL, S_GET, S_PURGE };

const db_stmt_t idem_statements[] = {
    /* a key's record that has expired is as good as none */
    [S_DELETE_EXPIRED] = {"idem_delete_expired",
                          "DELETE FROM idempotency_keys WHERE principal = $1 AND key = $2 AND " EXPIRED(
                              "$3")},
    /* in a write's batch: a key that has a record fails it (23505) */
    [S_INSERT] = {"idem_insert", "INSERT INTO idempotency_keys (" RECORD_COLS ") VALUES (" RECORD_ARGS ")"},
    /* a final client error, stored after its answer: an existing one wins */
    [S_INSERT_FINAL] = {"idem_insert_final", "INSERT INTO idempotency_keys (" RECORD_COLS
                                             ") VALUES (" RECORD_ARGS ") ON CONFLICT DO NOTHING RETURNING 1"},
    [S_GET] = {"idem_get",
               "SELECT fingerprint, status::int8, body, coalesce(etag, ''), coalesce(location, '') "
               "FROM idempotency_keys WHERE principal = $1 AND key = $2 AND NOT " EXPIRED("$3")},
    /* Oldest first, through the stored_at index; rows another purge (another
       process) has locked are skipped, so purges share the work. */
    [S_PURGE] =
        {"idem_purge",
         "DELETE FROM idempotency_keys k USING (SELECT principal, key FROM idempotency_keys WHERE " EXPIRED(
             "$1") " ORDER BY stored_at LIMIT 1000 FOR UPDATE SKIP LOCKED) d "
                   "WHERE k.principal = d.principal AND k.key = d.key"},
};
const size_t idem_statements_count = sizeof(idem_statements) / sizeof(idem_statements[0]);
_Static_assert(IDEM_PURGE_BATCH == 1000, "the purge statement's LIMIT");

static char ttl_text[24];
static size_t ttl_len;

void idem_init(int64_t ttl_s)
{
    ttl_len = (size_t)snprintf(ttl_text, sizeof(ttl_text), "%lld", (long long)ttl_s);
}

void idem_params(const idem_record_t *r, idem_params_t *p)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        p->fp_hex[2 * i] = hex[r->fingerprint[i] >> 4];
        p->fp_hex[2 * i + 1] = hex[r->fingerprint[i] & 15];
    }
    p->fp_hex[64] = '\0';
    int n = snprintf(p->status, sizeof(p->status), "%d", r->status);
    str_t v[7] = {r->principal, r->key,     str_make(p->fp_hex, 64), str_make(p->status, (size_t)n), r->body,
                  r->etag,      r->location};
    for (int i = 0; i < 7; i++) {
        p->values[i] = v[i].ptr ? v[i].ptr : "";
        p->lengths[i] = (int)v[i].len;
    }
    memcpy(p->ttl, ttl_text, ttl_len + 1);
    p->del_values[0] = p->values[0], p->del_lengths[0] = p->lengths[0];
    p->del_values[1] = p->values[1], p->del_lengths[1] = p->lengths[1];
    p->del_values[2] = p->ttl, p->del_lengths[2] = (int)ttl_len;
}

void idem_write_queries(const idem_params_t *p, db_query_t out[IDEM_WRITE_STATEMENTS])
{
    out[0] = (db_query_t){&idem_statements[S_DELETE_EXPIRED], 3, p->del_values, p->del_lengths};
    out[1] = (db_query_t){&idem_statements[S_INSERT], 7, p->values, p->lengths};
}

bool idem_conflict(PGresult *const *results, size_t n)
{
    if (strcmp(db_error_sqlstate(results, n), "23505") != 0) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        const char *c = PQresultErrorField(results[i], PG_DIAG_CONSTRAINT_NAME);
        if (c != NULL && strcmp(c, "idempotency_keys_pkey") == 0) {
            return true;
        }
    }
    return false;
}

/* ---- storing a final answer ---- */

typedef struct {
    idem_store_cb cb;
    void *arg;
} store_t;

static void on_stored(db_op_t *op, int err, PGresult *const *res, size_t n)
{
    store_t *s = db_op_arg(op);
    bool stored = err == 0 && n == 2 && PQntuples(res[1]) == 1;
    s->cb(s->arg, err == ERR_IO ? ERR_UNAVAILABLE : err, stored);
    free(s);
}

int idem_store_final(db_pool_t *db, const idem_record_t *r, uint64_t deadline_ms, idem_store_cb cb, void *arg,
                     db_op_t **op)
{
    store_t *s = malloc(sizeof(*s));
    if (s == NULL) {
        return ERR_NOMEM;
    }
    *s = (store_t){cb, arg};
    idem_params_t p;
    idem_params(r, &p);
    db_query_t q[2];
    idem_write_queries(&p, q);
    q[1].stmt = &idem_statements[S_INSERT_FINAL];
    db_batch_t b = {.qs = q,
                    .n = 2,
                    .deadline_ms = deadline_ms,
                    .writes = true,
                    .lock_timeout_ms = r->unleased ? IDEM_LOCK_TIMEOUT_MS : 0};
    int rc = db_submit(db, &b, on_stored, s, op);
    if (rc != 0) {
        free(s);
    }
    return rc;
}

/* ---- reading a record back ---- */

typedef struct {
    idem_read_cb cb;
    void *arg;
} read_t;

static void on_read(db_op_t *op, int err, PGresult *const *res, size_t n)
{
    read_t *rd = db_op_arg(op);
    (void)n;
    idem_record_t r = {0};
    str_t fp = STR_NULL;
    int64_t status = 0;
    if (err == 0 && PQntuples(res[0]) == 0) {
        err = ERR_NOTFOUND;
    } else if (err == 0 &&
               (db_row_text(res[0], 0, 0, &fp) != 0 || db_row_int8(res[0], 0, 1, &status) != 0 ||
                db_row_text(res[0], 0, 2, &r.body) != 0 || db_row_text(res[0], 0, 3, &r.etag) != 0 ||
                db_row_text(res[0], 0, 4, &r.location) != 0 || fp.len != 32)) {
        log_error("idempotency: a stored record has an unexpected shape");
        err = ERR_IO;
    }
    if (err == 0) {
        memcpy(r.fingerprint, fp.ptr, 32);
        r.status = (int)status;
    }
    rd->cb(rd->arg, err == ERR_IO ? ERR_UNAVAILABLE : err, err == 0 ? &r : NULL);
    free(rd);
}

int idem_read(db_pool_t *db, str_t principal, str_t key, uint64_t deadline_ms, idem_read_cb cb, void *arg,
              db_op_t **op)
{
    read_t *rd = malloc(sizeof(*rd));
    if (rd == NULL) {
        return ERR_NOMEM;
    }
    *rd = (read_t){cb, arg};
    const char *v[] = {principal.ptr, key.ptr, ttl_text};
    int len[] = {(int)principal.len, (int)key.len, (int)ttl_len};
    db_query_t q = {&idem_statements[S_GET], 3, v, len};
    db_batch_t b = {.qs = &q, .n = 1, .deadline_ms = deadline_ms};
    int rc = db_submit(db, &b, on_read, rd, op);
    if (rc != 0) {
        free(rd);
    }
    return rc;
}

/* ---- the purge ---- */

struct idem_purger {
    db_pool_t *db;
    timer_heap_t *timers;
    uint64_t interval_ms;
    struct timer timer;
    db_op_t *op; /* the batch in flight, if any */
};

#define PURGE_TIMEOUT_MS 30000

static void purge_next(idem_purger_t *p, uint64_t in_ms)
{
    if (timer_arm(p->timers, &p->timer, clock_mono_ms() + in_ms) != 0) {
        log_warn("cannot schedule the idempotency purge");
    }
}

static void on_purged(db_op_t *op, int err, PGresult *const *res, size_t n)
{
    idem_purger_t *p = db_op_arg(op);
    (void)n;
    p->op = NULL;
    long rows = 0;
    if (err == 0) {
        rows = strtol(PQcmdTuples(res[0]), NULL, 10);
        metrics_add(M_IDEM_PURGED, (uint64_t)rows);
        if (rows > 0) {
            log_info("idempotency: purged %ld expired keys", rows);
        }
    }
    /* A full batch: more are waiting, go on at once (next loop turn). */
    purge_next(p, rows >= IDEM_PURGE_BATCH ? 0 : p->interval_ms);
}

static void on_purge_timer(struct timer *t)
{
    idem_purger_t *p = t->data;
    const char *v[] = {ttl_text};
    int len[] = {(int)ttl_len};
    db_query_t q = {&idem_statements[S_PURGE], 1, v, len};
    db_batch_t b = {.qs = &q, .n = 1, .deadline_ms = clock_mono_ms() + PURGE_TIMEOUT_MS, .writes = true};
    if (!db_pool_healthy(p->db) || db_submit(p->db, &b, on_purged, p, &p->op) != 0) {
        p->op = NULL;
        purge_next(p, p->interval_ms); /* the database is unavailable: later */
    }
}

idem_purger_t *idem_purger_start(db_pool_t *db, timer_heap_t *timers, uint64_t interval_ms)
{
    idem_purger_t *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return NULL;
    }
    *p = (idem_purger_t){.db = db, .timers = timers, .interval_ms = interval_ms};
    timer_init(&p->timer, on_purge_timer, p);
    purge_next(p, 1000);
    return p;
}

void idem_purger_stop(idem_purger_t *p)
{
    if (p == NULL) {
        return;
    }
    timer_cancel(p->timers, &p->timer);
    if (p->op != NULL) {
        db_op_cancel(p->op);
    }
    free(p);
}
