"""The database role the server runs as (DATABASE_URL, api_app) can read
and write its own tables and nothing else: it cannot create, alter or drop
any object (temporary ones included), cannot change the migration ledger,
cannot grant itself more, and cannot read a table the owner did not grant
it. Checked with psycopg as that role, after `api migrate`."""

import os
import uuid

import psycopg
import pytest
from psycopg import errors

from users_support import DATABASE_URL, requires_db

pytestmark = requires_db

MIGRATION_URL = os.environ.get("DATABASE_MIGRATION_URL", "")


def _app():
    return psycopg.connect(DATABASE_URL, autocommit=True, connect_timeout=5)


@pytest.fixture
def app():
    with _app() as c:
        yield c


def test_the_app_role_is_not_the_owner(app):
    row = app.execute("SELECT current_user, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolreplication "
                      "FROM pg_roles WHERE rolname = current_user").fetchone()
    assert row == ("api_app", False, False, False, False, False), row
    owners = dict(app.execute("SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public'").fetchall())
    assert {"users", "idempotency_keys", "schema_migrations"} <= set(owners), owners
    assert "api_app" not in owners.values(), owners


def test_the_app_role_reads_and_writes_its_tables(app):
    uid, email = uuid.uuid4(), f"role-{uuid.uuid4().hex}@example.com"
    with app.transaction():
        app.execute("INSERT INTO users (id, email, name) VALUES (%s, %s, 'Role Test')", (uid, email))
        app.execute("UPDATE users SET name = 'Role Test 2', version = version + 1 WHERE id = %s", (uid,))
        assert app.execute("SELECT name FROM users WHERE id = %s", (uid,)).fetchone() == ("Role Test 2",)
        app.execute("DELETE FROM users WHERE id = %s", (uid,))
    app.execute("SELECT count(*) FROM idempotency_keys").fetchone()
    assert app.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] >= 2


FORBIDDEN = {
    "create-table": "CREATE TABLE role_probe (x int)",
    "create-temp-table": "CREATE TEMP TABLE role_probe (x int)",
    "create-temp-function": "CREATE FUNCTION pg_temp.role_probe() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "create-view": "CREATE VIEW role_probe AS SELECT 1",
    "create-sequence": "CREATE SEQUENCE role_probe",
    "create-function": "CREATE FUNCTION role_probe() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "create-type": "CREATE TYPE role_probe AS (x int)",
    "create-schema": "CREATE SCHEMA role_probe",
    "create-index": "CREATE INDEX role_probe ON users (name)",
    "create-extension": "CREATE EXTENSION IF NOT EXISTS pgcrypto",
    "create-trigger": "CREATE TRIGGER role_probe BEFORE INSERT ON users FOR EACH ROW EXECUTE FUNCTION "
                      "suppress_redundant_updates_trigger()",
    "create-role": "CREATE ROLE role_probe",
    "alter-table-add-column": "ALTER TABLE users ADD COLUMN role_probe int",
    "alter-table-drop-constraint": "ALTER TABLE users DROP CONSTRAINT users_name_len",
    "alter-table-owner": "ALTER TABLE users OWNER TO api_app",
    "alter-role": "ALTER ROLE api_app CREATEDB",
    "drop-table": "DROP TABLE users",
    "drop-ledger": "DROP TABLE schema_migrations",
    "drop-index": "DROP INDEX idempotency_keys_stored_at",
    "drop-schema": "DROP SCHEMA public CASCADE",
    "truncate": "TRUNCATE users",
    "write-ledger": "INSERT INTO schema_migrations (version, name) VALUES (9999, 'role_probe')",
    "delete-ledger": "DELETE FROM schema_migrations",
    "become-owner": "SET ROLE api_owner",
    "lock-ledger": "LOCK TABLE schema_migrations IN ACCESS EXCLUSIVE MODE",
    "read-server-files": "SELECT pg_read_file('postgresql.conf')",
    "copy-to-program": "COPY users TO PROGRAM 'cat'",
}


@pytest.mark.parametrize("kind", list(FORBIDDEN))
def test_the_app_role_cannot_change_the_schema_or_its_rights(app, kind):
    with pytest.raises((errors.InsufficientPrivilege, errors.FeatureNotSupported)):
        with app.transaction():
            app.execute(FORBIDDEN[kind])


def test_the_app_role_cannot_grant_itself_more(app):
    # Without the grant option PostgreSQL only warns ("no privileges were
    # granted"): what counts is that the rights stay as they were.
    for sql in ("GRANT ALL ON users TO api_app", "GRANT ALL ON schema_migrations TO api_app",
                "GRANT CREATE ON SCHEMA public TO api_app"):
        try:
            with app.transaction():
                app.execute(sql)
        except errors.InsufficientPrivilege:
            pass
    rights = app.execute(
        "SELECT has_table_privilege('users', 'TRUNCATE'), has_table_privilege('users', 'REFERENCES'),"
        " has_table_privilege('users', 'TRIGGER'), has_table_privilege('schema_migrations', 'INSERT'),"
        " has_schema_privilege('public', 'CREATE'), has_database_privilege(current_database(), 'CREATE'),"
        " has_database_privilege(current_database(), 'TEMPORARY')").fetchone()
    assert rights == (False,) * 7, rights


@pytest.mark.skipif(not MIGRATION_URL, reason="DATABASE_MIGRATION_URL (the owner role) is not set")
def test_the_app_role_cannot_touch_tables_it_was_not_granted():
    name = f"role_probe_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(MIGRATION_URL, autocommit=True, connect_timeout=5) as owner:
        owner.execute(f"CREATE TABLE {name} (secret text)")
        owner.execute(f"INSERT INTO {name} VALUES ('owner only')")
        try:
            with _app() as app:
                for sql in (f"SELECT * FROM {name}", f"INSERT INTO {name} VALUES ('x')",
                            f"UPDATE {name} SET secret = 'x'", f"DELETE FROM {name}", f"DROP TABLE {name}"):
                    with pytest.raises(errors.InsufficientPrivilege):
                        with app.transaction():
                            app.execute(sql)
        finally:
            owner.execute(f"DROP TABLE {name}")
