"""The pool-sizing check at start (src/db/capacity.c, docs/deploy.md):

    DATABASE_INSTANCES x per_instance <= budget
    per_instance = WORKERS x (max(1, DATABASE_POOL_SIZE / WORKERS) + 1)

where the budget is DATABASE_MAX_CONNECTIONS, or, when that is 0, what the
test PostgreSQL allows (max_connections - superuser_reserved_connections,
asked at start). A pool that does not fit stops the start (exit 2, one line
naming the variables); a database that cannot be asked only earns a
warning. And per_instance is what a server really opens: counted in
pg_stat_activity."""

import time
import uuid

from harness import run_cli
from users_support import DATABASE_URL, admin_connect, requires_db, users_env, wait_ready_200


def postgres_budget():
    with admin_connect() as c:
        max_conns = int(c.execute("SHOW max_connections").fetchone()[0])
        reserved = int(c.execute("SHOW superuser_reserved_connections").fetchone()[0])
    return max_conns, reserved


def per_instance(pool, workers):
    return workers * (max(1, pool // workers) + 1)


def test_pool_over_the_given_budget_stops_the_start():
    r = run_cli(["serve"], env=users_env(DATABASE_INSTANCES="3", DATABASE_POOL_SIZE="4", WORKERS="2",
                                         DATABASE_MAX_CONNECTIONS="17", PORT="1"))
    assert r.returncode == 2, (r.returncode, r.stderr)
    line = r.stderr.strip().splitlines()[-1]
    for part in ("DATABASE_INSTANCES (3) x 6 connections per instance", "DATABASE_POOL_SIZE 4 over WORKERS 2",
                 "= 18,", "DATABASE_MAX_CONNECTIONS allows (17)"):
        assert part in line, line


@requires_db
def test_pool_over_what_postgres_allows_stops_the_start():
    max_conns, reserved = postgres_budget()
    budget = max_conns - reserved
    pool, workers = 8, 2
    instances = budget // per_instance(pool, workers) + 1
    r = run_cli(["serve"], env=users_env(DATABASE_INSTANCES=str(instances), DATABASE_POOL_SIZE=str(pool),
                                         WORKERS=str(workers), DATABASE_MAX_CONNECTIONS="0", PORT="1"))
    assert r.returncode == 2, (r.returncode, r.stderr)
    line = r.stderr.strip().splitlines()[-1]
    assert f"= {instances * per_instance(pool, workers)}," in line, line
    assert f"max_connections {max_conns} - superuser_reserved_connections {reserved}" in line, line
    assert f"allows ({budget})" in line, line


@requires_db
def test_pool_that_fits_starts_and_opens_what_the_formula_says(server):
    max_conns, reserved = postgres_budget()
    pool, workers = 4, 2
    instances = (max_conns - reserved) // per_instance(pool, workers)
    app = f"capacity-{uuid.uuid4().hex[:12]}"
    sep = "&" if "?" in DATABASE_URL else "?"
    srv = server(env=users_env(DATABASE_URL=f"{DATABASE_URL}{sep}application_name={app}",
                               DATABASE_INSTANCES=str(instances), DATABASE_POOL_SIZE=str(pool),
                               WORKERS=str(workers)))
    wait_ready_200(srv)
    assert not [x for x in srv.log_lines() if "pool sizing" in x.get("msg", "")], srv.log_lines()
    # Every data and heartbeat connection is up once all workers are ready.
    deadline = time.monotonic() + 5
    while True:
        with admin_connect() as c:
            n = c.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (app,)).fetchone()[0]
        if n == per_instance(pool, workers) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert n == per_instance(pool, workers), f"the server opened {n} connections"
    srv2 = server(env=users_env(DATABASE_INSTANCES="3", DATABASE_POOL_SIZE="4", WORKERS="2",
                                DATABASE_MAX_CONNECTIONS="18"))
    srv2.assert_running()


def test_database_that_cannot_be_asked_only_warns(server):
    srv = server(env=users_env(DATABASE_URL="host=127.0.0.1 port=1 dbname=api", DATABASE_MAX_CONNECTIONS="0"))
    line = srv.wait_for_log(lambda x: "pool sizing not checked" in x.get("msg", ""))
    assert line["level"] == "warn", line
