"""Idempotent writes as their users meet them: at volume, under contention,
after the retention time.

- Keyed writes are plan-stable: on a fresh database (statistics of empty
  tables), thousands of keyed POSTs and other traffic later, no statement
  the server sends scans `users` or `idempotency_keys` sequentially.
- A "409 still in flight" is never stored as the key's answer.
- Concurrent PATCHes of one user, keyed or not, all apply.
- Expired records are purged in batches until caught up, and an expired
  key works as new.
- The fingerprint includes the request's preconditions (If-Match)."""

import contextlib
import json
import threading
import time
import uuid

import requests

from users_support import (DATABASE_URL, Client, admin_connect, app_dbname, assert_created, assert_user,
                           bearer, describe, make_token, requires_services, start_users_server,
                           unique_email, wait_until)

pytestmark = requires_services


@contextlib.contextmanager
def fresh_database(server_factory):
    """A new database, migrated by the binary (as the owner role), dropped
    afterwards: its tables are empty when the server first plans them."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo
    name = f"api_fresh_{uuid.uuid4().hex[:12]}"
    with admin_connect() as admin:
        admin.execute(f'CREATE DATABASE "{name}" OWNER api_owner')
    try:
        with admin_connect(dbname=name) as admin:
            admin.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
            admin.execute("GRANT USAGE ON SCHEMA public TO api_app")
            admin.execute("GRANT CREATE ON SCHEMA public TO api_owner")
        app = conninfo_to_dict(DATABASE_URL)
        owner = {**app, "user": "api_owner", "password": "api_owner", "dbname": name}
        url, murl = make_conninfo(**{**app, "dbname": name}), make_conninfo(**owner)
        from harness import run_cli
        r = run_cli(["migrate"], env={"DATABASE_URL": url, "DATABASE_MIGRATION_URL": murl}, timeout=30)
        assert r.returncode == 0, r.stdout + r.stderr
        # The worst case, made certain: the statistics say the tables are
        # empty (as after an ANALYZE of a fresh schema, or CREATE INDEX on an
        # empty table), and no autovacuum ANALYZE corrects them during the test.
        with admin_connect(dbname=name) as admin:
            for t in ("users", "idempotency_keys"):
                admin.execute(f"ANALYZE {t}")
                admin.execute(f"ALTER TABLE {t} SET (autovacuum_enabled = false)")
        yield name, url
    finally:
        with admin_connect() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _post_many(url, token, n, threads=8, key=True):
    """n POSTs /v1/users (with fresh keys) from `threads` threads; returns statuses."""
    statuses = []
    lock = threading.Lock()

    def run(count):
        with requests.Session() as s:
            s.trust_env = False
            for _ in range(count):
                body = json.dumps({"email": unique_email("scale"), "name": "Scale"})
                h = {"Authorization": bearer(token), "Content-Type": "application/json"}
                if key:
                    h["Idempotency-Key"] = str(uuid.uuid4())
                r = s.post(url + "/v1/users", data=body, headers=h, timeout=15)
                with lock:
                    statuses.append(r.status_code)

    ts = [threading.Thread(target=run, args=(n // threads,)) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    return statuses


def _scans(dbname):
    with admin_connect(dbname=dbname) as c:
        return {r[0]: (r[1], r[2]) for r in c.execute(
            "SELECT relname, seq_scan, coalesce(idx_scan, 0) FROM pg_stat_user_tables "
            "WHERE relname IN ('users', 'idempotency_keys')").fetchall()}


def test_keyed_writes_never_scan_sequentially(server):
    with fresh_database(server) as (name, url):
        srv = start_users_server(server, DATABASE_URL=url)
        token = make_token()
        assert set(_post_many(srv.url, token, 3000)) == {201}
        # a burst of other traffic: reads, pages, updates, unkeyed writes
        c = Client(srv, token=token)
        page = c.get("/v1/users", params={"limit": 100}).json()
        for u in page["data"][:50]:
            assert c.get(f"/v1/users/{u['id']}").status_code == 200
            assert c.patch(f"/v1/users/{u['id']}", json_body={"name": "Burst"}).status_code == 200
        cursor = page["meta"]["nextCursor"]
        for _ in range(10):
            r = c.get("/v1/users", params={"limit": 100, "cursor": cursor})
            cursor = r.json()["meta"]["nextCursor"]
        assert set(_post_many(srv.url, token, 200, key=False)) == {201}
        c.close()
        time.sleep(1.0)  # statistics are flushed by the backends when idle
        before = _scans(name)
        assert set(_post_many(srv.url, token, 1000)) == {201}
        time.sleep(1.0)
        after = _scans(name)
        assert srv.stop() == 0, srv.describe()
    for rel in ("users", "idempotency_keys"):
        assert after[rel][0] == before[rel][0], \
            f"{after[rel][0] - before[rel][0]} sequential scans of {rel} during 1,000 keyed POSTs"
    assert after["idempotency_keys"][1] > before["idempotency_keys"][1], "no index use seen at all"


def test_a_409_in_flight_is_never_stored(server):
    """Without Redis, a duplicate that finds the key's row locked by a
    request still running is told 409 - and that is not the key's answer:
    once the first is gone, the same request runs as new."""
    srv = start_users_server(server)
    sub = f"inflight-{uuid.uuid4()}"
    c = Client(srv, token=make_token(sub=sub))
    key = str(uuid.uuid4())
    body = {"email": unique_email("inflight"), "name": "In flight"}
    holder = admin_connect(dbname=app_dbname(), autocommit=False)
    try:
        # "the first request": holds the key's row, uncommitted
        holder.execute("INSERT INTO idempotency_keys (principal, key, fingerprint, status, body) "
                       "VALUES (%s, %s, %s, 201, '{}')", (sub, key, b"\0" * 32))
        r = c.post("/v1/users", json_body=body, headers={"Idempotency-Key": key})
        assert r.status_code == 409, describe(r)
        assert r.json()["type"] == "/problems/idempotency-key-in-flight", describe(r)
    finally:
        holder.rollback()  # the first request failed: nothing stored
        holder.close()
    time.sleep(0.3)
    r = c.post("/v1/users", json_body=body, headers={"Idempotency-Key": key})
    user = assert_created(c, r)
    assert r.headers.get("Idempotent-Replayed") is None
    again = c.post("/v1/users", json_body=body, headers={"Idempotency-Key": key})
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true", describe(again)
    assert again.json()["id"] == user["id"]
    c.close()


def _concurrent_patches(srv, user_id, n, keyed):
    results = []
    start = threading.Barrier(n)

    def run(i):
        with Client(srv) as c:
            h = {"Idempotency-Key": str(uuid.uuid4())} if keyed else {}
            start.wait(5)
            results.append(c.patch(f"/v1/users/{user_id}", json_body={"name": f"Writer {i}"}, headers=h,
                                   timeout=15))

    ts = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    return results


def test_concurrent_patches_of_one_user_all_apply(server):
    srv = start_users_server(server)
    c = Client(srv)
    for keyed in (True, False):
        user = c.create_user(name="Contended")
        v0 = int(user["_etag"].strip('"'))
        results = _concurrent_patches(srv, user["id"], 16, keyed)
        bad = [describe(r) for r in results if r.status_code != 200]
        assert not bad, f"keyed={keyed}: {len(bad)} of 16 concurrent PATCHes failed:\n{bad[0]}"
        g = c.get(f"/v1/users/{user['id']}")
        assert int(g.headers["ETag"].strip('"')) == v0 + 16, f"keyed={keyed}: not every PATCH applied once"
    c.close()


def test_expired_records_are_purged_until_caught_up_and_expired_keys_work_as_new(server):
    dbname = app_dbname()
    sub = f"purge-{uuid.uuid4()}"
    with admin_connect(dbname=dbname) as a:
        a.execute("INSERT INTO idempotency_keys (principal, key, fingerprint, status, body, stored_at) "
                  "SELECT %s, 'k' || g, decode(repeat('00', 32), 'hex'), 201, '{}', "
                  "now() - interval '2 days' FROM generate_series(1, 20000) g", (sub,))
        a.execute("ANALYZE idempotency_keys")
    srv = start_users_server(server)
    t0 = time.monotonic()

    def left():
        with admin_connect(dbname=dbname) as a:
            return a.execute("SELECT count(*) FROM idempotency_keys WHERE principal = %s", (sub,)).fetchone()[0]

    assert wait_until(lambda: left() == 0, 60.0, interval=0.5), f"{left()} of 20,000 expired keys left after 60 s"
    took = time.monotonic() - t0
    assert srv.wait_for_log(lambda o: "purged 1000 expired keys" in o.get("msg", ""))

    # an expired key, with another request's fingerprint, is no answer
    token = make_token(sub=sub)
    key = str(uuid.uuid4())
    with admin_connect(dbname=dbname) as a:
        a.execute("INSERT INTO idempotency_keys (principal, key, fingerprint, status, body, stored_at) "
                  "VALUES (%s, %s, decode(repeat('ab', 32), 'hex'), 201, '{\"old\":1}', now() - interval '2 days')",
                  (sub, key))
    c = Client(srv, token=token)
    r = c.post("/v1/users", json_body={"email": unique_email("reuse"), "name": "Reused"},
               headers={"Idempotency-Key": key})
    assert_created(c, r)
    assert r.headers.get("Idempotent-Replayed") is None
    c.close()
    print(f"purged 20,000 expired keys in {took:.1f} s")


def test_preconditions_are_part_of_the_fingerprint(server):
    srv = start_users_server(server)
    c = Client(srv)
    user = c.create_user(name="Precondition")
    key = str(uuid.uuid4())
    path = f"/v1/users/{user['id']}"
    stale = c.patch(path, json_body={"name": "X"}, headers={"Idempotency-Key": key, "If-Match": '"999"'})
    assert stale.status_code == 412, describe(stale)
    # the corrected request is another request: not a replay of the 412
    fixed = c.patch(path, json_body={"name": "X"}, headers={"Idempotency-Key": key, "If-Match": user["_etag"]})
    assert fixed.status_code == 422, describe(fixed)
    assert fixed.json()["type"] == "/problems/idempotency-key-reused"
    # and with a key of its own it applies
    ok = c.patch(path, json_body={"name": "X"},
                 headers={"Idempotency-Key": str(uuid.uuid4()), "If-Match": user["_etag"]})
    assert assert_user(ok)["name"] == "X"
    c.close()
