/* row: binary column decoders. */
#include "db/row.h"

#include <string.h>

#include "base/err.h"
#include "base/banned.h"

static int get(const PGresult *r, int row, int col, size_t want, const uint8_t **p)
{
    if (PQgetisnull(r, row, col) || PQfformat(r, col) != 1) {
        return ERR_INVAL;
    }
    if (want != 0 && (size_t)PQgetlength(r, row, col) != want) {
        return ERR_INVAL;
    }
    *p = (const uint8_t *)PQgetvalue(r, row, col);
    return 0;
}

static uint64_t be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = v << 8 | p[i];
    }
    return v;
}

int db_row_int8(const PGresult *r, int row, int col, int64_t *out)
{
    const uint8_t *p;
    if (get(r, row, col, 8, &p) != 0) {
        return ERR_INVAL;
    }
    *out = (int64_t)be64(p);
    return 0;
}

int db_row_timestamptz(const PGresult *r, int row, int col, int64_t *out)
{
    int64_t pg;
    if (db_row_int8(r, row, col, &pg) != 0) {
        return ERR_INVAL;
    }
    *out = pg + DB_PG_EPOCH_US;
    return 0;
}

int db_row_uuid(const PGresult *r, int row, int col, uuid_bytes_t *out)
{
    const uint8_t *p;
    if (get(r, row, col, 16, &p) != 0) {
        return ERR_INVAL;
    }
    memcpy(out->b, p, 16);
    return 0;
}

int db_row_text(const PGresult *r, int row, int col, str_t *out)
{
    const uint8_t *p;
    if (get(r, row, col, 0, &p) != 0) {
        return ERR_INVAL;
    }
    *out = str_make((const char *)p, (size_t)PQgetlength(r, row, col));
    return 0;
}
