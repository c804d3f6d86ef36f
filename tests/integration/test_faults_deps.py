"""Dependencies that stop answering, and dependencies that are merely busy.

- PostgreSQL frozen (SIGSTOP: it accepts connections and answers nothing):
  readiness 503 within 2 s, with or without traffic; requests then fail fast
  with 503 instead of waiting for their deadlines; readiness 200 again within
  10 s of SIGCONT.
- Lock contention on one row: its requests time out, but the breaker stays
  closed and the rest of the API keeps working.
- Redis frozen: within 2 s reads stop paying Redis timeouts, limits are
  local, and each worker logs the transition once.
- A host name in DATABASE_URL is resolved at start, never again on a
  worker's loop (reconnects open no resolver files)."""

import re
import subprocess
import threading
import time

import pytest
import requests

from harness import LOOPBACK
from redis_support import REDIS_URL, ready_status, requires_redis
from users_support import (DATABASE_URL, Client, admin_connect, app_dbname, assert_page, describe,
                           frozen, pg_processes, redis_process, requires_services, services,
                           start_users_server, wait_ready_200, wait_until)

pytestmark = requires_services


def _first_time(predicate, timeout, interval=0.05):
    """Seconds until predicate() first holds, or None within timeout."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if predicate():
            return time.monotonic() - t0
        time.sleep(interval)
    return None


class Load:
    """Threads sending `path` in a loop; records (start, latency, status)."""

    def __init__(self, srv, path, threads=4, token=None):
        self.results = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(srv, path, token), daemon=True)
                         for _ in range(threads)]
        for t in self._threads:
            t.start()

    def _run(self, srv, path, token):
        c = Client(srv, token=token) if token is not None else Client(srv)
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                status = c.get(path, timeout=15).status_code
            except requests.RequestException:
                status = None
            self.results.append((t0, time.monotonic() - t0, status))
        c.close()

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(20)


@pytest.mark.parametrize("traffic", [False, True], ids=["idle", "under-load"])
def test_frozen_postgres_is_seen_within_2s_and_recovers(server, traffic):
    srv = start_users_server(server, REQUEST_TIMEOUT_MS="10000")
    c = Client(srv)
    c.create_user(name="Frozen PG")
    load = Load(srv, "/v1/users?limit=5") if traffic else None
    try:
        time.sleep(0.3)
        with frozen(pg_processes()):
            to_503 = _first_time(lambda: ready_status(srv) == 503, 4.0)
            assert to_503 is not None and to_503 <= 2.0, f"readiness 503 after {to_503}s"
            # The breaker is open: a request fails fast, it does not wait
            # for its 10 s deadline.
            t0 = time.monotonic()
            r = c.get("/v1/users?limit=1", timeout=15)
            took = time.monotonic() - t0
            assert r.status_code == 503, describe(r)
            assert r.headers.get("Retry-After"), describe(r)
            assert took < 0.5, f"a request took {took:.2f}s to fail while PostgreSQL is frozen"
            time.sleep(1.0)
        to_200 = _first_time(lambda: ready_status(srv) == 200, 12.0, interval=0.1)
        assert to_200 is not None and to_200 <= 10.0, f"readiness 200 again after {to_200}s"
        assert_page(c.get("/v1/users?limit=1"))
    finally:
        if load:
            load.stop()
        c.close()
    if load:
        # no request waited out its 10 s deadline
        slow = [lat for _, lat, _ in load.results if lat > 3.0]
        assert not slow, f"{len(slow)} requests took over 3 s (max {max(slow):.1f}s)"


def test_lock_contention_on_one_row_does_not_take_the_api_down(server):
    srv = start_users_server(server, REQUEST_TIMEOUT_MS="600", BREAKER_FAILURES="3", WORKERS="1",
                             DATABASE_POOL_SIZE="1",
                             BREAKER_COOLDOWN_MS="30000")
    c = Client(srv)
    user = c.create_user(name="Locked")
    locker = admin_connect(dbname=app_dbname(), autocommit=False)
    try:
        locker.execute("SELECT 1 FROM users WHERE id = %s FOR UPDATE", (user["id"],))
        results = []

        def patch(i):
            with Client(srv) as pc:
                results.append(pc.patch(f"/v1/users/{user['id']}", json_body={"name": f"Waited {i}"},
                                        timeout=10))
        threads = [threading.Thread(target=patch, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(15)
        assert len(results) == 6
        for r in results:
            assert r.status_code == 504, describe(r)
        # Whatever the timed-out requests left queued in PostgreSQL has ended
        # (no lock waiter in two samples 300 ms apart: statements run back
        # to back, so one sample can fall between two of them).
        with admin_connect() as admin:
            def waiters():
                return admin.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock' "
                    "AND pid <> %s", (app_dbname(), locker.info.backend_pid)).fetchone()[0]

            def settled():
                if waiters():
                    return False
                time.sleep(0.3)
                return not waiters()
            assert wait_until(settled, 10.0)
        # Six request timeouts at once: the API as a whole is fine.
        assert ready_status(srv) == 200
        assert_page(c.get("/v1/users?limit=3"))
        other = c.create_user(name="Not locked")
        r = c.patch(f"/v1/users/{other['id']}", json_body={"name": "Updated"})
        assert r.status_code == 200, describe(r)
    finally:
        locker.rollback()
        locker.close()
        c.close()


@requires_redis
def test_frozen_redis_degrades_within_2s_and_logs_once(server):
    srv = start_users_server(server, REDIS_URL=REDIS_URL, WORKERS="2", REDIS_TIMEOUT_MS="250",
                             RATE_LIMIT_MAX="100000")
    c = Client(srv)
    user = c.create_user(name="Cached")
    assert c.get(f"/v1/users/{user['id']}").status_code == 200  # now cached
    load = Load(srv, f"/v1/users/{user['id']}", threads=4)
    try:
        time.sleep(0.5)
        with frozen([redis_process()]) as t_freeze:
            time.sleep(4.0)
        t_thaw = time.monotonic()
        back = wait_until(lambda: len(srv.log_lines()) and sum(
            1 for o in srv.log_lines() if "available again" in o.get("msg", "")) >= 2, 12.0)
    finally:
        load.stop()
    after = [(lat, st) for t0, lat, st in load.results if t_freeze + 2.0 <= t0 and t0 + lat < t_thaw]
    assert len(after) > 50, f"only {len(after)} reads in the frozen window"
    assert all(st == 200 for _, st in after), sorted({st for _, st in after})
    lat = sorted(x for x, _ in after)
    p99 = lat[int(len(lat) * 0.99) - 1]
    assert p99 < 0.05, f"read p99 {p99 * 1000:.0f} ms from 2 s into the freeze (Redis timeouts still paid?)"
    msgs = [o.get("msg", "") for o in srv.log_lines()]
    down = [m for m in msgs if re.match(r"redis worker \d+: unavailable", m)]
    assert 1 <= len(down) <= 2, f"{len(down)} 'unavailable' lines for 2 workers in a 4 s freeze: {down[:6]}"
    assert any("rate limiting: Redis unusable" in m for m in msgs), "limits did not go local"
    assert back, "Redis was not used again within 12 s of SIGCONT\n" + srv.describe()
    r = c.get(f"/v1/users/{user['id']}")
    assert r.status_code == 200, describe(r)
    c.close()


def test_database_host_name_is_resolved_once_at_start(server):
    """DATABASE_URL names its host: reconnects after a PostgreSQL restart do
    not look it up again (no /etc/hosts read, no DNS socket) on any thread."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo
    params = conninfo_to_dict(DATABASE_URL)
    if params.get("host") != LOOPBACK:
        pytest.skip("DATABASE_URL does not use TCP on 127.0.0.1")
    url = make_conninfo(**{**params, "host": "localhost"})
    srv = start_users_server(server, DATABASE_URL=url)
    trace = srv.workdir / "strace.txt"
    st = subprocess.Popen(["strace", "-f", "-qq", "-e", "trace=openat,connect", "-o", str(trace),
                           "-p", str(srv.proc.pid)], stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)  # attached
        services("pg-stop")
        services("pg-start")
        wait_ready_200(srv, timeout=20)
    finally:
        st.terminate()
        st.wait(10)
    text = trace.read_text(errors="replace")
    assert "connect(" in text, "strace saw no connect at all: the check would prove nothing"
    assert "/etc/hosts" not in text and "resolv.conf" not in text and "htons(53)" not in text, \
        [line for line in text.splitlines() if "hosts" in line or "resolv" in line or "(53)" in line][:5]
