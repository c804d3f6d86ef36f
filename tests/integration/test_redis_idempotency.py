"""Idempotency-Key on POST /v1/users and PATCH /v1/users/{id} with Redis and
two server processes (Stripe semantics), checked against the database:

- a retry with the same key and body, on the same or another process,
  replays the first answer byte for byte (Idempotent-Replayed: true) and the
  write happens once; final client errors (409, 422) are replayed too;
- the same key with another body, or on another path, is a 422;
- keys belong to the token's sub; malformed keys are a 400;
- a retry while the first request is in flight is a 409, also when 20
  copies race over two processes;
- all of it still holds with Redis stopped."""

import threading
import time

import pytest

from harness import Background
from redis_support import (app_dbname, count_users_with_email, etag_version, fresh_sub,
                           idem_key, redis_stopped, requires_redis, requires_service_control,
                           start_redis_server)
from users_support import (Client, admin_connect, assert_created, assert_etag,
                           assert_problem_response, assert_user, describe, make_token,
                           strip_private, unique_email)

pytestmark = requires_redis

TIMEOUT_MS = 4000


def start_pair(factory):
    a = start_redis_server(factory, REQUEST_TIMEOUT_MS=TIMEOUT_MS)
    b = start_redis_server(factory, REQUEST_TIMEOUT_MS=TIMEOUT_MS)
    return a, b


@pytest.fixture(scope="module")
def servers(module_server):
    return start_pair(module_server)


@pytest.fixture
def pair(servers):
    """Clients of processes A and B with one token (one sub) for both."""
    token = make_token(sub=fresh_sub("idem"))
    ca, cb = Client(servers[0], token=token), Client(servers[1], token=token)
    yield ca, cb
    ca.close()
    cb.close()


def hk(key):
    return {"Idempotency-Key": key}


def assert_replay_of(r, first):
    """r replays `first`: same status, byte-identical body, same ETag and
    Location, and Idempotent-Replayed: true."""
    assert r.status_code == first.status_code, \
        f"replay status {r.status_code}, first was {first.status_code}\n{describe(r)}"
    assert r.headers.get("Idempotent-Replayed") == "true", \
        f"no Idempotent-Replayed: true on a replay\n{describe(r)}"
    assert r.content == first.content, \
        f"replayed body differs:\nfirst:  {first.content!r}\nreplay: {r.content!r}"
    for h in ("ETag", "Location", "Content-Type"):
        assert r.headers.get(h) == first.headers.get(h), \
            f"{h} differs: first {first.headers.get(h)!r}, replay {r.headers.get(h)!r}"


def assert_first(r):
    assert r.headers.get("Idempotent-Replayed") is None, \
        f"Idempotent-Replayed on a first response\n{describe(r)}"


# ---- key syntax -----------------------------------------------------------------

BAD_KEYS = {
    "empty": "",
    "256-chars": "k" * 256,
    "tab-inside": "key\twith-a-tab",
    "non-ascii": "caf\u00e9-key",
}


@pytest.mark.parametrize("bad", list(BAD_KEYS.values()), ids=list(BAD_KEYS))
def test_malformed_key_on_post_is_400_and_writes_nothing(pair, bad):
    a, _ = pair
    email = unique_email("badkey")
    r = a.post("/v1/users", headers=hk(bad), json_body={"email": email, "name": "K"})
    assert_problem_response(r, 400, need_errors=False)
    assert count_users_with_email(email) == 0


@pytest.mark.parametrize("bad", list(BAD_KEYS.values()), ids=list(BAD_KEYS))
def test_malformed_key_on_patch_is_400_and_changes_nothing(pair, bad):
    a, _ = pair
    user = a.create_user(name="Unchanged")
    path = f"/v1/users/{user['id']}"
    r = a.patch(path, headers=hk(bad), json_body={"name": "Changed"})
    assert_problem_response(r, 400, need_errors=False)
    g = a.get(path)
    assert assert_user(g)["name"] == "Unchanged"
    assert g.headers.get("ETag") == user["_etag"]


def test_255_printable_characters_are_a_valid_key(pair):
    a, b = pair
    printable = "".join(chr(c) for c in range(0x21, 0x7F))  # no space at the ends
    key = ("A " + printable * 3)[:254] + "Z"
    assert len(key) == 255
    body = {"email": unique_email("longkey"), "name": "Long Key"}
    first = a.post("/v1/users", headers=hk(key), json_body=body)
    assert_created(a, first)
    assert_first(first)
    assert_replay_of(b.post("/v1/users", headers=hk(key), json_body=body), first)
    assert count_users_with_email(body["email"]) == 1


# ---- replay ---------------------------------------------------------------------

def test_create_is_replayed_on_the_same_and_another_process(pair):
    a, b = pair
    key = idem_key()
    body = {"email": unique_email("replay"), "name": "Replayed"}
    first = a.post("/v1/users", headers=hk(key), json_body=body)
    user = assert_created(a, first)
    assert_first(first)
    assert_replay_of(a.post("/v1/users", headers=hk(key), json_body=body), first)
    assert_replay_of(b.post("/v1/users", headers=hk(key), json_body=body), first)
    assert count_users_with_email(body["email"]) == 1
    assert assert_user(b.get(f"/v1/users/{user['id']}")) == strip_private(user)


def test_same_key_with_another_body_is_422(pair):
    a, b = pair
    key = idem_key()
    body = {"email": unique_email("reuse"), "name": "Original"}
    first = a.post("/v1/users", headers=hk(key), json_body=body)
    assert_created(a, first)
    other_email = unique_email("reuse-other")
    for c, other in ((a, {"email": other_email, "name": "Original"}),
                     (b, {"email": body["email"], "name": "Different"}),
                     (b, {"email": body["email"]})):
        r = c.post("/v1/users", headers=hk(key), json_body=other)
        assert_problem_response(r, 422, slug="idempotency-key-reused", need_errors=False)
        assert r.headers.get("Idempotent-Replayed") is None
    assert count_users_with_email(other_email) == 0
    # The key still replays its own request.
    assert_replay_of(b.post("/v1/users", headers=hk(key), json_body=body), first)


def test_same_key_on_another_path_is_422(pair):
    a, b = pair
    u1, u2 = a.create_user(name="Path One"), a.create_user(name="Path Two")
    key = idem_key()
    patch = {"name": "Same Body"}
    first = a.patch(f"/v1/users/{u1['id']}", headers=hk(key), json_body=patch)
    assert_user(first)
    assert_first(first)
    r = b.patch(f"/v1/users/{u2['id']}", headers=hk(key), json_body=patch)
    assert_problem_response(r, 422, slug="idempotency-key-reused", need_errors=False)
    g = a.get(f"/v1/users/{u2['id']}")
    assert assert_user(g)["name"] == "Path Two"
    assert g.headers.get("ETag") == u2["_etag"]


def test_keys_are_scoped_to_the_sub(servers):
    a_srv, b_srv = servers
    alice = Client(a_srv, token=make_token(sub=fresh_sub("alice")))
    bob = Client(b_srv, token=make_token(sub=fresh_sub("bob")))
    try:
        key = idem_key()
        body = {"email": unique_email("scoped"), "name": "Alice's"}
        first = alice.post("/v1/users", headers=hk(key), json_body=body)
        assert_created(alice, first)
        # Bob's request with the same key and body is his own: it runs (and
        # meets Alice's email), it is not a replay of Alice's answer.
        r = bob.post("/v1/users", headers=hk(key), json_body=body)
        assert_problem_response(r, 409)
        assert r.headers.get("Idempotent-Replayed") is None
        # With his own body it creates his user.
        bob_body = {"email": unique_email("scoped-bob"), "name": "Bob's"}
        rb = bob.post("/v1/users", headers=hk(idem_key()), json_body=bob_body)
        assert_created(bob, rb)
        k2 = idem_key()
        b1 = bob.post("/v1/users", headers=hk(k2), json_body={"email": unique_email("s"),
                                                               "name": "Bob 2"})
        assert_created(bob, b1)
        a2 = alice.post("/v1/users", headers=hk(k2), json_body={"email": unique_email("s"),
                                                                 "name": "Alice 2"})
        assert_created(alice, a2)
        assert_first(a2)
        assert a2.json()["id"] != b1.json()["id"]
        assert_replay_of(alice.post("/v1/users", headers=hk(key), json_body=body), first)
        assert count_users_with_email(body["email"]) == 1
    finally:
        alice.close()
        bob.close()


def test_duplicate_email_409_is_replayed(pair):
    a, b = pair
    email = unique_email("dup")
    a.create_user(email=email, name="Taken")
    key = idem_key()
    body = {"email": email, "name": "Second"}
    first = a.post("/v1/users", headers=hk(key), json_body=body)
    assert_problem_response(first, 409)
    assert_first(first)
    for c in (b, a):
        r = c.post("/v1/users", headers=hk(key), json_body=body)
        assert_problem_response(r, 409)
        assert_replay_of(r, first)
    assert count_users_with_email(email) == 1


def test_validation_422_is_replayed(pair):
    a, b = pair
    key = idem_key()
    body = {"email": "not-an-email", "name": ""}
    first = a.post("/v1/users", headers=hk(key), json_body=body)
    assert_problem_response(first, 422, fields=["/email", "/name"])
    assert_first(first)
    for c in (b, a):
        r = c.post("/v1/users", headers=hk(key), json_body=body)
        assert_problem_response(r, 422)
        assert_replay_of(r, first)


def test_patch_with_a_key_applies_once(pair):
    a, b = pair
    user = a.create_user(name="Before")
    path = f"/v1/users/{user['id']}"
    v0 = etag_version(user["_etag"])
    key = idem_key()
    first = a.patch(path, headers=hk(key), json_body={"name": "After"})
    after = assert_user(first)
    assert after["name"] == "After"
    assert_first(first)
    etag = assert_etag(first)
    assert etag_version(etag) == v0 + 1
    for c in (a, b):
        r = c.patch(path, headers=hk(key), json_body={"name": "After"})
        assert r.status_code == 200, describe(r)
        assert_replay_of(r, first)
    g = b.get(path)
    assert assert_user(g) == after
    assert etag_version(assert_etag(g)) == v0 + 1, \
        f"the version moved from {v0} to {etag_version(g.headers['ETag'])}: applied more than once"


def test_requests_without_a_key_are_not_replayed(pair):
    a, b = pair
    body = {"email": unique_email("nokey"), "name": "No Key"}
    first = a.post("/v1/users", json_body=body)
    user = assert_created(a, first)
    assert_first(first)
    again = b.post("/v1/users", json_body=body)
    assert_problem_response(again, 409)
    assert_first(again)
    path = f"/v1/users/{user['id']}"
    for c in (a, b):
        r = c.patch(path, json_body={"name": "Patched"})
        assert_user(r)
        assert_first(r)


# ---- in flight ------------------------------------------------------------------

def test_retry_while_the_first_is_in_flight_is_409(pair):
    a, b = pair
    key = idem_key()
    body = {"email": unique_email("inflight"), "name": "In Flight"}
    # Both processes warm (pools connected) before the table is locked.
    warm = a.create_user(name="Warm")
    assert_user(b.get(f"/v1/users/{warm['id']}"))

    def first_request():
        c = Client(a.srv, token=a.token)
        try:
            return c.post("/v1/users", headers=hk(key), json_body=body, timeout=15)
        finally:
            c.close()

    locker = admin_connect(dbname=app_dbname(), autocommit=False)
    first = None
    try:
        locker.execute("SET lock_timeout = '5s'")
        locker.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        first = Background(first_request)
        time.sleep(0.3)
        assert not first.done(), f"the first request did not wait for the lock: {first.result}"
        for label, c in (("same process", a), ("another process", b)):
            t0 = time.monotonic()
            r = c.post("/v1/users", headers=hk(key), json_body=body, timeout=10)
            elapsed = time.monotonic() - t0
            assert_problem_response(r, 409, slug="idempotency-key-in-flight", need_errors=False)
            assert r.headers.get("Idempotent-Replayed") is None
            assert elapsed < 1.0, f"{label}: the in-flight 409 took {elapsed:.2f}s"
    finally:
        locker.rollback()
        locker.close()
    if first is not None:
        first.join(15)
    assert first.error is None, f"first request raised {first.error!r}"
    r1 = first.result
    assert r1.status_code in (201, 503, 504), describe(r1)
    retry = b.post("/v1/users", headers=hk(key), json_body=body)
    if r1.status_code == 201:
        assert_replay_of(retry, r1)
    else:
        # No final answer was stored: the retry runs again.
        assert_created(b, retry)
        assert_first(retry)
    assert count_users_with_email(body["email"]) == 1


def test_concurrent_retries_over_two_processes_write_once(servers):
    a_srv, b_srv = servers
    token = make_token(sub=fresh_sub("race"))
    key = idem_key()
    body = {"email": unique_email("race"), "name": "Race"}
    n = 20
    clients = [Client(a_srv if i % 2 == 0 else b_srv, token=token) for i in range(n)]
    barrier = threading.Barrier(n)
    results = [None] * n

    def go(i):
        try:
            barrier.wait(10)
            results[i] = clients[i].post("/v1/users", headers=hk(key), json_body=body, timeout=15)
        except Exception as e:  # reported below
            results[i] = e
    threads = [threading.Thread(target=go, args=(i,), daemon=True) for i in range(n)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        assert not any(t.is_alive() for t in threads), "requests still running after 20 s"
        errors = [r for r in results if isinstance(r, Exception)]
        assert not errors, f"requests failed: {errors[:3]}"
        codes = [r.status_code for r in results]
        assert set(codes) <= {201, 409}, f"statuses: {codes}"
        created = [r for r in results if r.status_code == 201]
        assert created, f"no 201 among {codes}"
        originals = [r for r in created if r.headers.get("Idempotent-Replayed") is None]
        assert len(originals) == 1, \
            f"{len(originals)} of the 201s claim to be the original (exactly one ran): {codes}"
        for r in created:
            assert r.content == created[0].content, "201 bodies differ"
            assert r.headers.get("ETag") == created[0].headers.get("ETag")
        for r in results:
            if r.status_code == 409:
                assert_problem_response(r, 409, slug="idempotency-key-in-flight", need_errors=False)
                assert r.headers.get("Idempotent-Replayed") is None
        assert count_users_with_email(body["email"]) == 1
        later = clients[1].post("/v1/users", headers=hk(key), json_body=body)
        assert_replay_of(later, originals[0])
    finally:
        for c in clients:
            c.close()


# ---- Redis down ------------------------------------------------------------------

@requires_service_control
def test_idempotency_holds_with_redis_down_and_after_redis_lost_its_keys(server):
    a_srv, b_srv = start_pair(server)
    token = make_token(sub=fresh_sub("idem-down"))
    a, b = Client(a_srv, token=token), Client(b_srv, token=token)
    try:
        k1, k2 = idem_key("before"), idem_key("during")
        body1 = {"email": unique_email("before-outage"), "name": "Before"}
        body2 = {"email": unique_email("during-outage"), "name": "During"}
        first1 = a.post("/v1/users", headers=hk(k1), json_body=body1)
        assert_created(a, first1)
        with redis_stopped():
            # A key stored while Redis was up.
            assert_replay_of(a.post("/v1/users", headers=hk(k1), json_body=body1), first1)
            assert_replay_of(b.post("/v1/users", headers=hk(k1), json_body=body1), first1)
            # A new key while Redis is down.
            first2 = a.post("/v1/users", headers=hk(k2), json_body=body2)
            assert_created(a, first2)
            assert_first(first2)
            assert_replay_of(a.post("/v1/users", headers=hk(k2), json_body=body2), first2)
            assert_replay_of(b.post("/v1/users", headers=hk(k2), json_body=body2), first2)
            reused = b.post("/v1/users", headers=hk(k2), json_body=body1)
            assert_problem_response(reused, 422, slug="idempotency-key-reused", need_errors=False)
        # Redis restarted empty: keys are kept at least 24 h, so both still replay.
        for key, body, first in ((k1, body1, first1), (k2, body2, first2)):
            for c in (a, b):
                assert_replay_of(c.post("/v1/users", headers=hk(key), json_body=body), first)
        assert count_users_with_email(body1["email"]) == 1
        assert count_users_with_email(body2["email"]) == 1
    finally:
        a.close()
        b.close()
