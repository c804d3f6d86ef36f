/*
 * users: the users domain on PostgreSQL with a Redis cache. No HTTP here:
 * inputs are domain values (already validated by the route), outputs are
 * user_t rows and err.h codes.
 *
 * Reads of one user are cache-aside: Redis first (a hit never touches
 * PostgreSQL), then PostgreSQL, with concurrent misses for one id coalesced
 * per worker into one query; the answer fills the cache with a versioned,
 * jittered entry (an older version never overwrites a newer one), and a "not
 * found" is cached for one second. Every committed write updates the cache
 * before it is answered (the new version, or a tombstone on delete), so a
 * read through any process right after a write sees it. If Redis cannot be
 * told, the id is queued and retried when Redis is back.
 *
 * Writes are one batch each (db/pool.h): creating stores the user (and the
 * idempotency record, when given) atomically, the record first (db/idem.h).
 * Updating without a record is one statement: PostgreSQL computes the new
 * row under the row lock, so concurrent updates serialize and all apply.
 * Updating with a record is optimistic, because the answer stored with the
 * write must be known before it commits: read the row, compute the new
 * one, write it only if the version is unchanged, else read again - until
 * it succeeds or the deadline passes.
 *
 * The caller owns the users_call_t and keeps it alive until the callback
 * runs or users_call_cancel() returns; the callback runs at most once, never
 * synchronously. user_t views die with the callback.
 */
#ifndef SERVICES_USERS_H
#define SERVICES_USERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/str.h"
#include "base/uuid.h"
#include "db/pool.h"
#include "db/idem.h"
#include "redis/client.h"

#define USERS_NAME_MAX_CODEPOINTS 100
#define USERS_NAME_MAX_BYTES      400
#define USERS_EMAIL_MAX           254
#define USERS_PAGE_MAX            100
#define USERS_IF_MATCH_MAX        8

typedef struct {
    uuid_bytes_t id;
    str_t email;
    str_t name;
    int64_t version;
    int64_t created_us; /* Unix microseconds */
    int64_t updated_us;
} user_t;

/* Fields to set; a field with ptr == NULL is left alone (PATCH). */
typedef struct {
    str_t email; /* lower-cased, validated */
    str_t name;  /* validated */
} user_input_t;

/* Versions an If-Match header names; any = "*" (must merely exist). */
typedef struct {
    bool present;
    bool any;
    size_t n;
    int64_t versions[USERS_IF_MATCH_MAX];
} users_precondition_t;

typedef struct users_svc users_svc_t;

typedef struct {
    int64_t cache_ttl_ms; /* 0: no cache */
    int64_t tombstone_ms; /* how long a deleted id blocks stale cache fills */
} users_svc_opts_t;

struct users_call;
/*
 * err: 0, ERR_NOTFOUND, ERR_CONFLICT (email taken), ERR_PRECONDITION
 * (If-Match failed), ERR_REPLAY (the idempotency key already has an
 * answer: nothing was written), ERR_RETRY (nothing was written because of a
 * concurrent request - a duplicate holding the key, a deadlock; a retry may
 * succeed), ERR_UNAVAILABLE, ERR_TIMEOUT, ERR_IO. Lists: n rows and has_more.
 */
typedef void (*users_cb)(struct users_call *call, int err, const user_t *users, size_t n, bool has_more);

typedef struct users_call {
    users_cb cb;
    void *arg;
    /* Updates only: called once the new row is known, before it is written,
       to fill *idem's status/body/etag/location. NULL: no record. */
    void (*prepare)(struct users_call *call, const user_t *next);
    idem_record_t *idem;
    /* internal */
    users_svc_t *svc;
    db_op_t *op;
    redis_cmd_t *rcmd;
    struct users_fetch *fetch;
    struct users_call *wnext, *wprev; /* waiters of one fetch */
    int limit;
    int attempts;
    int kind;
    uint64_t deadline_ms;
    uuid_bytes_t id;
    users_precondition_t pre;
    user_input_t in;
    user_t next;
    char email_buf[USERS_EMAIL_MAX];
    char name_buf[USERS_NAME_MAX_BYTES];
    char cur_email[USERS_EMAIL_MAX]; /* the row as read, for updates */
    char cur_name[USERS_NAME_MAX_BYTES];
} users_call_t;

/* The statements the pool prepares on each connection. */
extern const db_stmt_t users_statements[];
extern const size_t users_statements_count;

/* Call once before workers start. */
void users_init(void);
users_svc_t *users_svc_new(db_pool_t *db, redis_client_t *redis, const users_svc_opts_t *opts);
/* After the pool and the Redis client are freed (their last callbacks may
   still reach the service). */
void users_svc_free(users_svc_t *svc);

int users_get(users_call_t *c, users_svc_t *svc, const uuid_bytes_t *id, uint64_t deadline_ms)
    __attribute__((warn_unused_result));
/* Ascending id order; after == NULL: from the start. limit 1..USERS_PAGE_MAX */
int users_list(users_call_t *c, users_svc_t *svc, const uuid_bytes_t *after, int limit, uint64_t deadline_ms)
    __attribute__((warn_unused_result));
/* Fills a new user (id, timestamps, version 1) from in; views point into in. */
void users_prepare_create(const user_input_t *in, user_t *out);
/* Inserts u (from users_prepare_create), and idem's record in the same batch. */
int users_create(users_call_t *c, users_svc_t *svc, const user_t *u, const idem_record_t *idem,
                 uint64_t deadline_ms) __attribute__((warn_unused_result));
int users_update(users_call_t *c, users_svc_t *svc, const uuid_bytes_t *id, const user_input_t *in,
                 const users_precondition_t *pre, uint64_t deadline_ms) __attribute__((warn_unused_result));
int users_delete(users_call_t *c, users_svc_t *svc, const uuid_bytes_t *id, const users_precondition_t *pre,
                 uint64_t deadline_ms) __attribute__((warn_unused_result));
void users_call_cancel(users_call_t *c);

/* ---- pure helpers (unit-tested) ---- */

/* Checks an email (RFC 5321 sizes, a dot-atom local part, a DNS-style
   domain) and writes its lower-case form to out (USERS_EMAIL_MAX bytes).
   Returns NULL when valid, else a message for the client. */
const char *users_check_email(str_t email, char *out, size_t *outlen);
/* 1..100 code points, no NUL (jansson has already rejected invalid UTF-8). */
const char *users_check_name(str_t name);

/* The cache entry for u, and back. Returns the length written / 0 or
   ERR_INVAL. A decoded user's views point into s. */
size_t users_cache_encode(const user_t *u, char *out, size_t outlen);
int users_cache_decode(str_t s, const uuid_bytes_t *id, user_t *out) __attribute__((warn_unused_result));
#define USERS_CACHE_MAX 800

#endif
