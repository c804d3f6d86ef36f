/*
 * idempotency: Idempotency-Key for POST and PATCH (Stripe semantics, IETF
 * draft-ietf-httpapi-idempotency-key-header), across processes - the HTTP
 * side. The record and its SQL are db/idem.
 *
 * For a request with a key (1..255 printable ASCII), scoped to the caller's
 * `sub`, with a fingerprint = SHA-256 of method, path, If-Match and body:
 *
 *   1. take a short lease in Redis (SET NX PX); held by someone else: 409
 *      idempotency-key-in-flight (an answer never stored);
 *   2. run the handler. Its write stores the record in the same batch
 *      (db/idem.h). If the key already has a record, the write fails on the
 *      key and the handler calls mw_idempotency_replay(): the stored answer
 *      is replayed (same status, body, ETag, Location + Idempotent-Replayed:
 *      true), or 422 idempotency-key-reused when the fingerprint differs;
 *   3. a final client error (a 4xx that is the request's outcome: not
 *      http_problem_t.retryable) is stored, then answered - or, if the key
 *      already has a record, that one is replayed. A 5xx or a timeout stores
 *      nothing, so a retry runs again.
 *
 * There is no lookup before the write: a keyed request costs what an
 * unkeyed one does, plus the record's two index operations. Without Redis
 * there is no lease; PostgreSQL settles races on the key's primary key,
 * waiting at most IDEM_LOCK_TIMEOUT_MS for a duplicate in flight.
 */
#ifndef MIDDLEWARE_IDEMPOTENCY_H
#define MIDDLEWARE_IDEMPOTENCY_H

#include <stdint.h>

#include "db/idem.h"
#include "middleware/pipeline.h"

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

/* The record the handler's write must store, or NULL (no key). The handler
   fills status/body/etag/location. Valid for the request's lifetime. */
idem_record_t *mw_idempotency_record(http_ctx_t *ctx);

/* The write found the key already answered (ERR_REPLAY): reads the stored
   record and answers with it (or 422 when the request differs). */
void mw_idempotency_replay(http_ctx_t *ctx);

#endif
