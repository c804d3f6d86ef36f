/* idempotency: lookup, lease, replay, and storing final client errors. */
#include "middleware/idempotency.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/clock.h"
#include "base/err.h"
#include "db/row.h"
#include "obs/log.h"
#include "redis/client.h"
#include "base/banned.h"

#define LEASE_PREFIX "api:idem:"

const db_stmt_t idem_statements[] = {
    {"idem_get", "SELECT fingerprint, status::int8, body, coalesce(etag, ''), coalesce(location, '') "
                 "FROM idempotency_keys WHERE principal = $1 AND key = $2 "
                 "AND stored_at > now() - make_interval(secs => $3::float8)"},
    {"idem_insert", IDEM_INSERT_SQL},
    /* a final client error, stored after its answer: first one wins */
    {"idem_insert_final", IDEM_INSERT_SQL " ON CONFLICT DO NOTHING"},
    {"idem_purge", "DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY(SELECT ctid FROM idempotency_keys "
                   "WHERE stored_at < now() - make_interval(secs => $1::float8) LIMIT 1000))"},
};
const size_t idem_statements_count = sizeof(idem_statements) / sizeof(idem_statements[0]);

/* Compare-and-delete: release only the lease we hold. */
static const char release_script[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then "
                                     "return redis.call('DEL', KEYS[1]) else return 0 end";

static idem_opts_t opts;

typedef struct {
    idem_write_t w;
    char token[33];   /* the lease's value: ours alone */
    bool lease_held;  /* the Redis lease is ours and must be released */
    size_t lease_len; /* of lease_key */
    char *lease_key;  /* in the request pool */
    bool replayed;
} idem_state_t;

void mw_idempotency_init(const idem_opts_t *o)
{
    opts = *o;
}

void idem_params(const idem_write_t *w, idem_params_t *p)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        p->fp_hex[2 * i] = hex[w->fingerprint[i] >> 4];
        p->fp_hex[2 * i + 1] = hex[w->fingerprint[i] & 15];
    }
    p->fp_hex[64] = '\0';
    int n = snprintf(p->status, sizeof(p->status), "%d", w->status);
    str_t v[7] = {w->principal, w->key,     str_make(p->fp_hex, 64), str_make(p->status, (size_t)n), w->body,
                  w->etag,      w->location};
    for (int i = 0; i < 7; i++) {
        p->values[i] = v[i].ptr ? v[i].ptr : "";
        p->lengths[i] = (int)v[i].len;
    }
}

idem_write_t *mw_idempotency_write(http_ctx_t *ctx)
{
    idem_state_t *st = ctx->idem;
    return st != NULL && !st->replayed ? &st->w : NULL;
}

/* ---- the lease ---- */

typedef struct {
    redis_cmd_t *cmd;
} release_t;

static void on_released(redis_cmd_t *cmd, int err, redisReply *reply)
{
    (void)err;
    (void)reply;
    free(redis_cmd_arg(cmd));
}

static void release_lease(http_worker_t *w, const char *key, size_t key_len, const char *token)
{
    if (w->redis == NULL || key_len == 0) {
        return;
    }
    release_t *r = malloc(sizeof(*r));
    if (r == NULL) {
        return;
    }
    const char *argv[] = {"EVAL", release_script, "1", key, token};
    size_t lens[] = {4, sizeof(release_script) - 1, 1, key_len, 32};
    /* fire and forget; if it fails, the lease simply expires */
    if (redis_cmd(w->redis, clock_mono_ms() + 1000, on_released, r, &r->cmd, 5, argv, lens) != 0) {
        free(r);
    }
}

/* ---- storing a final client error before its answer ---- */

/*
 * A final client error is stored first and answered when it is stored, so
 * an immediate retry already finds it (with or without a Redis lease). The
 * job outlives the request if it must: a request that goes away (deadline,
 * client) leaves the store running, and the job frees itself.
 */
typedef struct {
    http_pending_t pending; /* first: the cancel hook gets this pointer */
    http_worker_t *w;
    db_op_t *op;
    size_t lease_len;
    char token[33];
    char *lease_key;
    int status;
    str_t content_type, body; /* copies in the request's pool: valid while it is */
} store_job_t;

static void job_cancel(http_pending_t *p)
{
    (void)p; /* let the store finish; on_stored frees the job */
}

static void on_stored(db_op_t *op, int err, PGresult *const *res, size_t n)
{
    store_job_t *j = db_op_arg(op);
    (void)res;
    (void)n;
    if (err != 0) {
        log_warn("idempotency: could not store a final answer (%s); a retry will run again", err_name(err));
    }
    http_ctx_t *ctx = http_pending_finish(&j->pending);
    if (ctx != NULL) {
        http_respond(ctx, j->status, j->content_type, j->body);
    }
    release_lease(j->w, j->lease_key, j->lease_len, j->token);
    free(j->lease_key);
    free(j);
}

static bool is_final_client_error(int status)
{
    /* answers that a retry of the same request would get again; 409 here
       is a conflict with the data (a taken email), not "in flight" */
    return status == 404 || status == 409 || status == 412 || status == 422;
}

static bool on_respond(http_ctx_t *ctx, int status, str_t content_type, str_t body)
{
    idem_state_t *st = ctx->idem;
    http_worker_t *w = ctx->w;
    if (st->replayed) {
        return false;
    }
    size_t held = st->lease_held ? st->lease_len : 0;
    if (!is_final_client_error(status) || w->db == NULL) {
        /* 2xx: stored with the write. 5xx, timeouts: nothing stored, so the
           retry runs again. Either way the lease goes now. */
        release_lease(w, st->lease_key, held, st->token);
        return false;
    }
    store_job_t *j = calloc(1, sizeof(*j));
    char *lease_key = held ? malloc(held) : NULL;
    if (j == NULL || (held && lease_key == NULL)) {
        free(j);
        free(lease_key);
        release_lease(w, st->lease_key, held, st->token);
        return false;
    }
    if (held) {
        memcpy(lease_key, st->lease_key, held);
    }
    h2o_iovec_t b = h2o_strdup(&ctx->req->pool, body.ptr, body.len);
    h2o_iovec_t ct = h2o_strdup(&ctx->req->pool, content_type.ptr, content_type.len);
    *j = (store_job_t){.w = w,
                       .lease_len = held,
                       .lease_key = lease_key,
                       .status = status,
                       .content_type = str_make(ct.base, ct.len),
                       .body = str_make(b.base, b.len)};
    j->pending.cancel = job_cancel;
    memcpy(j->token, st->token, sizeof(j->token));
    idem_write_t rec = st->w;
    rec.status = status;
    rec.body = j->body;
    rec.etag = STR("");
    rec.location = STR("");
    idem_params_t p;
    idem_params(&rec, &p);
    db_query_t q = {&idem_statements[IDEM_STMT_INSERT_FINAL], 7, p.values, p.lengths};
    db_batch_t batch = {.qs = &q, .n = 1, .deadline_ms = ctx->deadline_ms, .writes = true};
    if (db_submit(w->db, &batch, on_stored, j, &j->op) != 0) {
        release_lease(w, st->lease_key, held, st->token);
        free(lease_key);
        free(j);
        return false; /* answer now, unstored */
    }
    http_pending_attach(ctx, &j->pending);
    return true;
}

/* ---- the pipeline step ---- */

typedef struct {
    http_pending_t pending; /* first: the cancel hook gets this pointer */
    db_op_t *op;
    redis_cmd_t *cmd;
} idem_op_t;

static void idem_cancel(http_pending_t *p)
{
    idem_op_t *o = (idem_op_t *)p;
    if (o->op != NULL) {
        db_op_cancel(o->op);
    }
    if (o->cmd != NULL) {
        redis_cmd_cancel(o->cmd);
    }
    free(o);
}

static void replay(http_ctx_t *ctx, idem_state_t *st, int status, str_t body, str_t etag, str_t location)
{
    st->replayed = true;
    http_header_add(ctx, STR("idempotent-replayed"), STR("true"));
    if (etag.len > 0) {
        http_header_add(ctx, STR("etag"), etag);
    }
    if (location.len > 0) {
        http_header_add(ctx, STR("location"), location);
    }
    http_respond(ctx, status, status >= 400 ? STR(HTTP_PROBLEM_CONTENT_TYPE) : STR("application/json"), body);
}

static void on_lease(redis_cmd_t *cmd, int err, redisReply *reply)
{
    idem_op_t *o = redis_cmd_arg(cmd);
    http_ctx_t *ctx = http_pending_finish(&o->pending);
    free(o);
    if (ctx == NULL) {
        return;
    }
    idem_state_t *st = ctx->idem;
    if (err == 0 && reply->type == REDIS_REPLY_NIL) {
        ctx->on_respond = NULL; /* the lease is someone else's */
        http_respond_error(ctx, 409, "idempotency-key-in-flight",
                           "a request with this Idempotency-Key is still being processed; retry later");
        return;
    }
    /* OK: the lease is ours. Anything else: Redis could not say, and
       PostgreSQL settles races on its own. */
    st->lease_held = err == 0 && reply->type == REDIS_REPLY_STATUS;
    st->w.unleased = !st->lease_held;
    mw_resume(ctx);
}

static void take_lease(http_ctx_t *ctx, idem_state_t *st)
{
    http_worker_t *w = ctx->w;
    if (w->redis == NULL || !redis_client_usable(w->redis)) {
        mw_resume(ctx);
        return;
    }
    idem_op_t *o = calloc(1, sizeof(*o));
    if (o == NULL) {
        mw_resume(ctx);
        return;
    }
    o->pending.cancel = idem_cancel;
    char px[24];
    int64_t ms = http_deadline_left_ms(ctx) + opts.lease_ms;
    snprintf(px, sizeof(px), "%lld", (long long)ms);
    const char *argv[] = {"SET", st->lease_key, st->token, "NX", "PX", px};
    size_t lens[] = {3, st->lease_len, 32, 2, 2, strlen(px)};
    if (redis_cmd(w->redis, ctx->deadline_ms, on_lease, o, &o->cmd, 6, argv, lens) != 0) {
        free(o);
        mw_resume(ctx);
        return;
    }
    http_pending_attach(ctx, &o->pending);
}

static void on_lookup(db_op_t *op, int err, PGresult *const *res, size_t n)
{
    idem_op_t *o = db_op_arg(op);
    http_ctx_t *ctx = http_pending_finish(&o->pending);
    free(o);
    (void)n;
    if (ctx == NULL) {
        return;
    }
    idem_state_t *st = ctx->idem;
    if (err != 0) {
        ctx->on_respond = NULL;
        http_respond_err(ctx, err == ERR_IO ? ERR_UNAVAILABLE : err);
        return;
    }
    if (PQntuples(res[0]) == 0) {
        take_lease(ctx, st);
        return;
    }
    str_t fp, body, etag, location;
    int64_t status;
    if (db_row_text(res[0], 0, 0, &fp) != 0 || db_row_int8(res[0], 0, 1, &status) != 0 ||
        db_row_text(res[0], 0, 2, &body) != 0 || db_row_text(res[0], 0, 3, &etag) != 0 ||
        db_row_text(res[0], 0, 4, &location) != 0 || fp.len != 32) {
        ctx->on_respond = NULL;
        http_respond_err(ctx, ERR_IO);
        return;
    }
    if (memcmp(fp.ptr, st->w.fingerprint, 32) != 0) {
        st->replayed = true; /* nothing of ours to store */
        http_respond_error(ctx, 422, "idempotency-key-reused",
                           "this Idempotency-Key was used with another request (method, path or body)");
        return;
    }
    replay(ctx, st, (int)status, body, etag, location);
}

bool mw_idempotency_key_valid(str_t k)
{
    if (k.len == 0 || k.len > IDEM_KEY_MAX) {
        return false;
    }
    for (size_t i = 0; i < k.len; i++) {
        if ((unsigned char)k.ptr[i] < 0x20 || (unsigned char)k.ptr[i] > 0x7E) {
            return false;
        }
    }
    return true;
}

static char *pool_copy(http_ctx_t *ctx, const char *p, size_t n)
{
    char *d = h2o_mem_alloc_pool(&ctx->req->pool, n + 1);
    memcpy(d, p, n);
    d[n] = '\0';
    return d;
}

mw_result_t mw_idempotency_run(http_ctx_t *ctx)
{
    if (ctx->match.route == NULL || (ctx->match.route->flags & HTTP_ROUTE_IDEMPOTENT) == 0) {
        return MW_NEXT;
    }
    str_t key = http_header_get(ctx, STR("idempotency-key"));
    if (key.ptr == NULL) {
        return MW_NEXT;
    }
    if (!mw_idempotency_key_valid(key)) {
        http_respond_invalid(ctx, 400, STR("Idempotency-Key"), "must be 1 to 255 printable ASCII characters",
                             "invalid Idempotency-Key header");
        return MW_DONE;
    }
    idem_state_t *st = h2o_mem_alloc_pool(&ctx->req->pool, sizeof(*st));
    *st = (idem_state_t){0};
    /* keys belong to the caller: a token without sub shares "-" */
    str_t principal = ctx->subject.len > 0 ? ctx->subject : STR("-");
    st->w.principal = str_make(pool_copy(ctx, principal.ptr, principal.len), principal.len);
    st->w.key = str_make(pool_copy(ctx, key.ptr, key.len), key.len);

    /* fingerprint: method, path (with query) and body, NUL-separated */
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int mdlen = 0;
    bool ok = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) &&
              EVP_DigestUpdate(md, ctx->req->method.base, ctx->req->method.len) &&
              EVP_DigestUpdate(md, "", 1) && EVP_DigestUpdate(md, ctx->req->path.base, ctx->req->path.len) &&
              EVP_DigestUpdate(md, "", 1) &&
              (ctx->req->entity.base == NULL ||
               EVP_DigestUpdate(md, ctx->req->entity.base, ctx->req->entity.len)) &&
              EVP_DigestFinal_ex(md, st->w.fingerprint, &mdlen) && mdlen == 32;
    EVP_MD_CTX_free(md);
    if (!ok) {
        http_respond_err(ctx, ERR_NOMEM);
        return MW_DONE;
    }

    http_reqid_generate(st->token);
    st->token[32] = '\0';
    st->lease_len = sizeof(LEASE_PREFIX) - 1 + principal.len + 1 + key.len;
    st->lease_key = h2o_mem_alloc_pool(&ctx->req->pool, st->lease_len);
    memcpy(st->lease_key, LEASE_PREFIX, sizeof(LEASE_PREFIX) - 1);
    memcpy(st->lease_key + sizeof(LEASE_PREFIX) - 1, principal.ptr, principal.len);
    st->lease_key[sizeof(LEASE_PREFIX) - 1 + principal.len] = '\0'; /* the sub may not contain NUL */
    memcpy(st->lease_key + sizeof(LEASE_PREFIX) + principal.len, key.ptr, key.len);
    st->w.unleased = true; /* until a lease is taken */
    ctx->idem = st;
    ctx->on_respond = on_respond;

    idem_op_t *o = calloc(1, sizeof(*o));
    if (o == NULL) {
        ctx->on_respond = NULL;
        http_respond_err(ctx, ERR_NOMEM);
        return MW_DONE;
    }
    o->pending.cancel = idem_cancel;
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%lld", (long long)opts.ttl_s);
    const char *v[] = {st->w.principal.ptr, st->w.key.ptr, ttl};
    int len[] = {(int)st->w.principal.len, (int)st->w.key.len, (int)strlen(ttl)};
    db_query_t q = {&idem_statements[IDEM_STMT_GET], 3, v, len};
    db_batch_t b = {.qs = &q, .n = 1, .deadline_ms = ctx->deadline_ms};
    int rc = db_submit(ctx->w->db, &b, on_lookup, o, &o->op);
    if (rc != 0) {
        free(o);
        ctx->on_respond = NULL;
        http_respond_err(ctx, rc);
        return MW_DONE;
    }
    http_pending_attach(ctx, &o->pending);
    return MW_SUSPEND;
}

static void on_purged(db_op_t *op, int err, PGresult *const *res, size_t n)
{
    (void)op;
    (void)n;
    if (err == 0 && res[0] != NULL) {
        const char *rows = PQcmdTuples(res[0]);
        if (rows[0] != '0' && rows[0] != '\0') {
            log_info("idempotency: purged %s expired keys", rows);
        }
    }
}

void idem_purge(db_pool_t *db, uint64_t deadline_ms)
{
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%lld", (long long)opts.ttl_s);
    const char *v[] = {ttl};
    db_query_t q = {&idem_statements[IDEM_STMT_PURGE], 1, v, NULL};
    db_batch_t b = {.qs = &q, .n = 1, .deadline_ms = deadline_ms, .writes = true};
    db_op_t *op;
    if (db_submit(db, &b, on_purged, NULL, &op) != 0) {
        log_debug("idempotency: purge skipped, the database is unavailable");
    }
}
