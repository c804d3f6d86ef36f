"""Degraded mode: the server without Redis, and with Redis stopped under it.

- REDIS_URL='': everything works, limits come from an in-process limiter.
- Redis stopped while serving: reads keep answering 200, limits are still
  enforced locally (RATE_LIMIT_FAIL_MODE=local, the default), readiness stays
  200 unless REDIS_REQUIRED=1; once Redis is back the budget is global again.
- RATE_LIMIT_FAIL_MODE=closed answers 503 while Redis is down; `open` stops
  limiting.

Tests that stop Redis restart it in a `finally` and wait for PONG."""

import threading
import time

from redis_support import (fresh_loopback_address, fresh_sub, raw_request, rate_state,
                           ready_status, redis_stopped, requires_redis, requires_service_control,
                           retry_after, start_redis_server, statuses, wait_until)
from users_support import (Client, assert_created, assert_json_response, assert_problem_response,
                           assert_user, make_token, start_users_server, unique_email,
                           validate_schema)

pytestmark = requires_redis

MAX = 3
WINDOW = 30


def tok(prefix="deg"):
    return make_token(sub=fresh_sub(prefix))


def test_without_redis_everything_works_and_limits_are_local(server):
    srv = start_users_server(server, REDIS_URL="", RATE_LIMIT_FAIL_MODE=None, WORKERS=1,
                             RATE_LIMIT_MAX=MAX, RATE_LIMIT_WINDOW_S=WINDOW)
    c = Client(srv)
    try:
        assert assert_json_response(c.get("/health/ready", token=None), 200) == {"status": "ready"}
        # The whole API, each call from a fresh identity.
        r = c.post("/v1/users", token=tok(), json_body={"email": unique_email("noredis"),
                                                        "name": "No Redis"})
        user = assert_created(c, r)
        path = f"/v1/users/{user['id']}"
        checks = [r, c.get(path, token=tok()), c.get("/v1/users", token=tok(), params={"limit": 2}),
                  c.patch(path, token=tok(), json_body={"name": "Still No Redis"})]
        assert statuses(checks) == [201, 200, 200, 200], statuses(checks)
        assert assert_user(checks[3])["name"] == "Still No Redis"
        # The schema only: the first page may hold users of earlier runs.
        validate_schema("UserPage", assert_json_response(checks[2], 200))
        for resp in checks:
            assert rate_state(resp, MAX, WINDOW)[0] == MAX - 1
        d = c.delete(path, token=tok())
        assert d.status_code == 204, d.text
        assert c.get(path, token=tok()).status_code == 404

        # One identity over one keep-alive connection (WORKERS=1 anyway).
        token = tok("local")
        rs = [c.get("/v1/users", token=token, params={"limit": 1}) for _ in range(MAX + 1)]
        assert statuses(rs) == [200] * MAX + [429], statuses(rs)
        assert [rate_state(x, MAX, WINDOW)[0] for x in rs] == [2, 1, 0, 0]
        assert_problem_response(rs[MAX], 429, slug="quota-exceeded")
        retry_after(rs[MAX], minimum=1)
        # Another identity is unaffected.
        other = c.get("/v1/users", token=tok("local-other"), params={"limit": 1})
        assert other.status_code == 200, other.text
        assert assert_json_response(c.get("/health/ready", token=None), 200) == {"status": "ready"}
    finally:
        c.close()


class ReadLoop:
    """GET /v1/users/{id} and GET /v1/users in a loop (each with a fresh sub,
    so the limiter never interferes) until stopped; keeps every outcome."""

    def __init__(self, srv, user_id):
        self.srv = srv
        self.paths = [(f"/v1/users/{user_id}", None), ("/v1/users", {"limit": 2})]
        self.results = []  # (monotonic time, path, status or exception, seconds)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        c = Client(self.srv, token=None)
        try:
            i = 0
            while not self._stop.is_set():
                path, params = self.paths[i % 2]
                i += 1
                t0 = time.monotonic()
                try:
                    r = c.get(path, token=tok("reader"), params=params, timeout=5)
                    outcome = r.status_code
                except Exception as e:  # recorded and reported by the test
                    outcome = repr(e)
                self.results.append((t0, path, outcome, time.monotonic() - t0))
                time.sleep(0.02)
        finally:
            c.close()

    def stop(self):
        self._stop.set()
        self._thread.join(10)
        assert not self._thread.is_alive(), "read loop did not stop within 10 s"
        return self.results


@requires_service_control
def test_redis_outage_keeps_serving_with_local_limits_then_goes_global_again(server):
    a = start_redis_server(server, WORKERS=1, RATE_LIMIT_MAX=MAX, RATE_LIMIT_WINDOW_S=WINDOW)
    b = start_redis_server(server, RATE_LIMIT_MAX=MAX, RATE_LIMIT_WINDOW_S=WINDOW)
    strict = start_redis_server(server, REDIS_REQUIRED=1, RATE_LIMIT_MAX=MAX,
                                RATE_LIMIT_WINDOW_S=WINDOW)
    ca, cb = Client(a), Client(b)
    user = ca.create_user(name="Outage Reader", token=tok("maker"))
    path = f"/v1/users/{user['id']}"
    assert ready_status(strict) == 200

    loop = ReadLoop(a, user["id"])
    stopped_at = restarted_at = None
    try:
        time.sleep(0.3)
        with redis_stopped():
            stopped_at = time.monotonic()
            # REDIS_REQUIRED=1: readiness turns 503 within ~3 s.
            assert wait_until(lambda: ready_status(strict) == 503, 3.5, interval=0.1), \
                "readiness stayed 200 with REDIS_REQUIRED=1 and Redis stopped\n" + strict.describe()
            # The default: readiness stays 200.
            for _ in range(3):
                assert ready_status(a) == 200, "readiness of a server without REDIS_REQUIRED " \
                                               "left 200 while Redis is down\n" + a.describe()
                time.sleep(0.1)
            # Limits are still enforced, locally: one sub, one connection.
            local = Client(a, token=tok("local"))
            try:
                rs = [local.get(path) for _ in range(MAX + 1)]
            finally:
                local.close()
            assert statuses(rs) == [200] * MAX + [429], \
                f"local limiter with Redis down: {statuses(rs)}"
            assert [rate_state(x, MAX, WINDOW)[0] for x in rs] == [2, 1, 0, 0]
            assert_problem_response(rs[MAX], 429, slug="quota-exceeded")
            retry_after(rs[MAX], minimum=1)
            # Unauthenticated requests are answered (401, limited by address).
            r = raw_request(a, "GET", path, fresh_loopback_address())
            assert r.status == 401, r
            # Keep the readers going through the outage for a while.
            time.sleep(max(0.0, 1.5 - (time.monotonic() - stopped_at)))
        restarted_at = time.monotonic()
        time.sleep(0.5)
    finally:
        results = loop.stop()

    bad = [x for x in results if x[2] != 200]
    assert not bad, f"reads failed across the Redis outage: {bad[:10]}\n" + a.describe()
    during = [x for x in results if stopped_at <= x[0] <= restarted_at]
    assert len(during) >= 5, f"only {len(during)} reads while Redis was down"
    slow = [x for x in results if x[3] > 2.0]
    assert not slow, f"reads took over 2 s while Redis was down or restarting: {slow[:10]}"

    # Back to one global budget within 10 s: alternate A and B with a fresh sub.
    seen = []

    def global_again():
        token = tok("global-again")
        rs = [(ca if i % 2 == 0 else cb).get(path, token=token) for i in range(MAX + 1)]
        seen.append(statuses(rs))
        return statuses(rs) == [200] * MAX + [429]
    assert wait_until(global_again, 10.0, interval=0.25), \
        f"the budget is not shared between processes 10 s after redis-start: {seen[-5:]}"
    assert wait_until(lambda: ready_status(strict) == 200, 10.0), \
        "readiness with REDIS_REQUIRED=1 did not return to 200 after redis-start"
    ca.close()
    cb.close()


@requires_service_control
def test_fail_modes_with_redis_down(server):
    closed = start_redis_server(server, RATE_LIMIT_FAIL_MODE="closed", RATE_LIMIT_MAX=MAX,
                                RATE_LIMIT_WINDOW_S=WINDOW)
    opened = start_redis_server(server, RATE_LIMIT_FAIL_MODE="open", RATE_LIMIT_MAX=MAX,
                                RATE_LIMIT_WINDOW_S=WINDOW)
    cc, co = Client(closed), Client(opened)
    user = cc.create_user(name="Fail Modes", token=tok("maker"))
    path = f"/v1/users/{user['id']}"
    assert cc.get(path, token=tok()).status_code == 200
    assert co.get(path, token=tok()).status_code == 200
    with redis_stopped():
        # closed: no limiter, no service; 503 with Retry-After, fast.
        for label, call in [
            ("GET one", lambda: cc.get(path, token=tok())),
            ("GET list", lambda: cc.get("/v1/users", token=tok(), params={"limit": 1})),
            ("POST", lambda: cc.post("/v1/users", token=tok(),
                                     json_body={"email": unique_email("closed"), "name": "C"})),
        ]:
            t0 = time.monotonic()
            r = call()
            elapsed = time.monotonic() - t0
            assert r.status_code == 503, f"closed mode, Redis down, {label}: {r.status_code} {r.text}"
            assert_problem_response(r, 503, slug="unavailable")
            retry_after(r)
            assert elapsed < 2.0, f"closed mode took {elapsed:.2f}s to refuse"
        # open: no limiting while Redis is down, even far past the budget.
        token = tok("open")
        rs = [co.get(path, token=token) for _ in range(2 * MAX + 2)]
        assert set(statuses(rs)) == {200}, f"open mode, Redis down: {statuses(rs)}"
        assert ready_status(closed) == 200 and ready_status(opened) == 200
    # closed mode serves again once Redis is back.
    assert wait_until(lambda: cc.get(path, token=tok()).status_code == 200, 10.0, interval=0.25), \
        "closed mode still refuses 10 s after redis-start"
    cc.close()
    co.close()
