"""Cache-aside in Redis for GET /v1/users/{id}, proven from outside:

- a user read once is served while PostgreSQL is stopped, by the process
  that read it and by another one on the same Redis (so the copy is in
  Redis, not in a process), with the same body and ETag, and 304 for it;
  a user never read gives 503 at once;
- PATCH and DELETE through one process are seen at once by another (no
  stale read, no stale ETag);
- a 404 is remembered at most 1 s.

Users that must not be in any cache are created by a server without Redis."""

import time

import pytest

from redis_support import (app_dbname, etag_version, pg_stopped, requires_redis,
                           requires_service_control, start_redis_server)
from users_support import (Client, admin_connect, assert_etag, assert_problem_response,
                           assert_user, describe, make_token, random_uuid7, start_users_server,
                           strip_private, unique_email)

pytestmark = requires_redis


@pytest.fixture(scope="module")
def pair(module_server):
    a = start_redis_server(module_server)
    b = start_redis_server(module_server)
    ca, cb = Client(a), Client(b)
    yield ca, cb
    ca.close()
    cb.close()


def make_users_without_redis(factory, n):
    """n users created through a short-lived server that has no Redis: no
    Redis cache can hold them until someone reads them."""
    maker = start_users_server(factory, REDIS_URL="")
    c = Client(maker)
    try:
        users = [c.create_user(name=f"Uncached {i}") for i in range(n)]
    finally:
        c.close()
    assert maker.stop() == 0, maker.describe()
    return users


@requires_service_control
def test_cached_user_is_served_from_redis_while_postgres_is_down(pair, server):
    a, b = pair
    cached, never_read = make_users_without_redis(server, 2)
    path = f"/v1/users/{cached['id']}"
    first = a.get(path)
    assert assert_user(first) == strip_private(cached)
    etag = assert_etag(first)
    second = a.get(path)
    assert second.content == first.content and second.headers.get("ETag") == etag
    b.get(f"/v1/users/{random_uuid7()}")  # b is warm: its pool is connected

    with pg_stopped(servers_to_wait=[a.srv, b.srv]):
        for label, c in (("the process that read it", a), ("another process", b)):
            r = c.get(path, timeout=5)
            assert r.status_code == 200, \
                f"{label}: a cached user with PostgreSQL down\n{describe(r)}"
            assert r.content == first.content, f"{label}: body differs from the first read"
            assert r.headers.get("ETag") == etag, f"{label}: ETag differs from the first read"
            nm = c.get(path, headers={"If-None-Match": etag}, timeout=5)
            assert nm.status_code == 304, f"{label}: If-None-Match\n{describe(nm)}"
            assert nm.headers.get("ETag") == etag
        t0 = time.monotonic()
        r = a.get(f"/v1/users/{never_read['id']}", timeout=10)
        elapsed = time.monotonic() - t0
        assert_problem_response(r, 503, slug="unavailable")
        assert elapsed < 1.0, f"a user that was never read took {elapsed:.2f}s to fail"
    # Back to normal for everything.
    assert assert_user(a.get(f"/v1/users/{never_read['id']}")) == strip_private(never_read)


def test_patch_and_delete_through_one_process_are_seen_by_another(pair):
    a, b = pair
    user = a.create_user(name="Version 0")
    path = f"/v1/users/{user['id']}"
    old_etag = user["_etag"]
    for c in (a, b):  # both may hold a copy now
        assert c.get(path).headers.get("ETag") == old_etag
        assert c.get(path).headers.get("ETag") == old_etag
    for i, (writer, reader) in enumerate([(b, a), (a, b), (b, a), (b, a)], start=1):
        p = writer.patch(path, json_body={"name": f"Version {i}"})
        patched = assert_user(p)
        new_etag = assert_etag(p)
        assert etag_version(new_etag) == etag_version(old_etag) + 1
        r = reader.get(path)
        got = assert_user(r)
        assert got["name"] == f"Version {i}", f"stale read after PATCH {i}: {got}"
        assert got == patched
        assert r.headers.get("ETag") == new_etag, \
            f"stale ETag after PATCH {i}: {r.headers.get('ETag')} != {new_etag}"
        stale = reader.get(path, headers={"If-None-Match": old_etag})
        assert stale.status_code == 200, f"If-None-Match with the old ETag: {stale.status_code}"
        old_etag = new_etag
    d = b.delete(path)
    assert d.status_code == 204, d.text
    for c in (a, b, a):
        assert_problem_response(c.get(path), 404)


def test_unknown_user_stays_404(pair):
    a, b = pair
    path = f"/v1/users/{random_uuid7()}"
    for c in (a, a, b, a):
        assert_problem_response(c.get(path), 404)
    time.sleep(1.1)
    for c in (a, b):
        assert_problem_response(c.get(path), 404)


def test_a_404_is_remembered_at_most_one_second(pair):
    """The bound on negative caching, made visible by writing the user
    straight into the database (bypassing the API and any invalidation it
    would do) after the API has answered 404 for its id."""
    a, b = pair
    uid = random_uuid7()
    path = f"/v1/users/{uid}"
    assert_problem_response(a.get(path), 404)
    assert_problem_response(b.get(path), 404)
    answered = time.monotonic()
    email = unique_email("negcache")
    with admin_connect(dbname=app_dbname()) as conn:
        conn.execute("INSERT INTO users (id, email, name) VALUES (%s, %s, %s)",
                     (uid, email, "Written Behind The API"))
    time.sleep(max(0.0, answered + 1.3 - time.monotonic()))
    for label, c in (("A", a), ("B", b)):
        r = c.get(path, token=make_token())
        assert r.status_code == 200, \
            f"{label}: the 404 was still served more than 1 s later\n{describe(r)}"
        got = assert_user(r)
        assert got["id"] == uid and got["email"] == email
