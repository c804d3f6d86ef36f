"""The users API when PostgreSQL misbehaves, proven from outside:

- a request stuck behind a lock gets 503/504 at its deadline and its query
  is cancelled in PostgreSQL, not left waiting;
- with PostgreSQL stopped, requests fail fast with 503 + Retry-After and
  readiness turns 503; once it is back, the same server process recovers.

Each test reads a user through a server that has never seen it, so no
in-process cache can answer in place of the database."""

import time

from users_support import (Client, admin_connect, app_conninfo, assert_json_response,
                           assert_page, assert_problem_response, assert_user, describe,
                           requires_services, services, start_users_server, strip_private,
                           wait_until)

pytestmark = requires_services

TIMEOUT_MS = 1000


def make_user(server):
    """A user created through a short-lived server of its own."""
    maker = start_users_server(server)
    c = Client(maker)
    try:
        user = c.create_user(name="PG Control")
    finally:
        c.close()
    assert maker.stop() == 0, maker.describe()
    return user


def app_backends(admin, role):
    """(pid, state, wait_event_type, query_start, query) of the app role's
    client backends, excluding none: idle ones are returned too."""
    return admin.execute(
        "SELECT pid, state, wait_event_type, query_start, left(query, 200) "
        "FROM pg_stat_activity WHERE usename = %s AND backend_type = 'client backend'",
        (role,)).fetchall()


def busy_backends(admin, role):
    """App backends that stay non-idle across two samples 300 ms apart (the
    same query still running or a transaction left open), so a momentary
    health check is not mistaken for a leaked query."""
    first = {(pid, qs): (st, q) for pid, st, _, qs, q in app_backends(admin, role) if st != "idle"}
    if not first:
        return []
    time.sleep(0.3)
    second = {(pid, qs): (st, q) for pid, st, _, qs, q in app_backends(admin, role) if st != "idle"}
    return [(k, v) for k, v in second.items() if k in first]


def test_deadline_answers_in_time_and_cancels_the_query(server):
    user = make_user(server)
    role = app_conninfo().get("user", "api_app")
    dbname = app_conninfo().get("dbname", "api")
    srv = start_users_server(server, REQUEST_TIMEOUT_MS=str(TIMEOUT_MS))
    c = Client(srv)
    admin = admin_connect()
    locker = admin_connect(dbname=dbname, autocommit=False)
    try:
        assert_page(c.get("/v1/users", params={"limit": 1}))  # pool connected, warm

        locker.execute("SET lock_timeout = '5s'")
        locker.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        t0 = time.monotonic()
        r = c.get(f"/v1/users/{user['id']}", timeout=15)
        elapsed = time.monotonic() - t0
        assert r.status_code in (503, 504), describe(r)
        assert_problem_response(r, r.status_code, slug=None)
        assert 0.8 <= elapsed <= 2.0, \
            f"answered after {elapsed:.2f}s with a {TIMEOUT_MS} ms deadline"

        # The lock is still held: a query that was not cancelled would still
        # be waiting for it.
        def nobody_waits():
            return not [b for b in app_backends(admin, role) if b[1] == "active" and b[2] == "Lock"]
        assert wait_until(nobody_waits, 1.5), \
            f"query still waiting in PostgreSQL after the deadline: {app_backends(admin, role)}"
    finally:
        locker.rollback()
        locker.close()
    try:
        time.sleep(2.0)
        busy = busy_backends(admin, role)
        assert not busy, f"{role} backends still busy 2 s after the lock was released: {busy}"
    finally:
        admin.close()
    # The server is fine afterwards and the user is intact.
    got = assert_user(c.get(f"/v1/users/{user['id']}"))
    assert got == strip_private(user)
    c.close()


def _ready_status(c):
    return c.get("/health/ready", token=None, timeout=5).status_code


def test_database_outage_fails_fast_then_recovers_without_restart(server):
    user = make_user(server)
    srv = start_users_server(server)
    pid = srv.proc.pid
    c = Client(srv)
    assert_json_response(c.get("/health/ready", token=None), 200)
    services("pg-stop")
    try:
        for attempt in range(3):
            t0 = time.monotonic()
            r = c.get(f"/v1/users/{user['id']}", timeout=10)
            elapsed = time.monotonic() - t0
            assert_problem_response(r, 503, slug="unavailable")
            assert elapsed < 1.0, f"attempt {attempt}: 503 took {elapsed:.2f}s"
            retry = r.headers.get("Retry-After", "")
            assert retry.isdigit(), f"Retry-After: {retry!r}\n{describe(r)}"
        assert wait_until(lambda: _ready_status(c) == 503, 3.0), \
            "/health/ready stayed 200 with PostgreSQL stopped"
        assert_problem_response(c.get("/health/ready", token=None), 503, slug=None)
    finally:
        services("pg-start")

    def back():
        r = c.get(f"/v1/users/{user['id']}", timeout=5)
        return r if r.status_code == 200 else None
    r = wait_until(back, 10.0, interval=0.25)
    assert r is not None, "requests still fail 10 s after PostgreSQL came back"
    assert assert_user(r) == strip_private(user)
    assert wait_until(lambda: _ready_status(c) == 200, 10.0), "/health/ready did not return to 200"
    c.create_user(name="After Outage")  # writes work again too
    assert srv.running() and srv.proc.pid == pid
    c.close()
