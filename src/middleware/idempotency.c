/* idempotency: the key, the fingerprint, the lease, replays, final errors. */
#include "middleware/idempotency.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/clock.h"
#include "base/err.h"
#include "obs/log.h"
#include "obs/metrics.h"
#include "redis/client.h"
#include "base/banned.h"

#define LEASE_PREFIX "api:idem:"

/* Compare-and-delete: release only the lease we hold. */
static redis_script_t release_script = REDIS_SCRIPT("if redis.call('GET', KEYS[1]) == ARGV[1] then "
                                                    "return redis.call('DEL', KEYS[1]) else return 0 end");

static idem_opts_t opts;

typedef struct {
    idem_record_t rec;
    char token[33];   /* the lease's value: ours alone */
    bool lease_held;  /* the Redis lease is ours and must be released */
    size_t lease_len; /* of lease_key */
    char *lease_key;  /* in the request pool */
    bool from_record; /* the answer is (or is about to be) a stored one */
} idem_state_t;

void mw_idempotency_init(const idem_opts_t *o)
{
    opts = *o;
    idem_init(o->ttl_s);
    redis_script_init(&release_script);
}

idem_record_t *mw_idempotency_record(http_ctx_t *ctx)
{
    idem_state_t *st = ctx->idem;
    return st != NULL && !st->from_record ? &st->rec : NULL;
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

/* ---- the lease ---- */

static void release_lease(http_worker_t *w, idem_state_t *st)
{
    if (!st->lease_held || w->redis == NULL) {
        return;
    }
    st->lease_held = false;
    const char *args[] = {st->lease_key, st->token};
    size_t lens[] = {st->lease_len, 32};
    /* if it is not sent, the lease simply expires */
    (void)redis_fire_eval(w->redis, &release_script, 1, 2, args, lens);
}

/* ---- answering from the record ---- */

/*
 * Pending work for a request - reading a record back, storing a final
 * answer - tied to it so that a request that goes away (deadline, client)
 * drops the result. A store is not cancelled with its request: an answer
 * already given is still worth keeping for the retry.
 */
typedef struct {
    http_pending_t pending; /* first: the cancel hook gets this pointer */
    http_worker_t *w;
    db_op_t *op;
    bool keep_running; /* a store: let it finish */
    /* a final answer waiting for its store (copies in the request's pool) */
    int status;
    str_t content_type, body;
} idem_job_t;

static void job_cancel(http_pending_t *p)
{
    idem_job_t *j = (idem_job_t *)p;
    if (!j->keep_running) {
        db_op_cancel(j->op);
        free(j);
    } /* else the store finishes and its callback frees the job */
}

static void replay(http_ctx_t *ctx, const idem_record_t *r)
{
    metrics_inc(M_IDEM_REPLAYS);
    http_header_add(ctx, STR("idempotent-replayed"), STR("true"));
    if (r->etag.len > 0) {
        http_header_add(ctx, STR("etag"), r->etag);
    }
    if (r->location.len > 0) {
        http_header_add(ctx, STR("location"), r->location);
    }
    http_respond(ctx, r->status, r->status >= 400 ? STR(HTTP_PROBLEM_CONTENT_TYPE) : STR("application/json"),
                 r->body);
}

static void on_record(void *arg, int err, const idem_record_t *r)
{
    idem_job_t *j = arg;
    http_ctx_t *ctx = http_pending_finish(&j->pending);
    http_worker_t *w = j->w;
    free(j);
    if (ctx == NULL) {
        return;
    }
    idem_state_t *st = ctx->idem;
    if (err == ERR_NOTFOUND) {
        /* No answer stored: the request holding the lease is still running
           (or, rarely, the record just expired: then a retry runs as new). */
        metrics_inc(M_IDEM_IN_FLIGHT);
        http_problem_t p = {
            .status = 409,
            .slug = "idempotency-key-in-flight",
            .title = "Conflict",
            .detail = STR("a request with this Idempotency-Key is still being processed; retry later"),
            .retry_after_s = 1,
            .retryable = true};
        http_respond_problem(ctx, &p);
    } else if (err != 0) {
        http_respond_err(ctx, err);
    } else if (memcmp(r->fingerprint, st->rec.fingerprint, 32) != 0) {
        metrics_inc(M_IDEM_CONFLICTS);
        http_respond_error(
            ctx, 422, "idempotency-key-reused",
            "this Idempotency-Key was used with another request (method, path, preconditions or body)");
    } else {
        replay(ctx, r);
    }
    release_lease(w, st);
}

void mw_idempotency_replay(http_ctx_t *ctx)
{
    idem_state_t *st = ctx->idem;
    st->from_record = true;
    ctx->on_respond = NULL; /* whatever is answered now is not stored */
    idem_job_t *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        http_respond_err(ctx, ERR_NOMEM);
        release_lease(ctx->w, st);
        return;
    }
    j->w = ctx->w;
    j->pending.cancel = job_cancel;
    int rc = idem_read(ctx->w->db, st->rec.principal, st->rec.key, ctx->deadline_ms, on_record, j, &j->op);
    if (rc != 0) {
        free(j);
        http_respond_err(ctx, rc);
        release_lease(ctx->w, st);
        return;
    }
    http_pending_attach(ctx, &j->pending);
}

/* ---- storing a final client error before its answer ---- */

static void on_final_stored(void *arg, int err, bool stored)
{
    idem_job_t *j = arg;
    http_ctx_t *ctx = http_pending_finish(&j->pending);
    if (err != 0) {
        log_warn("idempotency: could not store a final answer (%s); a retry will run again", err_name(err));
    }
    if (ctx == NULL) {
        free(j);
        return; /* stored for the retry; nobody to answer */
    }
    idem_state_t *st = ctx->idem;
    if (err == 0 && !stored) {
        /* the key already had an answer: that one is the request's */
        free(j);
        mw_idempotency_replay(ctx);
        return;
    }
    http_respond(ctx, j->status, j->content_type, j->body);
    free(j);
    release_lease(ctx->w, st);
}

/* The answer is the request's outcome when it is a client error that is not
   marked retryable: it is stored before it is sent, so an immediate retry
   already finds it. 2xx answers are stored by the write itself. */
static bool on_respond(http_ctx_t *ctx, int status, str_t content_type, str_t body)
{
    idem_state_t *st = ctx->idem;
    http_worker_t *w = ctx->w;
    bool final_error = status >= 400 && status < 500 && !ctx->answer_retryable;
    if (st->from_record || !final_error || w->db == NULL) {
        release_lease(w, st);
        return false;
    }
    idem_job_t *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        release_lease(w, st);
        return false;
    }
    h2o_iovec_t b = h2o_strdup(&ctx->req->pool, body.ptr, body.len);
    h2o_iovec_t ct = h2o_strdup(&ctx->req->pool, content_type.ptr, content_type.len);
    *j = (idem_job_t){.w = w,
                      .keep_running = true,
                      .status = status,
                      .content_type = str_make(ct.base, ct.len),
                      .body = str_make(b.base, b.len)};
    j->pending.cancel = job_cancel;
    idem_record_t rec = st->rec;
    rec.status = status;
    rec.body = j->body;
    rec.etag = STR("");
    rec.location = STR("");
    if (idem_store_final(w->db, &rec, ctx->deadline_ms, on_final_stored, j, &j->op) != 0) {
        free(j);
        release_lease(w, st);
        return false; /* answer now, unstored */
    }
    http_pending_attach(ctx, &j->pending);
    return true;
}

/* ---- the pipeline step ---- */

typedef struct {
    http_pending_t pending; /* first: the cancel hook gets this pointer */
    redis_cmd_t *cmd;
} lease_op_t;

static void lease_cancel(http_pending_t *p)
{
    lease_op_t *o = (lease_op_t *)p;
    redis_cmd_cancel(o->cmd);
    free(o);
}

static void on_lease(redis_cmd_t *cmd, int err, redisReply *reply)
{
    lease_op_t *o = redis_cmd_arg(cmd);
    http_ctx_t *ctx = http_pending_finish(&o->pending);
    free(o);
    if (ctx == NULL) {
        return;
    }
    idem_state_t *st = ctx->idem;
    if (err == 0 && reply->type == REDIS_REPLY_NIL) {
        ctx->on_respond = NULL; /* the lease is someone else's */
        http_problem_t p = {
            .status = 409,
            .slug = "idempotency-key-in-flight",
            .title = "Conflict",
            .detail = STR("a request with this Idempotency-Key is still being processed; retry later"),
            .retry_after_s = 1,
            .retryable = true};
        http_respond_problem(ctx, &p);
        return;
    }
    /* OK: the lease is ours. Anything else: Redis could not say, and
       PostgreSQL settles races on its own. */
    st->lease_held = err == 0 && reply->type == REDIS_REPLY_STATUS;
    st->rec.unleased = !st->lease_held;
    mw_resume(ctx);
}

static mw_result_t take_lease(http_ctx_t *ctx, idem_state_t *st)
{
    http_worker_t *w = ctx->w;
    if (w->redis == NULL || !redis_client_usable(w->redis)) {
        return MW_NEXT;
    }
    lease_op_t *o = calloc(1, sizeof(*o));
    if (o == NULL) {
        return MW_NEXT;
    }
    o->pending.cancel = lease_cancel;
    char px[24];
    int64_t ms = http_deadline_left_ms(ctx) + opts.lease_ms;
    snprintf(px, sizeof(px), "%lld", (long long)ms);
    const char *argv[] = {"SET", st->lease_key, st->token, "NX", "PX", px};
    size_t lens[] = {3, st->lease_len, 32, 2, 2, strlen(px)};
    if (redis_cmd(w->redis, ctx->deadline_ms, on_lease, o, &o->cmd, 6, argv, lens) != 0) {
        free(o);
        return MW_NEXT;
    }
    http_pending_attach(ctx, &o->pending);
    return MW_SUSPEND;
}

static char *pool_copy(http_ctx_t *ctx, const char *p, size_t n)
{
    char *d = h2o_mem_alloc_pool(&ctx->req->pool, n + 1);
    memcpy(d, p, n);
    d[n] = '\0';
    return d;
}

/* SHA-256 of method, path (with query), If-Match and body, NUL-separated:
   a request with other preconditions is another request. */
static bool fingerprint(http_ctx_t *ctx, uint8_t out[32])
{
    h2o_req_t *req = ctx->req;
    str_t if_match = http_header_get(ctx, STR("if-match"));
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int n = 0;
    bool ok = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) &&
              EVP_DigestUpdate(md, req->method.base, req->method.len) && EVP_DigestUpdate(md, "", 1) &&
              EVP_DigestUpdate(md, req->path.base, req->path.len) && EVP_DigestUpdate(md, "", 1) &&
              (if_match.ptr == NULL || EVP_DigestUpdate(md, if_match.ptr, if_match.len)) &&
              EVP_DigestUpdate(md, "", 1) &&
              (req->entity.base == NULL || EVP_DigestUpdate(md, req->entity.base, req->entity.len)) &&
              EVP_DigestFinal_ex(md, out, &n) && n == 32;
    EVP_MD_CTX_free(md);
    return ok;
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
    st->rec.principal = str_make(pool_copy(ctx, principal.ptr, principal.len), principal.len);
    st->rec.key = str_make(pool_copy(ctx, key.ptr, key.len), key.len);
    if (!fingerprint(ctx, st->rec.fingerprint)) {
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
    st->rec.unleased = true; /* until a lease is taken */
    ctx->idem = st;
    ctx->on_respond = on_respond;
    return take_lease(ctx, st);
}
