/*
 * idem: the idempotency record (migrations/0002), its statements and the
 * purge of expired records. The HTTP side - the header, the fingerprint,
 * the Redis lease, replaying - is middleware/idempotency.
 *
 * A record is the first final answer to (principal, key): status, the exact
 * bytes of the body, ETag and Location. Writes store it in their own batch,
 * before the write itself (docs/database.md, "Write paths"):
 *
 *   [expired record of this key deleted] [record inserted] [the write]
 *
 * so a key that already has an answer fails the batch on the primary key
 * (23505 on idempotency_keys_pkey: the caller replays the stored answer)
 * before the write can fail on anything else, and a write that fails rolls
 * the record back with it. No lookup precedes a write: the cost of a keyed
 * write is that of an unkeyed one plus two primary-key index operations,
 * whatever the number of records stored. An expired record does not count:
 * the batch deletes it first, so the key works as new after IDEMPOTENCY_TTL_S.
 */
#ifndef DB_IDEM_H
#define DB_IDEM_H

#include <stdbool.h>
#include <stdint.h>

#include "base/str.h"
#include "base/timer.h"
#include "db/pool.h"

#define IDEM_KEY_MAX 255

typedef struct {
    str_t principal;
    str_t key;
    uint8_t fingerprint[32];
    int status;
    str_t body;
    str_t etag;     /* may be empty */
    str_t location; /* may be empty */
    /* No Redis lease is held: a concurrent duplicate may be writing the same
       key, so a write bounds its wait on the key's row (lock_timeout). With
       a lease there is no duplicate, and waits are the statement's own. */
    bool unleased;
} idem_record_t;

/* How long a duplicate without a lease waits on the key's row (ms). */
#define IDEM_LOCK_TIMEOUT_MS 250

/* Call once before workers start. */
void idem_init(int64_t ttl_s);

/* The text parameters of the statements below, from a record: the insert's
   seven (principal, key, fingerprint hex, status, body, etag, location) and
   the delete's three (principal, key, ttl). */
typedef struct {
    const char *values[7];
    int lengths[7];
    const char *del_values[3];
    int del_lengths[3];
    char fp_hex[65];
    char status[8];
    char ttl[24];
} idem_params_t;

void idem_params(const idem_record_t *r, idem_params_t *p);

/*
 * The two statements that go first in a keyed write's batch: delete this
 * key's expired record, insert the new one (params from idem_params). The
 * batch must have room for them (DB_MAX_BATCH) and be a write batch.
 */
#define IDEM_WRITE_STATEMENTS 2
void idem_write_queries(const idem_params_t *p, db_query_t out[IDEM_WRITE_STATEMENTS]);

/* Whether a failed write batch failed because the key already has a record. */
bool idem_conflict(PGresult *const *results, size_t n);

/*
 * Stores a final client error after its answer is known: the same two
 * statements, except that an existing record wins (no error). Calls back
 * with stored = true, or false when the key already had a record (the
 * caller replays that one) - err != 0 when it could not be stored at all.
 */
typedef void (*idem_store_cb)(void *arg, int err, bool stored);
int idem_store_final(db_pool_t *db, const idem_record_t *r, uint64_t deadline_ms, idem_store_cb cb, void *arg,
                     db_op_t **op) __attribute__((warn_unused_result));

/* A stored record, read back for a replay. Views point into the result and
   live for the callback only. err: 0, ERR_NOTFOUND (none, or expired). */
typedef void (*idem_read_cb)(void *arg, int err, const idem_record_t *r);
int idem_read(db_pool_t *db, str_t principal, str_t key, uint64_t deadline_ms, idem_read_cb cb, void *arg,
              db_op_t **op) __attribute__((warn_unused_result));

/* Statements every pool prepares. */
extern const db_stmt_t idem_statements[];
extern const size_t idem_statements_count;

/*
 * The purge: expired records are deleted in batches of IDEM_PURGE_BATCH
 * rows, back to back while there are more, then again every
 * interval_ms. Several processes share the work (FOR UPDATE SKIP LOCKED:
 * each batch takes rows no other purge holds). One per process.
 */
#define IDEM_PURGE_BATCH 1000
typedef struct idem_purger idem_purger_t;
idem_purger_t *idem_purger_start(db_pool_t *db, timer_heap_t *timers, uint64_t interval_ms);
void idem_purger_stop(idem_purger_t *p);

#endif
