/* users: statements, the cache, coalescing and the writes (the rules are
   users_rules.c, the cache entry codec users_cache.c). */
#include "services/users.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/rand.h"
#include "db/row.h"
#include "obs/metrics.h"
#include "obs/log.h"
#include "base/banned.h"

#define COLS            "id, email, name, version, created_at, updated_at"
#define US(param)       "'epoch'::timestamptz + " param "::int8 * interval '1 microsecond'"
#define CACHE_PREFIX    "api:user:"
#define CACHE_KEY_LEN   (sizeof(CACHE_PREFIX) - 1 + UUID_STR_LEN)
#define FETCH_BUCKETS   256
#define RETRY_QUEUE     1024
#define NEGATIVE_TTL_MS 1000

const db_stmt_t users_statements[] = {
    {"users_get", "SELECT " COLS " FROM users WHERE id = $1"},
    {"users_first", "SELECT " COLS " FROM users ORDER BY id LIMIT $1"},
    {"users_after", "SELECT " COLS " FROM users WHERE id > $1 ORDER BY id LIMIT $2"},
    /* the server makes ids and timestamps, so the answer (and its
       idempotency record) is known before the insert commits */
    {"users_insert", "INSERT INTO users (id, email, name, version, created_at, updated_at) "
                     "VALUES ($1, $2, $3, 1, " US("$4") ", " US("$4") ")"},
    /* A PATCH without a key: one statement, serialized by the row lock; a
       NULL field is left alone, and updated_at never goes backwards. */
    {"users_update",
     "UPDATE users SET email = coalesce($2, email), name = coalesce($3, name), "
     "version = version + 1, updated_at = greatest(" US(
         "$4") ", updated_at + interval '1 "
               "microsecond') WHERE id = $1 AND ($5::int8[] IS NULL OR version = ANY($5::int8[])) "
               "RETURNING " COLS},
    /* A PATCH with a key stores its answer with the write, so the new row
       is computed (and rendered) first: optimistic, only from the version
       read; the record goes in after the row, so a lost race writes neither. */
    {"users_update_idem",
     "WITH u AS (UPDATE users SET email = $2, name = $3, version = $4, updated_at = " US(
         "$5") " "
               "WHERE id = $1 AND "
               "version = $6 "
               "RETURNING 1) "
               "INSERT INTO idempotency_keys (principal, key, fingerprint, status, body, etag, location) "
               "SELECT $7, $8, decode($9, 'hex'), $10::int2, $11, NULLIF($12, ''), NULLIF($13, '') FROM u"},
    {"users_delete", "DELETE FROM users WHERE id = $1 AND ($2::int8[] IS NULL OR version = ANY($2::int8[])) "
                     "RETURNING id"},
    /* second statement of a conditional write: tells 404 from 412 */
    {"users_exists", "SELECT id FROM users WHERE id = $1"},
};
const size_t users_statements_count = sizeof(users_statements) / sizeof(users_statements[0]);

/* Positions in users_statements. */
enum { S_GET, S_FIRST, S_AFTER, S_INSERT, S_UPDATE, S_UPDATE_IDEM, S_DELETE, S_EXISTS };
#define STMT(i) (&users_statements[i])

static int submit(db_pool_t *db, const db_query_t *qs, size_t n, uint64_t deadline_ms, bool writes,
                  int64_t lock_timeout_ms, db_cb cb, void *arg, db_op_t **op)
{
    db_batch_t b = {
        .qs = qs, .n = n, .deadline_ms = deadline_ms, .writes = writes, .lock_timeout_ms = lock_timeout_ms};
    return db_submit(db, &b, cb, arg, op);
}

/*
 * Versioned cache fill: KEYS[1], ARGV = version, value, ttl_ms. A tombstone
 * ("T") or an entry at the same or a newer version wins, so a slow reader
 * can never put back data older than what a write already put there.
 */
static redis_script_t fill_script = REDIS_SCRIPT("local cur = redis.call('GET', KEYS[1])\n"
                                                 "if cur == 'T' then return 0 end\n"
                                                 "if cur then\n"
                                                 "  local v = tonumber(string.match(cur, '^(%d+)'))\n"
                                                 "  if v and v >= tonumber(ARGV[1]) then return 0 end\n"
                                                 "end\n"
                                                 "redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])\n"
                                                 "return 1\n");

enum { K_GET, K_LIST, K_CREATE, K_UPDATE, K_DELETE };

typedef struct users_fetch {
    struct users_fetch *next; /* in its bucket */
    users_svc_t *svc;
    uuid_bytes_t id;
    users_call_t *waiters;
    db_op_t *op;
} users_fetch_t;

struct users_svc {
    db_pool_t *db;
    redis_client_t *redis;
    users_svc_opts_t opts;
    users_fetch_t *buckets[FETCH_BUCKETS];
    uuid_bytes_t retry[RETRY_QUEUE]; /* invalidations Redis has not heard of yet */
    size_t nretry;
};

users_svc_t *users_svc_new(db_pool_t *db, redis_client_t *redis, const users_svc_opts_t *opts)
{
    users_svc_t *s = calloc(1, sizeof(*s));
    if (s != NULL) {
        s->db = db;
        s->redis = opts->cache_ttl_ms > 0 ? redis : NULL;
        s->opts = *opts;
    }
    return s;
}

void users_init(void)
{
    redis_script_init(&fill_script);
}

void users_svc_free(users_svc_t *svc)
{
    free(svc);
}

/* ---- rows and cache entries ---- */

static int decode_user(const PGresult *r, int row, user_t *u)
{
    if (db_row_uuid(r, row, 0, &u->id) != 0 || db_row_text(r, row, 1, &u->email) != 0 ||
        db_row_text(r, row, 2, &u->name) != 0 || db_row_int8(r, row, 3, &u->version) != 0 ||
        db_row_timestamptz(r, row, 4, &u->created_us) != 0 ||
        db_row_timestamptz(r, row, 5, &u->updated_us) != 0) {
        return ERR_IO;
    }
    return 0;
}

static void cache_key(const uuid_bytes_t *id, char *out)
{
    memcpy(out, CACHE_PREFIX, sizeof(CACHE_PREFIX) - 1);
    uuid_format(id, out + sizeof(CACHE_PREFIX) - 1);
}

static int map_sql_error(PGresult *const *res, size_t n)
{
    const char *ss = db_error_sqlstate(res, n);
    if (idem_conflict(res, n)) {
        return ERR_REPLAY; /* the key already has an answer */
    }
    if (strcmp(ss, "23505") == 0) {
        return ERR_CONFLICT; /* the email is taken */
    }
    if (strcmp(ss, "55P03") == 0 || strcmp(ss, "40001") == 0 || strcmp(ss, "40P01") == 0) {
        /* lock timeout (a duplicate without a lease holds the key),
           serialization failure, deadlock: nothing was written */
        return ERR_RETRY;
    }
    if (strncmp(ss, "57", 2) == 0) {
        return ERR_TIMEOUT; /* statement_timeout or cancel */
    }
    for (size_t i = 0; i < n; i++) {
        if (PQresultStatus(res[i]) == PGRES_FATAL_ERROR) {
            log_error("users: query failed (%s): %s", ss, PQresultErrorMessage(res[i]));
            break;
        }
    }
    return ERR_IO;
}

static void finish(users_call_t *c, int err, const user_t *users, size_t n, bool has_more)
{
    c->op = NULL;
    c->rcmd = NULL;
    c->cb(c, err, users, n, has_more);
}

/* ---- Redis ---- */

/* Commands the write path waits for (it answers only once the cache has
   been told); everything else is fire and forget (redis_fire). */
static int send_cache_cmd(users_svc_t *svc, int argc, const char **argv, const size_t *lens, redis_cb cb,
                          void *arg, redis_cmd_t **out)
{
    if (svc->redis == NULL || !redis_client_usable(svc->redis)) {
        return ERR_UNAVAILABLE;
    }
    if (cb == NULL) {
        return redis_fire(svc->redis, argc, argv, lens);
    }
    return redis_cmd(svc->redis, clock_mono_ms() + 1000, cb, arg, out, argc, argv, lens);
}

/* Fills KEYS[1] with ARGV = version, value, ttl_ms (see fill_script). */
static int send_fill(users_svc_t *svc, const char *key, const char *version, const char *value, size_t vlen,
                     const char *ttl, redis_cb cb, void *arg, redis_cmd_t **out)
{
    if (svc->redis == NULL || !redis_client_usable(svc->redis)) {
        return ERR_UNAVAILABLE;
    }
    const char *args[] = {key, version, value, ttl};
    size_t lens[] = {CACHE_KEY_LEN, strlen(version), vlen, strlen(ttl)};
    if (cb == NULL) {
        return redis_fire_eval(svc->redis, &fill_script, 1, 4, args, lens);
    }
    return redis_eval(svc->redis, &fill_script, clock_mono_ms() + 1000, cb, arg, out, 1, 4, args, lens);
}

static int send_tombstone(users_svc_t *svc, const uuid_bytes_t *id, redis_cb cb, void *arg, redis_cmd_t **out)
{
    char key[CACHE_KEY_LEN];
    char ttl[24];
    cache_key(id, key);
    snprintf(ttl, sizeof(ttl), "%" PRId64, svc->opts.tombstone_ms);
    const char *argv[] = {"SET", key, "T", "PX", ttl};
    size_t lens[] = {3, CACHE_KEY_LEN, 1, 2, strlen(ttl)};
    return send_cache_cmd(svc, 5, argv, lens, cb, arg, out);
}

/* An invalidation Redis did not get: remember it for when Redis is back. */
static void queue_invalidation(users_svc_t *svc, const uuid_bytes_t *id)
{
    if (svc->redis == NULL) {
        return;
    }
    if (svc->nretry < RETRY_QUEUE) {
        svc->retry[svc->nretry++] = *id;
    } else {
        log_warn("users: cache invalidation queue full; an entry may stay stale until its TTL");
    }
}

static void flush_invalidations(users_svc_t *svc)
{
    while (svc->nretry > 0 && redis_client_usable(svc->redis)) {
        if (send_tombstone(svc, &svc->retry[svc->nretry - 1], NULL, NULL, NULL) != 0) {
            return;
        }
        svc->nretry--;
    }
}

static void fill_cache(users_svc_t *svc, const uuid_bytes_t *id, const user_t *u)
{
    char key[CACHE_KEY_LEN];
    char value[USERS_CACHE_MAX];
    char version[24], ttl[24];
    size_t vlen;
    int64_t ttl_ms;
    if (u != NULL) {
        vlen = users_cache_encode(u, value, sizeof(value));
        if (vlen == 0) {
            return;
        }
        snprintf(version, sizeof(version), "%" PRId64, u->version);
        /* +-10% jitter: entries filled together do not expire together */
        int64_t span = svc->opts.cache_ttl_ms / 5 + 1;
        ttl_ms = svc->opts.cache_ttl_ms - span / 2 + (int64_t)(rand_u64() % (uint64_t)span);
    } else {
        value[0] = '0'; /* "not found", briefly */
        vlen = 1;
        snprintf(version, sizeof(version), "0");
        ttl_ms = NEGATIVE_TTL_MS;
    }
    cache_key(id, key);
    snprintf(ttl, sizeof(ttl), "%" PRId64, ttl_ms > 0 ? ttl_ms : 1);
    (void)send_fill(svc, key, version, value, vlen, ttl, NULL, NULL, NULL);
}

/* ---- one user: cache, then a coalesced query ---- */

static size_t bucket_of(const uuid_bytes_t *id)
{
    /* the last bytes of a v7 id are random */
    return (size_t)(id->b[15] ^ (id->b[14] << 3)) % FETCH_BUCKETS;
}

static void waiter_unlink(users_call_t *c)
{
    users_fetch_t *f = c->fetch;
    if (c->wprev != NULL) {
        c->wprev->wnext = c->wnext;
    } else {
        f->waiters = c->wnext;
    }
    if (c->wnext != NULL) {
        c->wnext->wprev = c->wprev;
    }
    c->wnext = c->wprev = NULL;
    c->fetch = NULL;
}

static void waiter_link(users_fetch_t *f, users_call_t *c)
{
    c->fetch = f;
    c->wprev = NULL;
    c->wnext = f->waiters;
    if (f->waiters != NULL) {
        f->waiters->wprev = c;
    }
    f->waiters = c;
}

static void on_fetch(db_op_t *op, int err, PGresult *const *res, size_t n)
{
    users_fetch_t *f = db_op_arg(op);
    users_svc_t *svc = f->svc;
    users_fetch_t **pp = &svc->buckets[bucket_of(&f->id)];
    while (*pp != f) {
        pp = &(*pp)->next;
    }
    *pp = f->next;

    user_t u;
    int e = err;
    bool found = false;
    if (err == ERR_IO) {
        e = map_sql_error(res, n);
    } else if (err == 0) {
        found = PQntuples(res[0]) > 0;
        e = found ? decode_user(res[0], 0, &u) : ERR_NOTFOUND;
    }
    /* Pop one waiter at a time: a callback may cancel another waiter. */
    while (f->waiters != NULL) {
        users_call_t *c = f->waiters;
        waiter_unlink(c);
        finish(c, e, e == 0 ? &u : NULL, e == 0 ? 1 : 0, false);
    }
    if (e == 0 || e == ERR_NOTFOUND) {
        fill_cache(svc, &f->id, e == 0 ? &u : NULL);
    }
    free(f);
}

static int fetch_join(users_call_t *c)
{
    users_svc_t *svc = c->svc;
    size_t b = bucket_of(&c->id);
    for (users_fetch_t *f = svc->buckets[b]; f != NULL; f = f->next) {
        if (memcmp(f->id.b, c->id.b, 16) == 0) {
            waiter_link(f, c); /* the query is already out: wait for it */
            metrics_inc(M_CACHE_COALESCED);
            return 0;
        }
    }
    users_fetch_t *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        return ERR_NOMEM;
    }
    f->svc = svc;
    f->id = c->id;
    char ids[UUID_STR_LEN];
    uuid_format(&c->id, ids);
    const char *v[] = {ids};
    int len[] = {UUID_STR_LEN};
    db_query_t q = {STMT(S_GET), 1, v, len};
    int rc = submit(svc->db, &q, 1, c->deadline_ms, false, 0, on_fetch, f, &f->op);
    if (rc != 0) {
        free(f);
        return rc;
    }
    f->next = svc->buckets[b];
    svc->buckets[b] = f;
    waiter_link(f, c);
    return 0;
}

static void on_cache_get(redis_cmd_t *cmd, int err, redisReply *reply)
{
    users_call_t *c = redis_cmd_arg(cmd);
    c->rcmd = NULL;
    if (err == 0 && reply->type == REDIS_REPLY_STRING) {
        str_t v = str_make(reply->str, reply->len);
        user_t u;
        if (str_eq(v, STR("0"))) {
            metrics_inc(M_CACHE_HITS);
            finish(c, ERR_NOTFOUND, NULL, 0, false);
            return;
        }
        if (users_cache_decode(v, &c->id, &u) == 0) {
            metrics_inc(M_CACHE_HITS);
            finish(c, 0, &u, 1, false);
            return;
        }
        /* a tombstone ("T") or an unreadable entry: ask PostgreSQL */
    }
    metrics_inc(M_CACHE_MISSES);
    int rc = fetch_join(c);
    if (rc != 0) {
        finish(c, rc, NULL, 0, false);
    }
}

int users_get(users_call_t *c, users_svc_t *svc, const uuid_bytes_t *id, uint64_t deadline_ms)
{
    c->svc = svc;
    c->id = *id;
    c->kind = K_GET;
    c->deadline_ms = deadline_ms;
    c->limit = 0;
    if (svc->redis != NULL && redis_client_usable(svc->redis)) {
        flush_invalidations(svc);
        char key[CACHE_KEY_LEN];
        cache_key(id, key);
        const char *argv[] = {"GET", key};
        size_t lens[] = {3, CACHE_KEY_LEN};
        if (redis_cmd(svc->redis, deadline_ms, on_cache_get, c, &c->rcmd, 2, argv, lens) == 0) {
            return 0;
        }
        /* Redis refused at once: degrade to PostgreSQL */
    }
    if (svc->redis != NULL) {
        metrics_inc(M_CACHE_MISSES);
    }
    return fetch_join(c);
}

/* ---- lists ---- */

static void on_list(db_op_t *op, int err, PGresult *const *res, size_t n)
{
    users_call_t *c = db_op_arg(op);
    if (err != 0) {
        finish(c, err == ERR_IO ? map_sql_error(res, n) : err, NULL, 0, false);
        return;
    }
    user_t users[USERS_PAGE_MAX + 1];
    int rows = PQntuples(res[0]);
    bool has_more = rows > c->limit;
    int take = has_more ? c->limit : rows;
    for (int i = 0; i < take; i++) {
        if (decode_user(res[0], i, &users[i]) != 0) {
            log_error("users: unexpected row shape");
            finish(c, ERR_IO, NULL, 0, false);
            return;
        }
    }
    finish(c, 0, users, (size_t)take, has_more);
}

int users_list(users_call_t *c, users_svc_t *svc, const uuid_bytes_t *after, int limit, uint64_t deadline_ms)
{
    if (limit < 1 || limit > USERS_PAGE_MAX) {
        return ERR_RANGE;
    }
    c->svc = svc;
    c->kind = K_LIST;
    c->limit = limit;
    char ids[UUID_STR_LEN];
    char lim[16];
    int ln = snprintf(lim, sizeof(lim), "%d", limit + 1); /* one more tells if a next page exists */
    if (after == NULL) {
        const char *v[] = {lim};
        int len[] = {ln};
        db_query_t q = {STMT(S_FIRST), 1, v, len};
        return submit(svc->db, &q, 1, deadline_ms, false, 0, on_list, c, &c->op);
    }
    uuid_format(after, ids);
    const char *v[] = {ids, lim};
    int len[] = {UUID_STR_LEN, ln};
    db_query_t q = {STMT(S_AFTER), 2, v, len};
    return submit(svc->db, &q, 1, deadline_ms, false, 0, on_list, c, &c->op);
}

/* ---- writes ---- */

static void answer_write(users_call_t *c)
{
    if (c->kind == K_DELETE) {
        finish(c, 0, NULL, 0, false);
    } else {
        finish(c, 0, &c->next, 1, false);
    }
}

static void on_cache_written(redis_cmd_t *cmd, int err, redisReply *reply)
{
    users_call_t *c = redis_cmd_arg(cmd);
    c->rcmd = NULL;
    if (err != 0 || reply->type == REDIS_REPLY_ERROR) {
        queue_invalidation(c->svc, &c->id);
    }
    answer_write(c);
}

/* After a committed update or delete: tell the cache before answering, so
   the next read anywhere sees the write. */
static void write_through(users_call_t *c)
{
    users_svc_t *svc = c->svc;
    if (svc->redis == NULL) {
        answer_write(c);
        return;
    }
    flush_invalidations(svc);
    int rc;
    if (c->kind == K_DELETE) {
        rc = send_tombstone(svc, &c->id, on_cache_written, c, &c->rcmd);
    } else {
        /* the new version supersedes any older entry (versioned fill) */
        char key[CACHE_KEY_LEN], value[USERS_CACHE_MAX], version[24], ttl[24];
        size_t vlen = users_cache_encode(&c->next, value, sizeof(value));
        cache_key(&c->id, key);
        snprintf(version, sizeof(version), "%" PRId64, c->next.version);
        snprintf(ttl, sizeof(ttl), "%" PRId64, svc->opts.cache_ttl_ms);
        rc = vlen == 0 ? ERR_INVAL
                       : send_fill(svc, key, version, value, vlen, ttl, on_cache_written, c, &c->rcmd);
    }
    if (rc != 0) {
        queue_invalidation(svc, &c->id);
        answer_write(c);
    }
}

/* Copies a view into a call's own buffer (inputs outlive the caller's stack). */
static str_t keep(str_t v, char *buf, size_t cap)
{
    if (v.ptr == NULL) {
        return STR_NULL;
    }
    size_t n = v.len < cap ? v.len : cap;
    memcpy(buf, v.ptr, n);
    return str_make(buf, n);
}

void users_prepare_create(const user_input_t *in, user_t *out)
{
    int64_t now = clock_wall_us();
    *out = (user_t){.email = in->email, .name = in->name, .version = 1, .created_us = now, .updated_us = now};
    uuid_v7((uint64_t)now / 1000, &out->id);
}

static void on_created(db_op_t *op, int err, PGresult *const *res, size_t n)
{
    users_call_t *c = db_op_arg(op);
    if (err != 0) {
        finish(c, err == ERR_IO ? map_sql_error(res, n) : err, NULL, 0, false);
        return;
    }
    finish(c, 0, &c->next, 1, false);
}

int users_create(users_call_t *c, users_svc_t *svc, const user_t *u, const idem_record_t *idem,
                 uint64_t deadline_ms)
{
    c->svc = svc;
    c->kind = K_CREATE;
    c->id = u->id;
    c->next = *u;
    c->next.email = keep(u->email, c->email_buf, sizeof(c->email_buf));
    c->next.name = keep(u->name, c->name_buf, sizeof(c->name_buf));
    char ids[UUID_STR_LEN], ts[24];
    uuid_format(&u->id, ids);
    int tn = snprintf(ts, sizeof(ts), "%" PRId64, u->created_us);
    const char *v[] = {ids, u->email.ptr, u->name.ptr, ts};
    int len[] = {UUID_STR_LEN, (int)u->email.len, (int)u->name.len, tn};
    if (idem == NULL) {
        db_query_t q = {STMT(S_INSERT), 4, v, len};
        return submit(svc->db, &q, 1, deadline_ms, true, 0, on_created, c, &c->op);
    }
    /* The record first (db/idem.h): a key that already has an answer fails
       the batch on the key, before a taken email could fail it otherwise. */
    idem_params_t ip;
    idem_params(idem, &ip);
    db_query_t q[IDEM_WRITE_STATEMENTS + 1];
    idem_write_queries(&ip, q);
    q[IDEM_WRITE_STATEMENTS] = (db_query_t){STMT(S_INSERT), 4, v, len};
    return submit(svc->db, q, IDEM_WRITE_STATEMENTS + 1, deadline_ms, true,
                  idem->unleased ? IDEM_LOCK_TIMEOUT_MS : 0, on_created, c, &c->op);
}

/* ---- updates ---- */

static void on_updated(db_op_t *op, int err, PGresult *const *res, size_t n)
{
    users_call_t *c = db_op_arg(op);
    c->op = NULL;
    if (err != 0) {
        finish(c, err == ERR_IO ? map_sql_error(res, n) : err, NULL, 0, false);
        return;
    }
    if (PQntuples(res[0]) == 0) {
        finish(c, PQntuples(res[1]) > 0 ? ERR_PRECONDITION : ERR_NOTFOUND, NULL, 0, false);
        return;
    }
    user_t u;
    if (decode_user(res[0], 0, &u) != 0) {
        finish(c, ERR_IO, NULL, 0, false);
        return;
    }
    c->next = u;
    c->next.email = keep(u.email, c->cur_email, sizeof(c->cur_email));
    c->next.name = keep(u.name, c->cur_name, sizeof(c->cur_name));
    write_through(c);
}

/* "{1,2,3}" for an int8[] parameter, or NULL for "no condition". */
static const char *format_versions(const users_precondition_t *pre, char *out, size_t outlen)
{
    if (pre == NULL || !pre->present || pre->any) {
        return NULL;
    }
    size_t len = 0;
    out[len++] = '{';
    for (size_t i = 0; i < pre->n; i++) {
        int w = snprintf(out + len, outlen - len - 1, "%s%" PRId64, i ? "," : "", pre->versions[i]);
        if (w < 0 || (size_t)w >= outlen - len - 1) {
            break;
        }
        len += (size_t)w;
    }
    out[len++] = '}';
    out[len] = '\0';
    return out;
}

/* Without a key: one batch, the new row computed by PostgreSQL under the
   row lock, so concurrent updates serialize and each one applies. */
static int update_in_place(users_call_t *c)
{
    char ids[UUID_STR_LEN + 1], ts[24], vers[USERS_IF_MATCH_MAX * 21 + 3];
    uuid_format(&c->id, ids);
    ids[UUID_STR_LEN] = '\0';
    snprintf(ts, sizeof(ts), "%" PRId64, clock_wall_us());
    const char *v[] = {ids, c->in.email.ptr, c->in.name.ptr, ts,
                       format_versions(&c->pre, vers, sizeof(vers))};
    int len[] = {UUID_STR_LEN, (int)c->in.email.len, (int)c->in.name.len, (int)strlen(ts),
                 v[4] ? (int)strlen(v[4]) : 0};
    const char *ev[] = {ids};
    int elen[] = {UUID_STR_LEN};
    db_query_t q[] = {{STMT(S_UPDATE), 5, v, len}, {STMT(S_EXISTS), 1, ev, elen}};
    return submit(c->svc->db, q, 2, c->deadline_ms, true, 0, on_updated, c, &c->op);
}

static int start_update_read(users_call_t *c);

static void on_update_written(db_op_t *op, int err, PGresult *const *res, size_t n)
{
    users_call_t *c = db_op_arg(op);
    c->op = NULL;
    if (err != 0) {
        finish(c, err == ERR_IO ? map_sql_error(res, n) : err, NULL, 0, false);
        return;
    }
    if (strcmp(PQcmdTuples(res[n - 1]), "1") != 0) {
        /* Another update got in between our read and our write: read
           again. Each round one writer wins, so every one gets through;
           the deadline bounds the whole. */
        c->attempts++;
        int rc = start_update_read(c);
        if (rc != 0) {
            finish(c, rc, NULL, 0, false);
        }
        return;
    }
    write_through(c);
}

static bool precondition_holds(const users_precondition_t *pre, int64_t version)
{
    if (!pre->present || pre->any) {
        return true;
    }
    for (size_t i = 0; i < pre->n; i++) {
        if (pre->versions[i] == version) {
            return true;
        }
    }
    return false;
}

static void on_update_read(db_op_t *op, int err, PGresult *const *res, size_t n)
{
    users_call_t *c = db_op_arg(op);
    c->op = NULL;
    if (err != 0) {
        finish(c, err == ERR_IO ? map_sql_error(res, n) : err, NULL, 0, false);
        return;
    }
    user_t cur;
    if (PQntuples(res[0]) == 0) {
        finish(c, ERR_NOTFOUND, NULL, 0, false);
        return;
    }
    if (decode_user(res[0], 0, &cur) != 0) {
        finish(c, ERR_IO, NULL, 0, false);
        return;
    }
    if (!precondition_holds(&c->pre, cur.version)) {
        finish(c, ERR_PRECONDITION, NULL, 0, false);
        return;
    }
    /* the new row, complete, before it is written */
    c->next = cur;
    c->next.email = c->in.email.ptr ? c->in.email : keep(cur.email, c->cur_email, sizeof(c->cur_email));
    c->next.name = c->in.name.ptr ? c->in.name : keep(cur.name, c->cur_name, sizeof(c->cur_name));
    c->next.version = cur.version + 1;
    int64_t now = clock_wall_us();
    c->next.updated_us = now > cur.updated_us ? now : cur.updated_us + 1; /* never backwards */
    if (c->prepare != NULL) {
        c->prepare(c, &c->next);
    }

    char ids[UUID_STR_LEN], ver[24], ts[24], old[24];
    uuid_format(&c->id, ids);
    int vn = snprintf(ver, sizeof(ver), "%" PRId64, c->next.version);
    int tn = snprintf(ts, sizeof(ts), "%" PRId64, c->next.updated_us);
    int on = snprintf(old, sizeof(old), "%" PRId64, cur.version);
    const char *v[13] = {ids, c->next.email.ptr, c->next.name.ptr, ver, ts, old};
    int len[13] = {UUID_STR_LEN, (int)c->next.email.len, (int)c->next.name.len, vn, tn, on};
    idem_params_t ip;
    idem_params(c->idem, &ip);
    for (int i = 0; i < 7; i++) {
        v[6 + i] = ip.values[i];
        len[6 + i] = ip.lengths[i];
    }
    /* [the key's expired record deleted] [the row, then its record] */
    db_query_t q[IDEM_WRITE_STATEMENTS];
    idem_write_queries(&ip, q);
    q[1] = (db_query_t){STMT(S_UPDATE_IDEM), 13, v, len};
    int rc = submit(c->svc->db, q, 2, c->deadline_ms, true, c->idem->unleased ? IDEM_LOCK_TIMEOUT_MS : 0,
                    on_update_written, c, &c->op);
    if (rc != 0) {
        finish(c, rc, NULL, 0, false);
    }
}

static int start_update_read(users_call_t *c)
{
    char ids[UUID_STR_LEN];
    uuid_format(&c->id, ids);
    const char *v[] = {ids};
    int len[] = {UUID_STR_LEN};
    db_query_t q = {STMT(S_GET), 1, v, len}; /* from PostgreSQL: the cache may lag */
    return submit(c->svc->db, &q, 1, c->deadline_ms, false, 0, on_update_read, c, &c->op);
}

int users_update(users_call_t *c, users_svc_t *svc, const uuid_bytes_t *id, const user_input_t *in,
                 const users_precondition_t *pre, uint64_t deadline_ms)
{
    c->svc = svc;
    c->kind = K_UPDATE;
    c->id = *id;
    c->pre = *pre;
    c->attempts = 0;
    c->deadline_ms = deadline_ms;
    c->in.email = keep(in->email, c->email_buf, sizeof(c->email_buf));
    c->in.name = keep(in->name, c->name_buf, sizeof(c->name_buf));
    return c->idem != NULL ? start_update_read(c) : update_in_place(c);
}

static void on_deleted(db_op_t *op, int err, PGresult *const *res, size_t n)
{
    users_call_t *c = db_op_arg(op);
    c->op = NULL;
    if (err != 0) {
        finish(c, err == ERR_IO ? map_sql_error(res, n) : err, NULL, 0, false);
        return;
    }
    if (PQntuples(res[0]) > 0) {
        write_through(c);
        return;
    }
    finish(c, PQntuples(res[1]) > 0 ? ERR_PRECONDITION : ERR_NOTFOUND, NULL, 0, false);
}

int users_delete(users_call_t *c, users_svc_t *svc, const uuid_bytes_t *id, const users_precondition_t *pre,
                 uint64_t deadline_ms)
{
    c->svc = svc;
    c->kind = K_DELETE;
    c->id = *id;
    c->deadline_ms = deadline_ms;
    char ids[UUID_STR_LEN + 1];
    char vers[USERS_IF_MATCH_MAX * 21 + 3];
    uuid_format(id, ids);
    ids[UUID_STR_LEN] = '\0';
    const char *v[] = {ids, format_versions(pre, vers, sizeof(vers))};
    const char *ev[] = {ids};
    db_query_t q[] = {{STMT(S_DELETE), 2, v, NULL}, {STMT(S_EXISTS), 1, ev, NULL}};
    return submit(svc->db, q, 2, deadline_ms, true, 0, on_deleted, c, &c->op);
}

void users_call_cancel(users_call_t *c)
{
    if (c->op != NULL) {
        db_op_cancel(c->op);
        c->op = NULL;
        if (c->kind == K_UPDATE || c->kind == K_DELETE) {
            /* The write may still commit after we stop listening: make the
               cache forget this id (the tombstone outlives any statement). */
            if (send_tombstone(c->svc, &c->id, NULL, NULL, NULL) != 0) {
                queue_invalidation(c->svc, &c->id);
            }
        }
    }
    if (c->rcmd != NULL) {
        redis_cmd_cancel(c->rcmd);
        c->rcmd = NULL;
    }
    if (c->fetch != NULL) {
        waiter_unlink(c);
    }
}
