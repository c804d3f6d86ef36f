"""Writes under faults: what a client was told is what the database holds.

- 64 pipelined writes whose requests time out while queued behind a lock
  commit nothing once the lock goes: the client was told they failed.
- `kill -9` in the middle of a load of keyed POSTs: after a restart every
  acknowledged write is there exactly once, and retrying any request with
  its key replays the stored answer or performs the write once."""

import json
import threading
import time
import uuid

from harness import RawConn, build_request
from redis_support import REDIS_URL
from users_support import (admin_connect, app_dbname, bearer, count_users_with_email, describe,
                           make_token, requires_services, start_users_server, unique_email)

pytestmark = requires_services


def test_timed_out_pipelined_writes_commit_nothing(server):
    srv = start_users_server(server, REQUEST_TIMEOUT_MS="1000", WORKERS="1", DATABASE_POOL_SIZE="1",
                             DATABASE_PIPELINE_DEPTH="64", DATABASE_MAX_WAITERS="64")
    token = make_token()
    emails = [unique_email("queued") for _ in range(64)]
    locker = admin_connect(dbname=app_dbname(), autocommit=False)
    conns = []
    try:
        locker.execute("LOCK TABLE users IN EXCLUSIVE MODE")  # blocks every INSERT
        for e in emails:
            body = json.dumps({"email": e, "name": "Queued"}).encode()
            c = RawConn(srv.port, timeout=10)
            c.send(build_request("POST", "/v1/users", body=body,
                                 headers=[("Authorization", bearer(token)),
                                          ("Content-Type", "application/json")]))
            conns.append(c)
        statuses = [c.read_response().status for c in conns]
        assert set(statuses) <= {503, 504}, statuses
        assert statuses.count(504) > 32, statuses  # most were in PostgreSQL's queue
        time.sleep(0.5)
    finally:
        locker.rollback()  # the queued statements may run now
        locker.close()
        for c in conns:
            c.close()
    time.sleep(1.0)
    committed = [e for e in emails if count_users_with_email(e) > 0]
    assert not committed, f"{len(committed)} writes committed after their clients were told they failed"


def _counts(emails):
    """email -> rows with it, in one query."""
    with admin_connect(dbname=app_dbname()) as conn:
        return dict(conn.execute("SELECT email, count(*) FROM users WHERE email = ANY(%s) GROUP BY email",
                                 (emails,)).fetchall())


def _keyed_post(session, url, token, key, email):
    body = json.dumps({"email": email, "name": "Crash"}).encode()
    return session.post(url + "/v1/users", data=body, timeout=10,
                        headers={"Authorization": bearer(token), "Content-Type": "application/json",
                                 "Idempotency-Key": key})


def test_kill_9_during_keyed_writes_loses_and_doubles_nothing(server):
    import requests

    env = {"REDIS_URL": REDIS_URL} if REDIS_URL else {}
    srv = start_users_server(server, **env)
    token = make_token(sub=f"crash-{uuid.uuid4()}")
    sent = []   # (key, email) of every request sent
    acked = {}  # key -> the 201 body
    stop = threading.Event()
    lock = threading.Lock()

    def writer():
        with requests.Session() as s:
            s.trust_env = False
            while not stop.is_set():
                key, email = str(uuid.uuid4()), unique_email("crash")
                with lock:
                    sent.append((key, email))
                try:
                    r = _keyed_post(s, srv.url, token, key, email)
                except requests.RequestException:
                    continue  # the process died under it
                if r.status_code == 201:
                    with lock:
                        acked[key] = r.json()

    threads = [threading.Thread(target=writer, daemon=True) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    srv.expected_exit = None
    srv.kill()  # SIGKILL: no drain, no flush
    stop.set()
    for t in threads:
        t.join(15)
    assert len(acked) > 20, f"only {len(acked)} writes acknowledged before the kill"

    # Every acknowledged write is there, once.
    counts = _counts([body["email"] for body in acked.values()])
    assert all(counts.get(b["email"]) == 1 for b in acked.values()), \
        [b for b in acked.values() if counts.get(b["email"]) != 1][:3]

    srv2 = start_users_server(server, **env)
    with requests.Session() as s:
        s.trust_env = False
        for key, email in sent:
            # a lease outlives its holder by at most the request timeout + 1 s
            deadline = time.monotonic() + 15
            while True:
                r = _keyed_post(s, srv2.url, token, key, email)
                # 409 "in flight": the dead process's lease has not expired yet
                if r.status_code != 409 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert r.status_code == 201, describe(r)
            if key in acked:
                assert r.headers.get("Idempotent-Replayed") == "true", describe(r)
                assert r.json() == acked[key], (r.json(), acked[key])
    counts = _counts([email for _, email in sent])
    assert all(counts.get(e) == 1 for _, e in sent), [e for _, e in sent if counts.get(e) != 1][:3]
    print(f"kill -9: {len(acked)} writes acknowledged, all found once; {len(sent)} requests retried, "
          f"each replayed or written once; doubled: 0")
