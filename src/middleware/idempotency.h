/*
 * idempotency: Idempotency-Key for POST and PATCH (Stripe semantics, IETF
 * draft-ietf-httpapi-idempotency-key-header), across processes.
 *
 * For a request with a key (1..255 printable ASCII), scoped to the caller's
 * `sub`, with a fingerprint = SHA-256(method, path, body):
 *
 *   1. a stored record for (caller, key)? same fingerprint: replay it (same
 *      status, body, ETag, Location + Idempotent-Replayed: true); another
 *      fingerprint: 422 idempotency-key-reused;
 *   2. else take a short lease in Redis (SET NX PX); held by someone else:
 *      409 idempotency-key-in-flight;
 *   3. run the handler. A success stores its record in the same database
 *      batch as its write (the handler passes idem_write_t to the service);
 *      a final client error (404, 409, 412, 422) is stored, then answered;
 *      a 5xx or a timeout stores nothing, so a retry runs again.
 *
 * PostgreSQL is the source of truth: without Redis there is no lease, and
 * the record's primary key plus a short lock_timeout settle races (one write
 * wins, the other is told 409 and replays on retry). Records older than
 * IDEMPOTENCY_TTL_S are purged in batches.
 */
#ifndef MIDDLEWARE_IDEMPOTENCY_H
#define MIDDLEWARE_IDEMPOTENCY_H

#include <stdint.h>

#include "db/pool.h"
#include "middleware/pipeline.h"

#define IDEM_KEY_MAX 255

/* What a write stores in its own batch (NULL when the request has no key). */
typedef struct {
    str_t principal;
    str_t key;
    uint8_t fingerprint[32];
    int status;
    str_t body;
    str_t etag;     /* may be empty */
    str_t location; /* may be empty */
    /* No Redis lease is held: a concurrent duplicate may be writing the same
       key, so the write must bound its wait on it (lock_timeout). With a
       lease there is no duplicate, and waits are the statement's own. */
    bool unleased;
} idem_write_t;

typedef struct {
    int64_t ttl_s;
    int64_t lease_ms; /* how long a lease outlives a crashed holder */
} idem_opts_t;

/* Call once before workers start. */
void mw_idempotency_init(const idem_opts_t *opts);
/* An Idempotency-Key header value this API accepts: 1..IDEM_KEY_MAX
   printable ASCII characters (pure; fuzzed). */
bool mw_idempotency_key_valid(str_t key);
mw_result_t mw_idempotency_run(http_ctx_t *ctx);

/* The record the handler must store with its write, or NULL. The handler
   fills status/body/etag/location. Valid for the request's lifetime. */
idem_write_t *mw_idempotency_write(http_ctx_t *ctx);

/* The 7 text parameters (principal, key, fingerprint hex, status, body, etag,
   location) of the statements that store a record, in that order. */
typedef struct {
    const char *values[7];
    int lengths[7];
    char fp_hex[65];
    char status[8];
} idem_params_t;

void idem_params(const idem_write_t *w, idem_params_t *p);

/* INSERT of a record, parameters $1..$7 as idem_params() gives them. */
#define IDEM_INSERT_SQL                                                                                      \
    "INSERT INTO idempotency_keys (principal, key, fingerprint, status, body, etag, location) "              \
    "VALUES ($1, $2, decode($3, 'hex'), $4, $5, NULLIF($6, ''), NULLIF($7, ''))"

/* Statements every pool prepares, and their positions. */
enum { IDEM_STMT_GET, IDEM_STMT_INSERT, IDEM_STMT_INSERT_FINAL, IDEM_STMT_PURGE };
extern const db_stmt_t idem_statements[];
extern const size_t idem_statements_count;

/* Deletes expired records, a batch at a time (called by worker 0 on a timer). */
void idem_purge(db_pool_t *db, uint64_t deadline_ms);

#endif
