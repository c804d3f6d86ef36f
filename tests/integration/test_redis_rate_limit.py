"""Rate limiting backed by Redis, seen from outside: the five headers on every
/v1 response, the GCRA burst and count-down, a truthful Retry-After, the
identity (JWT sub, else the client address) and one budget shared by every
process on the same Redis; RATE_LIMIT_MAX=0 turns it off.

Every check uses a fresh identity (a new sub, or a new 127.x.y.z source
address), so budgets never leak between tests or runs on the same Redis."""

import math
import time

import pytest

from harness import assert_problem
from redis_support import (assert_no_rate_headers, fresh_loopback_address, fresh_sub,
                           raw_request, rate_state, requires_redis, retry_after,
                           start_redis_server, statuses)
from users_support import (Client, assert_problem_response, make_token, random_uuid7,
                           token_write_only, unique_email)

pytestmark = requires_redis

# A small budget with a long window: the 1/MAX-th of the window that a
# request "costs" (10 s) is far longer than a burst of requests takes, so
# nothing regenerates in the middle of a check.
MAX = 3
WINDOW = 30
INTERVAL = WINDOW / MAX


@pytest.fixture(scope="module")
def pair(module_server):
    """Two processes sharing the test database, Redis and secrets."""
    a = start_redis_server(module_server, RATE_LIMIT_MAX=MAX, RATE_LIMIT_WINDOW_S=WINDOW)
    b = start_redis_server(module_server, RATE_LIMIT_MAX=MAX, RATE_LIMIT_WINDOW_S=WINDOW)
    ca, cb = Client(a), Client(b)
    yield ca, cb
    ca.close()
    cb.close()


@pytest.fixture(scope="module")
def existing(pair):
    a, _ = pair
    return a.create_user(email=unique_email("rl-existing"), name="Rate Limited",
                         token=make_token(sub=fresh_sub("rl-maker")))


def test_headers_on_every_v1_response(pair, existing):
    """Each request comes from a fresh identity, so each is the first of its
    budget: Remaining is exactly MAX-1 whatever the status."""
    a, _ = pair
    uid = existing["id"]

    def tok():
        return make_token(sub=fresh_sub())

    etag = existing["_etag"]
    responses = {
        "201 POST /v1/users": a.post("/v1/users", token=tok(),
                                     json_body={"email": unique_email("rl"), "name": "RL"}),
        "200 GET /v1/users/{id}": a.get(f"/v1/users/{uid}", token=tok()),
        "200 GET /v1/users": a.get("/v1/users", token=tok(), params={"limit": 1}),
        "304 GET /v1/users/{id}": a.get(f"/v1/users/{uid}", token=tok(),
                                        headers={"If-None-Match": etag}),
        "403 GET /v1/users": a.get("/v1/users", token=token_write_only(sub=fresh_sub())),
        "404 GET /v1/users/{unknown}": a.get(f"/v1/users/{random_uuid7()}", token=tok()),
        "404 GET /v1/nowhere": a.get("/v1/nowhere", token=tok()),
        "405 PUT /v1/users/{id}": a.request("PUT", f"/v1/users/{uid}", token=tok(),
                                            json_body={"name": "x"}),
        "422 POST /v1/users": a.post("/v1/users", token=tok(),
                                     json_body={"email": "not-an-email", "name": "x"}),
    }
    # 401s are limited by address: each from an address of its own.
    responses["401 GET /v1/users (no token)"] = raw_request(
        a.srv, "GET", "/v1/users", fresh_loopback_address())
    responses["401 GET /v1/users/{id} (bad token)"] = raw_request(
        a.srv, "GET", f"/v1/users/{uid}", fresh_loopback_address(),
        authorization="Bearer not-a-jwt")
    for label, r in responses.items():
        status = r.status_code if hasattr(r, "status_code") else r.status
        assert str(status) == label.split()[0], f"{label}: got {status}"
        remaining, reset = rate_state(r, MAX, WINDOW)
        assert remaining == MAX - 1, f"{label}: first request of a fresh identity, " \
                                     f"X-RateLimit-Remaining {remaining}"
        assert 0 <= reset <= WINDOW, f"{label}: X-RateLimit-Reset {reset}"


def test_burst_counts_down_then_429(pair, existing):
    a, _ = pair
    token = make_token(sub=fresh_sub())
    path = f"/v1/users/{existing['id']}"
    t0 = time.monotonic()
    rs = [a.get(path, token=token) for _ in range(MAX + 1)]
    elapsed = time.monotonic() - t0
    assert elapsed < INTERVAL / 2, f"the burst took {elapsed:.1f}s; the check needs it fast"
    assert statuses(rs) == [200] * MAX + [429], statuses(rs)
    states = [rate_state(r, MAX, WINDOW) for r in rs]
    assert [rem for rem, _ in states] == list(range(MAX - 1, -1, -1)) + [0], states
    resets = [reset for _, reset in states]
    # "Seconds until the budget is full again": one request's worth after
    # the first, the whole window once the burst is spent.
    assert math.floor(INTERVAL) - 1 <= resets[0] <= math.ceil(INTERVAL) + 1, resets
    assert resets[:MAX] == sorted(resets[:MAX]), f"Reset must grow as the budget is spent: {resets}"
    assert WINDOW - 2 <= resets[MAX - 1] <= WINDOW, resets
    limited = rs[MAX]
    body = assert_problem_response(limited, 429, slug="quota-exceeded")
    assert body["status"] == 429
    wait = retry_after(limited, minimum=1)
    # The next request is allowed one interval after the first one.
    assert wait <= math.ceil(INTERVAL) + 1, f"Retry-After {wait} with a {INTERVAL}s interval"
    # Still limited right after: a rejected request does not reset anything.
    again = a.get(path, token=token)
    assert again.status_code == 429, again.text
    assert rate_state(again, MAX, WINDOW)[0] == 0


def test_retry_after_is_truthful(server):
    """MAX=3 per 3 s: one request regenerates every second, so Retry-After is
    1 or 2 and waiting that long is enough."""
    srv = start_redis_server(server, RATE_LIMIT_MAX=3, RATE_LIMIT_WINDOW_S=3)
    c = Client(srv, token=make_token(sub=fresh_sub()))
    try:
        for attempt in range(3):
            t0 = time.monotonic()
            rs = [c.get("/v1/users", params={"limit": 1}) for _ in range(4)]
            if time.monotonic() - t0 < 0.8:
                break
            # Too slow to be sure nothing regenerated mid-burst: a new sub.
            c.token = make_token(sub=fresh_sub())
            time.sleep(1.2)
        assert statuses(rs) == [200, 200, 200, 429], statuses(rs)
        assert_problem_response(rs[3], 429, slug="quota-exceeded")
        wait = retry_after(rs[3], minimum=1)
        assert wait <= 2, f"Retry-After {wait} with one request per second"
        assert rate_state(rs[3], 3, 3)[0] == 0
        time.sleep(wait)
        r = c.get("/v1/users", params={"limit": 1})
        assert r.status_code != 429, f"still limited after waiting Retry-After={wait}s: {r.text}"
        assert r.status_code == 200, r.text
    finally:
        c.close()


def test_different_subs_have_independent_budgets(pair, existing):
    a, _ = pair
    path = f"/v1/users/{existing['id']}"
    spent = make_token(sub=fresh_sub("spent"))
    rs = [a.get(path, token=spent) for _ in range(MAX + 1)]
    assert statuses(rs) == [200] * MAX + [429], statuses(rs)
    other = a.get(path, token=make_token(sub=fresh_sub("other")))
    assert other.status_code == 200, other.text
    assert rate_state(other, MAX, WINDOW)[0] == MAX - 1


def test_unauthenticated_requests_are_limited_by_address(pair, existing):
    a, _ = pair
    src = fresh_loopback_address()
    path = f"/v1/users/{existing['id']}"
    rs = [raw_request(a.srv, "GET", path, src) for _ in range(MAX)]
    assert statuses(rs) == [401] * MAX, rs
    assert [rate_state(r, MAX, WINDOW)[0] for r in rs] == list(range(MAX - 1, -1, -1)), rs
    # The address is spent: without a token, or with an invalid one (no sub
    # to go by), the next request is over the limit.
    for auth in (None, "Bearer not-a-jwt"):
        r = raw_request(a.srv, "GET", path, src, authorization=auth)
        assert_problem(r, 429)
        assert r.json()["type"] == "/problems/quota-exceeded", r
        retry_after(r, minimum=1)
        assert rate_state(r, MAX, WINDOW)[0] == 0
    # A valid token from the same address is limited by its sub instead.
    r = raw_request(a.srv, "GET", path, src, token=make_token(sub=fresh_sub()))
    assert r.status == 200, r
    assert rate_state(r, MAX, WINDOW)[0] == MAX - 1
    # Another address has its own budget.
    r = raw_request(a.srv, "GET", path, fresh_loopback_address())
    assert r.status == 401, r
    assert rate_state(r, MAX, WINDOW)[0] == MAX - 1


def test_budget_is_global_across_processes(pair, existing):
    a, b = pair
    token = make_token(sub=fresh_sub("global"))
    path = f"/v1/users/{existing['id']}"
    order = [a, b, a, b, a]
    rs = [order[i].get(path, token=token) for i in range(MAX + 1)]
    assert statuses(rs) == [200] * MAX + [429], \
        f"requests alternating between two processes: {statuses(rs)}"
    remaining = [rate_state(r, MAX, WINDOW)[0] for r in rs]
    # B's answers continue A's count and vice versa.
    assert remaining == list(range(MAX - 1, -1, -1)) + [0], remaining
    assert_problem_response(rs[MAX], 429, slug="quota-exceeded")
    # And the sub stays limited on both.
    for c in (a, b):
        r = c.get(path, token=token)
        assert r.status_code == 429, f"{c.url}: {r.status_code}"


def test_rate_limit_max_zero_disables_limiting(server):
    srv = start_redis_server(server, RATE_LIMIT_MAX=0, RATE_LIMIT_WINDOW_S=WINDOW)
    c = Client(srv, token=make_token(sub=fresh_sub("unlimited")))
    try:
        user = c.create_user(name="Unlimited")
        rs = [c.get(f"/v1/users/{user['id']}") for _ in range(2 * MAX + 4)]
        assert set(statuses(rs)) == {200}, statuses(rs)
        for r in rs:
            assert_no_rate_headers(r)
        r = raw_request(srv, "GET", "/v1/users", fresh_loopback_address())
        assert r.status == 401, r
        assert_no_rate_headers(r)
    finally:
        c.close()
