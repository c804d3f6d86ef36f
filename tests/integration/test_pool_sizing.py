"""The pool-sizing check at start (src/db/capacity.c, docs/deploy.md):
DATABASE_INSTANCES x DATABASE_POOL_SIZE must fit DATABASE_MAX_CONNECTIONS,
or, when that is 0, what the test PostgreSQL allows (its max_connections
minus superuser_reserved_connections, asked at start). A pool that does not
fit stops the start (exit 2, one line naming the variables); a database
that cannot be asked only earns a warning."""

from harness import run_cli
from users_support import admin_connect, requires_db, users_env


def postgres_budget():
    with admin_connect() as c:
        max_conns = int(c.execute("SHOW max_connections").fetchone()[0])
        reserved = int(c.execute("SHOW superuser_reserved_connections").fetchone()[0])
    return max_conns, reserved


def test_pool_over_the_given_budget_stops_the_start():
    r = run_cli(["serve"], env=users_env(DATABASE_INSTANCES="3", DATABASE_POOL_SIZE="4",
                                         DATABASE_MAX_CONNECTIONS="11", PORT="1"))
    assert r.returncode == 2, (r.returncode, r.stderr)
    line = r.stderr.strip().splitlines()[-1]
    for part in ("DATABASE_INSTANCES (3)", "DATABASE_POOL_SIZE (4)", "= 12 connections",
                 "DATABASE_MAX_CONNECTIONS allows (11)"):
        assert part in line, line


@requires_db
def test_pool_over_what_postgres_allows_stops_the_start():
    max_conns, reserved = postgres_budget()
    budget = max_conns - reserved
    pool = 8
    instances = budget // pool + 1
    r = run_cli(["serve"], env=users_env(DATABASE_INSTANCES=str(instances), DATABASE_POOL_SIZE=str(pool),
                                         DATABASE_MAX_CONNECTIONS="0", PORT="1"))
    assert r.returncode == 2, (r.returncode, r.stderr)
    line = r.stderr.strip().splitlines()[-1]
    assert f"= {instances * pool} connections" in line, line
    assert f"max_connections {max_conns} - superuser_reserved_connections {reserved}" in line, line
    assert f"allows ({budget})" in line, line


@requires_db
def test_pool_that_fits_starts(server):
    max_conns, reserved = postgres_budget()
    pool = 4
    instances = (max_conns - reserved) // pool
    srv = server(env=users_env(DATABASE_INSTANCES=str(instances), DATABASE_POOL_SIZE=str(pool)))
    lines = srv.log_lines()
    assert not [x for x in lines if "pool sizing" in x.get("msg", "")], lines
    srv2 = server(env=users_env(DATABASE_INSTANCES="3", DATABASE_POOL_SIZE="4", DATABASE_MAX_CONNECTIONS="12"))
    srv2.assert_running()


def test_database_that_cannot_be_asked_only_warns(server):
    srv = server(env=users_env(DATABASE_URL="host=127.0.0.1 port=1 dbname=api", DATABASE_MAX_CONNECTIONS="0"))
    line = srv.wait_for_log(lambda x: "pool sizing not checked" in x.get("msg", ""))
    assert line["level"] == "warn", line
