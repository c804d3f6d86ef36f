/*
 * users: the users domain on PostgreSQL. No HTTP here: inputs are domain
 * values (already validated by the route), outputs are user_t rows and
 * err.h codes.
 *
 * Every call is one batch on the worker's pool (see db/pool.h), so each
 * write is atomic and conditional writes (If-Match) are decided inside the
 * same statement that writes, never by a read-then-write race.
 *
 * The caller owns the users_call_t and keeps it alive until the callback
 * runs or users_call_cancel() returns; the callback runs at most once, never
 * synchronously. user_t views point into the result and die with the
 * callback.
 */
#ifndef SERVICES_USERS_H
#define SERVICES_USERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/str.h"
#include "base/uuid.h"
#include "db/pool.h"

#define USERS_NAME_MAX_CODEPOINTS 100
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

struct users_call;
/*
 * err: 0, ERR_NOTFOUND, ERR_CONFLICT (email taken), ERR_PRECONDITION
 * (If-Match failed), ERR_UNAVAILABLE (database down or overloaded), ERR_IO.
 * For lists, n rows and has_more (another page exists).
 */
typedef void (*users_cb)(struct users_call *call, int err, const user_t *users, size_t n, bool has_more);

typedef struct users_call {
    users_cb cb;
    void *arg;
    db_op_t *op; /* set by the service */
    int limit;   /* internal: the page size asked for */
} users_call_t;

/* The statements the pool prepares on each connection. */
extern const db_stmt_t users_statements[];
extern const size_t users_statements_count;

int users_get(users_call_t *c, db_pool_t *db, const uuid_bytes_t *id, uint64_t deadline_ms)
    __attribute__((warn_unused_result));
/* Ascending id order; after == NULL: from the start. limit 1..USERS_PAGE_MAX */
int users_list(users_call_t *c, db_pool_t *db, const uuid_bytes_t *after, int limit, uint64_t deadline_ms)
    __attribute__((warn_unused_result));
int users_create(users_call_t *c, db_pool_t *db, const user_input_t *in, uint64_t deadline_ms)
    __attribute__((warn_unused_result));
int users_update(users_call_t *c, db_pool_t *db, const uuid_bytes_t *id, const user_input_t *in,
                 const users_precondition_t *pre, uint64_t deadline_ms) __attribute__((warn_unused_result));
int users_delete(users_call_t *c, db_pool_t *db, const uuid_bytes_t *id, const users_precondition_t *pre,
                 uint64_t deadline_ms) __attribute__((warn_unused_result));
void users_call_cancel(users_call_t *c);

/* ---- validation (pure) ---- */

/* Checks an email (RFC 5321 sizes, a dot-atom local part, a DNS-style
   domain) and writes its lower-case form to out (USERS_EMAIL_MAX bytes).
   Returns NULL when valid, else a message for the client. */
const char *users_check_email(str_t email, char *out, size_t *outlen);
/* 1..100 code points, no NUL (jansson has already rejected invalid UTF-8). */
const char *users_check_name(str_t name);

#endif
