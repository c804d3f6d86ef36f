/*
 * migrate: applies the embedded SQL migrations (`api migrate`).
 *
 * Runs as the owner role (DATABASE_MIGRATION_URL), blocking; it is a
 * command, not part of the server. Concurrent runs from several hosts are
 * safe: a session advisory lock serialises them, and each migration is
 * applied in its own transaction together with its row in
 * schema_migrations, so a crash leaves either all of it or none. After
 * migrating, the app role (the user in DATABASE_URL) is granted exactly
 * SELECT/INSERT/UPDATE/DELETE on the tables: no DDL, no ownership.
 */
#ifndef DB_MIGRATE_H
#define DB_MIGRATE_H

#include <stddef.h>

/* Returns 0, or ERR_IO / ERR_INVAL with a message in err. Logs each step. */
int db_migrate(const char *owner_conninfo, const char *app_conninfo, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* The newest migration version compiled in (0 if none). */
long db_migrations_latest(void);

#endif
