/* migrate: lock, create the ledger, apply what is missing, grant, unlock. */
#include "db/migrate.h"
#include "db/secret.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/embedded.h"
#include "base/err.h"
#include "obs/log.h"
#include "base/banned.h"

/* Any fixed 64-bit number, the same in every build: "api-mig" in ASCII. */
#define MIGRATE_LOCK_KEY "30814709066049895"

static long version_of(const char *name)
{
    char *end;
    long v = strtol(name, &end, 10);
    return (end != name && *end == '_' && v > 0) ? v : -1;
}

long db_migrations_latest(void)
{
    long latest = 0;
    for (size_t i = 0; i < embedded_migrations_count; i++) {
        long v = version_of(embedded_migrations[i].name);
        if (v > latest) {
            latest = v;
        }
    }
    return latest;
}

static int exec_ok(PGconn *c, const char *sql, char *err, size_t errlen)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "%s", PQresultErrorMessage(r));
        rc = ERR_IO;
    }
    PQclear(r);
    return rc;
}

static bool applied(PGconn *c, long version, int *rc, char *err, size_t errlen)
{
    char v[24];
    snprintf(v, sizeof(v), "%ld", version);
    const char *params[] = {v};
    PGresult *r =
        PQexecParams(c, "SELECT 1 FROM schema_migrations WHERE version = $1", 1, NULL, params, NULL, NULL, 0);
    bool yes = false;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "%s", PQresultErrorMessage(r));
        *rc = ERR_IO;
    } else {
        yes = PQntuples(r) > 0;
    }
    PQclear(r);
    return yes;
}

static int apply(PGconn *c, const embedded_file_t *m, long version, char *err, size_t errlen)
{
    if (exec_ok(c, "BEGIN", err, errlen) != 0) {
        return ERR_IO;
    }
    if (exec_ok(c, m->data, err, errlen) != 0) {
        char why[512];
        snprintf(why, sizeof(why), "%s", err);
        snprintf(err, errlen, "migration %s failed: %s", m->name, why);
        (void)exec_ok(c, "ROLLBACK", why, sizeof(why));
        return ERR_IO;
    }
    char v[24];
    snprintf(v, sizeof(v), "%ld", version);
    const char *params[] = {v, m->name};
    PGresult *r = PQexecParams(c, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2, NULL,
                               params, NULL, NULL, 0);
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : ERR_IO;
    if (rc != 0) {
        snprintf(err, errlen, "%s", PQresultErrorMessage(r));
    }
    PQclear(r);
    if (rc == 0) {
        rc = exec_ok(c, "COMMIT", err, errlen);
    } else {
        char why[64];
        (void)exec_ok(c, "ROLLBACK", why, sizeof(why));
    }
    return rc;
}

/* The role DATABASE_URL logs in as, or NULL when it names none. */
static char *app_role(const char *app_conninfo)
{
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(app_conninfo, &errmsg);
    char *role = NULL;
    if (opts == NULL) {
        PQfreemem(errmsg);
        return NULL;
    }
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        if (strcmp(o->keyword, "user") == 0 && o->val != NULL && o->val[0] != '\0') {
            role = strdup(o->val);
        }
    }
    PQconninfoFree(opts);
    return role;
}

/* PostgreSQL grants TEMPORARY on every database to PUBLIC: without this the
   app role could still create temporary tables and functions. */
static int revoke_temporary(PGconn *c, const char *role_ident, char *err, size_t errlen)
{
    PGresult *r = PQexec(c, "SELECT current_database()");
    char *db = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1
                   ? PQescapeIdentifier(c, PQgetvalue(r, 0, 0), strlen(PQgetvalue(r, 0, 0)))
                   : NULL;
    PQclear(r);
    if (db == NULL) {
        snprintf(err, errlen, "cannot read the database name");
        return ERR_IO;
    }
    char sql[1024];
    snprintf(sql, sizeof(sql), "REVOKE TEMPORARY ON DATABASE %s FROM PUBLIC, %s", db, role_ident);
    PQfreemem(db);
    return exec_ok(c, sql, err, errlen);
}

static int grant_app(PGconn *c, const char *app_conninfo, char *err, size_t errlen)
{
    char *role = app_role(app_conninfo);
    if (role == NULL) {
        log_info("DATABASE_URL names no role: no grants made");
        return 0;
    }
    int rc = 0;
    PGresult *me = PQexec(c, "SELECT current_user");
    bool same = PQresultStatus(me) == PGRES_TUPLES_OK && PQntuples(me) == 1 &&
                strcmp(PQgetvalue(me, 0, 0), role) == 0;
    PQclear(me);
    if (same) {
        log_warn(
            "DATABASE_URL and DATABASE_MIGRATION_URL use the same role: the server runs as the table owner");
        free(role);
        return 0;
    }
    char *ident = PQescapeIdentifier(c, role, strlen(role));
    if (ident == NULL) {
        snprintf(err, errlen, "cannot quote role name");
        free(role);
        return ERR_IO;
    }
    char sql[1024];
    const char *stmts[] = {
        "GRANT USAGE ON SCHEMA public TO ",
        "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ",
        /* the ledger is the migrator's alone; the server may only read it */
        "REVOKE ALL ON schema_migrations FROM ",
        "GRANT SELECT ON schema_migrations TO ",
    };
    for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]) && rc == 0; i++) {
        snprintf(sql, sizeof(sql), "%s%s", stmts[i], ident);
        rc = exec_ok(c, sql, err, errlen);
    }
    if (rc == 0) {
        rc = revoke_temporary(c, ident, err, errlen);
    }
    if (rc == 0) {
        log_info("granted table privileges to role %s", role);
    }
    PQfreemem(ident);
    free(role);
    return rc;
}

static void on_notice(void *arg, const char *message)
{
    (void)arg;
    log_debug("postgres: %s", message);
}

int db_migrate(const char *owner_conninfo, const char *app_conninfo, char *err, size_t errlen)
{
    int rc = ERR_IO;
    PGconn *c = PQconnectdb(owner_conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        char why[256];
        db_secret_redact(owner_conninfo, PQerrorMessage(c), why, sizeof(why));
        snprintf(err, errlen, "cannot connect with DATABASE_MIGRATION_URL: %s", why);
        PQfinish(c);
        return ERR_IO;
    }
    PQsetNoticeProcessor(c, on_notice, NULL);
    /* One migrator at a time, across hosts; others wait here. */
    if (exec_ok(c, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", err, errlen) != 0) {
        goto out;
    }
    if (exec_ok(
            c,
            "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT now())",
            err, errlen) != 0) {
        goto out_unlock;
    }
    size_t done = 0;
    for (size_t i = 0; i < embedded_migrations_count; i++) {
        const embedded_file_t *m = &embedded_migrations[i];
        long v = version_of(m->name);
        if (v < 0) {
            snprintf(err, errlen, "migration file %s must be named NNNN_description.sql", m->name);
            goto out_unlock;
        }
        int qrc = 0;
        if (applied(c, v, &qrc, err, errlen)) {
            continue;
        }
        if (qrc != 0 || apply(c, m, v, err, errlen) != 0) {
            goto out_unlock;
        }
        log_info("applied migration %s", m->name);
        done++;
    }
    if (grant_app(c, app_conninfo, err, errlen) != 0) {
        goto out_unlock;
    }
    log_info("migrations complete: %zu applied, schema version %ld", done, db_migrations_latest());
    rc = 0;
out_unlock : {
    char ignore[64];
    (void)exec_ok(c, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")", ignore, sizeof(ignore));
}
out:
    PQfinish(c);
    return rc;
}
