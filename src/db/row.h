/*
 * row: decoding binary-format result columns (PostgreSQL's send functions:
 * network byte order integers; timestamptz = microseconds since 2000-01-01
 * UTC; uuid = 16 raw bytes). Each returns 0 or ERR_INVAL on a NULL or a
 * wrongly sized value, so a schema drift is an error, not a misread.
 */
#ifndef DB_ROW_H
#define DB_ROW_H

#include <libpq-fe.h>
#include <stdint.h>

#include "base/str.h"
#include "base/uuid.h"

/* Microseconds between 1970-01-01 and 2000-01-01 (PostgreSQL's epoch). */
#define DB_PG_EPOCH_US INT64_C(946684800000000)

int db_row_int8(const PGresult *r, int row, int col, int64_t *out) __attribute__((warn_unused_result));
/* timestamptz as Unix microseconds */
int db_row_timestamptz(const PGresult *r, int row, int col, int64_t *out) __attribute__((warn_unused_result));
int db_row_uuid(const PGresult *r, int row, int col, uuid_bytes_t *out) __attribute__((warn_unused_result));
/* text/varchar: a view into r, valid while r lives */
int db_row_text(const PGresult *r, int row, int col, str_t *out) __attribute__((warn_unused_result));

#endif
