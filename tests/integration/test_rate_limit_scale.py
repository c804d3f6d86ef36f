"""Rate limits that hold at scale and behind a proxy.

- Two processes, 64 connections of one identity: admitted requests stay
  within the budget plus the documented bound (U x processes, U = limit / 64
  within 8..256).
- IPv6 clients share a budget per /64.
- TRUSTED_PROXIES: the contract's X-Forwarded-For rule decides the client
  address that rate limits and the access log use."""

import os
import queue
import socket
import subprocess
import threading
import time
import uuid

import pytest
from harness import REPO_ROOT
from redis_support import REDIS_URL, requires_redis
from users_support import bearer, make_token, requires_db, start_users_server

pytestmark = requires_db

def unconfirmed_max(limit):
    """U of src/middleware/ratelimit.c: admissions a process may make that
    Redis has not counted yet; the overshoot bound is U x processes."""
    return min(256, max(8, limit // 64))


def _wrk_counts(url, token, seconds, connections):
    """wrk on one server: {status: count}. The path is metered and cheap
    (rate limiting runs before routing: an unknown /v1 path is a 404)."""
    script = REPO_ROOT / "bench" / "wrk" / "count-status.lua"
    p = subprocess.Popen(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url],
                         env={**os.environ, "BENCH_TOKEN": token, "WRK_PATH": "/v1/flood"},
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return p


class SlowLink:
    """A TCP proxy on loopback that delays every chunk by `delay` seconds in
    each direction (latency, not bandwidth): Redis as seen across a slow
    network."""

    def __init__(self, target_port, delay):
        self.delay = delay
        self.target = ("127.0.0.1", target_port)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            u = socket.create_connection(self.target)
            for a, b in ((c, u), (u, c)):
                q = queue.Queue()
                threading.Thread(target=self._read, args=(a, q), daemon=True).start()
                threading.Thread(target=self._write, args=(b, q), daemon=True).start()

    def _read(self, s, q):
        while True:
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            q.put((time.monotonic() + self.delay, data))
            if not data:
                return

    def _write(self, s, q):
        while True:
            due, data = q.get()
            time.sleep(max(0.0, due - time.monotonic()))
            if not data:
                s.close()
                return
            try:
                s.sendall(data)
            except OSError:
                return

    def close(self):
        self.closed = True
        self.sock.close()


@requires_redis
@pytest.mark.parametrize("latency_ms", [0, 20])
def test_two_processes_overshoot_at_most_the_documented_bound(server, latency_ms):
    """2 processes x 32 connections each, one identity, 10 s, wrk: admitted
    requests stay within the budget (plus its steady refill) plus the bound
    - also when Redis answers 40 ms later than on loopback."""
    limit, window, seconds = 1000, 3600, 10
    redis_url = REDIS_URL
    link = None
    if latency_ms:
        link = SlowLink(int(REDIS_URL.rsplit(":", 1)[1].split("/")[0]), latency_ms / 1000)
        redis_url = f"redis://127.0.0.1:{link.port}/0"
    env = dict(REDIS_URL=redis_url, RATE_LIMIT_MAX=str(limit), RATE_LIMIT_WINDOW_S=str(window), WORKERS="2")
    a = start_users_server(server, **env)
    b = start_users_server(server, **env)
    token = make_token(sub=f"flood-{uuid.uuid4()}")
    procs = [_wrk_counts(s.url, token, seconds, 32) for s in (a, b)]
    counts = {}
    for p in procs:
        out, err = p.communicate(timeout=seconds + 30)
        assert p.returncode == 0, err
        for line in out.splitlines():
            if line.startswith("status "):
                _, code, n = line.split()
                counts[int(code)] = counts.get(int(code), 0) + int(n)
    if link:
        link.close()
    admitted = counts.get(404, 0)
    refill = seconds * limit / window  # GCRA: the budget comes back steadily
    bound = unconfirmed_max(limit) * 2
    assert set(counts) <= {404, 429}, counts
    assert counts.get(429, 0) > 2 * limit, f"too little load to test the bound: {counts}"
    assert admitted <= limit + int(refill) + 1 + bound, \
        f"{admitted} admitted: budget {limit} + refill {refill:.1f} + bound {bound} ({counts})"
    print(f"admitted {admitted} (budget {limit}, refill {refill:.1f}, bound {bound}), limited {counts.get(429)}")


def _get(srv, xff=(), token=None):
    h = [("X-Forwarded-For", v) for v in xff]
    if token:
        h.append(("Authorization", bearer(token)))
    from harness import RawConn, build_request
    with RawConn(srv.port) as c:
        c.send(build_request("GET", "/v1/users?limit=1", headers=h))
        return c.read_response()


def test_ipv6_clients_share_a_budget_per_64(server):
    srv = start_users_server(server, TRUSTED_PROXIES="127.0.0.1", RATE_LIMIT_MAX="3", WORKERS="1")
    net = f"2001:db8:{uuid.uuid4().int % 65536:x}:{uuid.uuid4().int % 65536:x}"
    for i in range(3):
        assert _get(srv, [f"{net}::{i + 1}"]).status == 401  # anonymous: still metered
    # another address in the same /64 has nothing left; another /64 has all of it
    assert _get(srv, [f"{net}:ffff:ffff:ffff:ffff"]).status == 429
    assert _get(srv, [f"{net[:-1]}0::1" if not net.endswith("0") else f"{net[:-1]}1::1"]).status == 401


@pytest.mark.parametrize("trusted, xff, want", [
    ("", ["198.51.100.7"], "127.0.0.1"),                           # nobody trusted: headers ignored
    ("127.0.0.1", ["198.51.100.7"], "198.51.100.7"),               # one trusted hop
    ("127.0.0.1,10.0.0.0/8", ["6.6.6.6, 198.51.100.7, 10.1.2.3"], "198.51.100.7"),  # skip trusted, from the right
    ("127.0.0.1,10.0.0.0/8", ["198.51.100.7", "10.9.9.9"], "198.51.100.7"),  # headers joined in order
    ("127.0.0.1,10.0.0.0/8", ["10.3.3.3, 10.4.4.4"], "10.3.3.3"),  # all trusted: the left-most
    ("127.0.0.1", ["198.51.100.7, not-an-ip"], "127.0.0.1"),       # malformed: the peer
    ("127.0.0.1", [], "127.0.0.1"),                                # no header: the peer
])
def test_trusted_proxies_decide_the_client_address(server, trusted, xff, want):
    srv = start_users_server(server, TRUSTED_PROXIES=trusted, WORKERS="1")
    rid = f"xff-{uuid.uuid4().hex[:12]}"
    from harness import RawConn, build_request
    with RawConn(srv.port) as c:
        c.send(build_request("GET", "/v1/users?limit=1",
                             headers=[("X-Request-Id", rid), *[("X-Forwarded-For", v) for v in xff]]))
        assert c.read_response().status == 401
    line = srv.wait_for_log(lambda o: o.get("request_id") == rid and "status" in o)
    assert line["remote"] == want, line


def test_a_bad_trusted_proxies_value_stops_the_start():
    from harness import run_cli
    r = run_cli(["serve"], env={"TRUSTED_PROXIES": "10.0.0.0/33"})
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "TRUSTED_PROXIES" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
