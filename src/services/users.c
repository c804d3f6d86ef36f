/* users: statements, row decoding and validation. */
#include "services/users.h"

#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/err.h"
#include "db/row.h"
#include "obs/log.h"
#include "base/banned.h"

#define COLS "id, email, name, version, created_at, updated_at"

const db_stmt_t users_statements[] = {
    {"users_get", "SELECT " COLS " FROM users WHERE id = $1"},
    {"users_first", "SELECT " COLS " FROM users ORDER BY id LIMIT $1"},
    {"users_after", "SELECT " COLS " FROM users WHERE id > $1 ORDER BY id LIMIT $2"},
    {"users_insert", "INSERT INTO users (id, email, name) VALUES ($1, $2, $3) RETURNING " COLS},
    /* COALESCE keeps fields the PATCH left out; the If-Match versions are
       checked by the same statement that writes, so no race can slip in. */
    {"users_update", "UPDATE users SET email = COALESCE($2, email), name = COALESCE($3, name), "
                     "version = version + 1, updated_at = now() "
                     "WHERE id = $1 AND ($4::int8[] IS NULL OR version = ANY($4::int8[])) RETURNING " COLS},
    {"users_delete", "DELETE FROM users WHERE id = $1 AND ($2::int8[] IS NULL OR version = ANY($2::int8[])) "
                     "RETURNING id"},
    /* second statement of a conditional write: tells 404 from 412 */
    {"users_exists", "SELECT id FROM users WHERE id = $1"},
};
const size_t users_statements_count = sizeof(users_statements) / sizeof(users_statements[0]);

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

static int map_sql_error(PGresult *const *res, size_t n)
{
    const char *ss = db_error_sqlstate(res, n);
    if (strcmp(ss, "23505") == 0) {
        return ERR_CONFLICT; /* unique_violation: the email is taken */
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

/* Rows of res[0] to the caller: get, list, create and update. */
static void on_rows(db_op_t *op, int err, PGresult *const *res, size_t n)
{
    users_call_t *c = db_op_arg(op);
    c->op = NULL;
    if (err == ERR_UNAVAILABLE) {
        c->cb(c, ERR_UNAVAILABLE, NULL, 0, false);
        return;
    }
    if (err != 0) {
        c->cb(c, map_sql_error(res, n), NULL, 0, false);
        return;
    }
    int rows = PQntuples(res[0]);
    if (rows == 0) {
        /* get: no such id. update: 404 or 412, told apart by res[1]. */
        int e = ERR_NOTFOUND;
        if (n > 1 && PQntuples(res[1]) > 0) {
            e = ERR_PRECONDITION;
        }
        c->cb(c, c->limit > 0 ? 0 : e, NULL, 0, false);
        return;
    }
    user_t users[USERS_PAGE_MAX + 1];
    int want = c->limit > 0 ? c->limit : 1;
    bool has_more = rows > want;
    int take = has_more ? want : rows;
    if (take > USERS_PAGE_MAX + 1) {
        take = USERS_PAGE_MAX + 1;
    }
    for (int i = 0; i < take; i++) {
        if (decode_user(res[0], i, &users[i]) != 0) {
            log_error("users: unexpected row shape");
            c->cb(c, ERR_IO, NULL, 0, false);
            return;
        }
    }
    c->cb(c, 0, users, (size_t)take, has_more);
}

/* Delete: a row back means done; none means 404 or 412. */
static void on_delete(db_op_t *op, int err, PGresult *const *res, size_t n)
{
    users_call_t *c = db_op_arg(op);
    c->op = NULL;
    if (err == ERR_UNAVAILABLE) {
        c->cb(c, ERR_UNAVAILABLE, NULL, 0, false);
        return;
    }
    if (err != 0) {
        c->cb(c, map_sql_error(res, n), NULL, 0, false);
        return;
    }
    if (PQntuples(res[0]) > 0) {
        c->cb(c, 0, NULL, 0, false);
        return;
    }
    c->cb(c, PQntuples(res[1]) > 0 ? ERR_PRECONDITION : ERR_NOTFOUND, NULL, 0, false);
}

static void format_id(const uuid_bytes_t *id, char *out)
{
    uuid_format(id, out);
    out[UUID_STR_LEN] = '\0';
}

/* "{1,2,3}" for an int8[] parameter, or NULL for "no condition". */
static const char *format_versions(const users_precondition_t *pre, char *out, size_t outlen)
{
    if (pre == NULL || !pre->present || pre->any) {
        return NULL;
    }
    size_t len = 0;
    out[len++] = '{';
    for (size_t i = 0; i < pre->n && len < outlen; i++) {
        int w = snprintf(out + len, outlen - len, "%s%lld", i ? "," : "", (long long)pre->versions[i]);
        if (w < 0 || (size_t)w >= outlen - len) {
            break;
        }
        len += (size_t)w;
    }
    if (len + 2 > outlen) {
        len = outlen - 2;
    }
    out[len++] = '}';
    out[len] = '\0';
    return out;
}

int users_get(users_call_t *c, db_pool_t *db, const uuid_bytes_t *id, uint64_t deadline_ms)
{
    char ids[UUID_STR_LEN + 1];
    format_id(id, ids);
    const char *v[] = {ids};
    db_query_t q = {"users_get", 1, v, NULL};
    c->limit = 0;
    return db_submit(db, &q, 1, deadline_ms, on_rows, c, &c->op);
}

int users_list(users_call_t *c, db_pool_t *db, const uuid_bytes_t *after, int limit, uint64_t deadline_ms)
{
    if (limit < 1 || limit > USERS_PAGE_MAX) {
        return ERR_RANGE;
    }
    char ids[UUID_STR_LEN + 1];
    char lim[16];
    snprintf(lim, sizeof(lim), "%d", limit + 1); /* one more tells if a next page exists */
    c->limit = limit;
    if (after == NULL) {
        const char *v[] = {lim};
        db_query_t q = {"users_first", 1, v, NULL};
        return db_submit(db, &q, 1, deadline_ms, on_rows, c, &c->op);
    }
    format_id(after, ids);
    const char *v[] = {ids, lim};
    db_query_t q = {"users_after", 2, v, NULL};
    return db_submit(db, &q, 1, deadline_ms, on_rows, c, &c->op);
}

int users_create(users_call_t *c, db_pool_t *db, const user_input_t *in, uint64_t deadline_ms)
{
    uuid_bytes_t id;
    uuid_v7((uint64_t)(clock_wall_us() / 1000), &id);
    char ids[UUID_STR_LEN + 1];
    format_id(&id, ids);
    const char *v[] = {ids, in->email.ptr, in->name.ptr};
    int len[] = {UUID_STR_LEN, (int)in->email.len, (int)in->name.len};
    db_query_t q = {"users_insert", 3, v, len};
    c->limit = 0;
    return db_submit(db, &q, 1, deadline_ms, on_rows, c, &c->op);
}

int users_update(users_call_t *c, db_pool_t *db, const uuid_bytes_t *id, const user_input_t *in,
                 const users_precondition_t *pre, uint64_t deadline_ms)
{
    char ids[UUID_STR_LEN + 1];
    char vers[USERS_IF_MATCH_MAX * 21 + 3];
    format_id(id, ids);
    const char *v[] = {ids, in->email.ptr, in->name.ptr, format_versions(pre, vers, sizeof(vers))};
    int len[] = {UUID_STR_LEN, (int)in->email.len, (int)in->name.len, v[3] ? (int)strlen(v[3]) : 0};
    const char *ev[] = {ids};
    db_query_t q[] = {{"users_update", 4, v, len}, {"users_exists", 1, ev, NULL}};
    c->limit = 0;
    return db_submit(db, q, 2, deadline_ms, on_rows, c, &c->op);
}

int users_delete(users_call_t *c, db_pool_t *db, const uuid_bytes_t *id, const users_precondition_t *pre,
                 uint64_t deadline_ms)
{
    char ids[UUID_STR_LEN + 1];
    char vers[USERS_IF_MATCH_MAX * 21 + 3];
    format_id(id, ids);
    const char *v[] = {ids, format_versions(pre, vers, sizeof(vers))};
    const char *ev[] = {ids};
    db_query_t q[] = {{"users_delete", 2, v, NULL}, {"users_exists", 1, ev, NULL}};
    c->limit = 0;
    return db_submit(db, q, 2, deadline_ms, on_delete, c, &c->op);
}

void users_call_cancel(users_call_t *c)
{
    if (c->op != NULL) {
        db_op_cancel(c->op);
        c->op = NULL;
    }
}

/* ---- validation ---- */

static bool is_atext(char ch)
{
    /* RFC 5322 section 3.2.3 atext */
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch != '\0' && strchr("!#$%&'*+/=?^_`{|}~-", ch) != NULL);
}

const char *users_check_email(str_t email, char *out, size_t *outlen)
{
    if (email.len < 3 || email.len > USERS_EMAIL_MAX) {
        return "must be an email address of 3 to 254 characters";
    }
    const char *at = memchr(email.ptr, '@', email.len);
    if (at == NULL || memchr(at + 1, '@', email.len - (size_t)(at - email.ptr) - 1) != NULL) {
        return "must contain exactly one @";
    }
    size_t local_len = (size_t)(at - email.ptr);
    size_t domain_len = email.len - local_len - 1;
    if (local_len == 0 || local_len > 64) {
        return "the part before @ must be 1 to 64 characters";
    }
    if (domain_len == 0) {
        return "the domain after @ is missing";
    }
    /* local part: a dot-atom (no quoted strings, no leading, trailing or double dots) */
    for (size_t i = 0; i < local_len; i++) {
        char ch = email.ptr[i];
        if (ch == '.') {
            if (i == 0 || i + 1 == local_len || email.ptr[i + 1] == '.') {
                return "the part before @ has a misplaced dot";
            }
        } else if (!is_atext(ch)) {
            return "the part before @ has a character an address cannot contain";
        }
    }
    /* domain: dot-separated labels of letters, digits and inner hyphens */
    const char *d = at + 1;
    size_t label = 0, labels = 0;
    for (size_t i = 0; i <= domain_len; i++) {
        char ch = i < domain_len ? d[i] : '.';
        if (ch == '.') {
            if (label == 0 || label > 63) {
                return "the domain has an empty or over-long label";
            }
            if (d[i - 1] == '-' || d[i - label] == '-') {
                return "a domain label cannot start or end with a hyphen";
            }
            labels++;
            label = 0;
            continue;
        }
        bool ok =
            (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-';
        if (!ok) {
            return "the domain has a character a host name cannot contain";
        }
        label++;
    }
    if (labels < 2) {
        return "the domain must have at least two labels (example.com)";
    }
    for (size_t i = 0; i < email.len; i++) {
        char ch = email.ptr[i];
        out[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
    }
    *outlen = email.len;
    return NULL;
}

const char *users_check_name(str_t name)
{
    if (memchr(name.ptr, '\0', name.len) != NULL) {
        return "must not contain NUL characters";
    }
    size_t cps = 0;
    for (size_t i = 0; i < name.len; i++) {
        cps += ((unsigned char)name.ptr[i] & 0xC0) != 0x80; /* count lead bytes */
    }
    if (cps < 1 || cps > USERS_NAME_MAX_CODEPOINTS) {
        return "must be 1 to 100 characters";
    }
    return NULL;
}
