"""Robustness over raw sockets: malformed requests, oversized headers,
request smuggling shapes, pipelining, slow clients and many connections.
Every read has a deadline, so a server that hangs fails the test instead of
blocking it, and the server must still be healthy after each case."""

import random
import select
import socket
import threading
import time

import pytest

from harness import (RawConn, assert_framing, assert_healthy, assert_no_server_header,
                     build_request, rget)

HEADER_TIMEOUT_MS = 1000


@pytest.fixture(scope="module")
def srv(module_server):
    return module_server(env={"HEADER_TIMEOUT_MS": str(HEADER_TIMEOUT_MS)})


def _send_and_read(srv, data, timeout=3.0):
    """(response or None if closed without one, conn)."""
    c = RawConn(srv.port, timeout=timeout)
    try:
        c.send(data)
    except (BrokenPipeError, ConnectionResetError):
        return None, c
    try:
        return c.read_response(), c
    except TimeoutError:
        c.close()
        raise AssertionError("server neither answered nor closed within "
                             f"{timeout}s (hang)") from None


def _assert_rejected(r, allowed=range(400, 500)):
    if r is None:
        return  # closed without an answer: acceptable
    assert r.status in allowed, f"expected a rejection, got {r!r}"
    assert_no_server_header(r)


# ---- malformed requests --------------------------------------------------------

GARBAGE = {
    "random-bytes": bytes(random.Random(20241127).randrange(256) for _ in range(512)),
    "method-only": b"GET\r\n\r\n",
    "http-9.9": b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
    "http-2.0-line": b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
    "nul-bytes": b"\x00" * 64,
    "nul-in-path": b"GET /health/\x00live HTTP/1.1\r\nHost: x\r\n\r\n",
    "nul-in-header-value": b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    "header-without-colon": b"GET /health/live HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n",
    "space-before-colon": b"GET /health/live HTTP/1.1\r\nHost : x\r\n\r\n",
    "empty-header-name": b"GET /health/live HTTP/1.1\r\nHost: x\r\n: v\r\n\r\n",
    "control-in-method": b"G\x01T /health/live HTTP/1.1\r\nHost: x\r\n\r\n",
    "tls-client-hello": bytes.fromhex("160301002a0100002603035b") + b"\x00" * 40,
}


@pytest.mark.parametrize("name", list(GARBAGE))
def test_garbage_is_rejected_without_hang(srv, name):
    r, c = _send_and_read(srv, GARBAGE[name])
    c.close()
    _assert_rejected(r)
    assert_healthy(srv)


def test_h2c_preface_is_not_served_without_http2(srv):
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    settings = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # empty SETTINGS frame
    with RawConn(srv.port, timeout=3) as c:
        c.send(preface + settings)
        closed = c.wait_closed(3)
        data = c.buf
    # An HTTP/2 server would answer with its SETTINGS frame (type 0x4 at
    # offset 3); HTTP/1 answers start with "HTTP/1.".
    assert not (len(data) >= 9 and data[3] == 0x4), f"served as HTTP/2: {data[:64]!r}"
    if data:
        assert data.startswith(b"HTTP/1.1 4") or data.startswith(b"HTTP/1.0 4"), data[:200]
    assert closed, "the connection must be closed after the rejected preface"
    assert_healthy(srv)


def test_upgrade_h2c_is_ignored_without_http2(srv):
    req = build_request("GET", "/health/live", headers=[
        ("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "h2c"),
        ("HTTP2-Settings", "AAMAAABkAAQCAAAAAAIAAAAA")])
    r, c = _send_and_read(srv, req)
    c.close()
    assert r is not None and r.status == 200, r


# ---- oversized requests ------------------------------------------------------

def test_64k_header_value_is_rejected(srv):
    req = build_request("GET", "/health/live", headers=[("X-Big", "a" * 65536)])
    r, c = _send_and_read(srv, req, timeout=5)
    c.close()
    _assert_rejected(r, allowed=(400, 431))
    assert_healthy(srv)


def test_too_many_headers_is_rejected(srv):
    req = build_request("GET", "/health/live", headers=[(f"X-H{i}", "v") for i in range(200)])
    r, c = _send_and_read(srv, req)
    c.close()
    _assert_rejected(r, allowed=(400, 431))
    assert_healthy(srv)


def test_long_url_is_not_a_server_error(srv):
    r, c = _send_and_read(srv, build_request("GET", "/" + "a" * 16384))
    c.close()
    _assert_rejected(r, allowed=(400, 404, 414))
    assert_healthy(srv)


# ---- message framing (request smuggling shapes) ----------------------------------

@pytest.mark.parametrize("order", ["cl-first", "te-first"])
def test_content_length_with_transfer_encoding_is_400(srv, order):
    cl, te = ("Content-Length", "5"), ("Transfer-Encoding", "chunked")
    headers = [cl, te] if order == "cl-first" else [te, cl]
    req = build_request("POST", "/health/live", headers=headers, body=b"0\r\n\r\n")
    r, c = _send_and_read(srv, req)
    try:
        _assert_rejected(r, allowed=(400,))
        if r is not None:
            # RFC 9112 section 6.3: close the connection after such a request.
            assert c.wait_closed(2), "connection kept open after CL+TE request"
    finally:
        c.close()
    assert_healthy(srv)


def test_conflicting_content_lengths_are_400(srv):
    req = build_request("POST", "/health/live",
                        headers=[("Content-Length", "5"), ("Content-Length", "6")], body=b"hello!")
    r, c = _send_and_read(srv, req)
    c.close()
    _assert_rejected(r, allowed=(400,))
    assert_healthy(srv)


@pytest.mark.parametrize("value", ["abc", "-1", "1 2", "0x10", "99999999999999999999999"])
def test_bad_content_length_is_400(srv, value):
    req = build_request("POST", "/health/live", headers=[("Content-Length", value)], body=b"")
    r, c = _send_and_read(srv, req + b"x" * 16)
    c.close()
    _assert_rejected(r, allowed=(400, 413))
    assert_healthy(srv)


def test_unknown_transfer_encoding_is_rejected(srv):
    req = build_request("POST", "/health/live", headers=[("Transfer-Encoding", "gzip")])
    r, c = _send_and_read(srv, req + b"abc")
    c.close()
    _assert_rejected(r, allowed=(400, 501))
    assert_healthy(srv)


def test_broken_chunked_body_is_400(srv):
    req = build_request("POST", "/health/live", headers=[("Transfer-Encoding", "chunked")])
    r, c = _send_and_read(srv, req + b"zz\r\nhello\r\n0\r\n\r\n")
    c.close()
    _assert_rejected(r, allowed=(400,))
    assert_healthy(srv)


# ---- pipelining -------------------------------------------------------------

def test_pipelined_requests_answer_in_order(srv):
    reqs = [("GET", "/health/live", "pipe-1", 200), ("GET", "/nope", "pipe-2", 404),
            ("GET", "/health/ready", "pipe-3", 200)]
    data = b"".join(build_request(m, p, headers=[("X-Request-Id", rid)]) for m, p, rid, _ in reqs)
    with RawConn(srv.port) as c:
        c.send(data)
        for _, path, rid, status in reqs:
            r = c.read_response()
            assert r is not None, f"closed before the answer to {path}"
            assert r.status == status, r
            assert r.header("x-request-id") == rid, r
            assert_framing(r)


def test_pipelined_requests_with_bodies(srv):
    data = (build_request("GET", "/health/live", headers=[("X-Request-Id", "pb-1")])
            + build_request("POST", "/health/live", headers=[("X-Request-Id", "pb-2")],
                            body=b'{"x":"GET /nope HTTP/1.1"}')
            + build_request("GET", "/health/live", headers=[("X-Request-Id", "pb-3")]))
    with RawConn(srv.port) as c:
        c.send(data)
        got = []
        for _ in range(3):
            r = c.read_response()
            assert r is not None
            got.append((r.status, r.header("x-request-id")))
        assert got == [(200, "pb-1"), (405, "pb-2"), (200, "pb-3")]


# ---- slow clients -------------------------------------------------------------

def _trickle_until_closed(sock, payload_iter, interval, limit):
    """Sends one byte every interval until the server closes the connection.
    Returns seconds until the close was seen, or None if still open at limit."""
    t0 = time.monotonic()
    for chunk in payload_iter:
        if time.monotonic() - t0 > limit:
            return None
        try:
            if chunk:
                sock.send(chunk)
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - t0
        readable, _, _ = select.select([sock], [], [], interval)
        if readable:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                return time.monotonic() - t0
            if not data:
                return time.monotonic() - t0
            # A 408 (or any answer) may precede the close; keep waiting for EOF.
    return None


def _endless(prefix, byte=b"a"):
    yield prefix
    while True:
        yield byte


def test_slowloris_headers_are_dropped(srv):
    with socket.create_connection((srv.host, srv.port), timeout=5) as s:
        took = _trickle_until_closed(
            s, _endless(b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Slow: "), 0.1, 3.5)
    assert took is not None, "slow header sender was not dropped within 3.5 s"
    assert 0.5 <= took <= 3.0, f"dropped after {took:.2f}s (header timeout {HEADER_TIMEOUT_MS} ms)"
    assert_healthy(srv)


def test_slow_body_is_dropped(srv):
    head = build_request("POST", "/health/live", headers=[("Content-Length", "1000")])
    with socket.create_connection((srv.host, srv.port), timeout=5) as s:
        took = _trickle_until_closed(s, _endless(head, b"b"), 0.1, 3.5)
    assert took is not None, "slow body sender was not dropped within 3.5 s"
    assert took <= 3.0, took
    assert_healthy(srv)


def test_idle_connection_without_request_is_dropped(srv):
    with socket.create_connection((srv.host, srv.port), timeout=5) as s:
        took = _trickle_until_closed(s, iter(lambda: b"", None), 0.1, 3.5)
    assert took is not None, "an idle connection was not dropped within 3.5 s"
    assert took <= 3.0, took


# ---- many connections -----------------------------------------------------------

def test_200_concurrent_clients(srv):
    n = 200
    barrier = threading.Barrier(n, timeout=20)
    results = [None] * n

    def client(i):
        try:
            barrier.wait()
            r = rget(srv.url + "/health/live", headers={"X-Request-Id": f"cc-{i}"},
                             timeout=15)
            results[i] = (r.status_code, r.headers.get("X-Request-Id"))
        except Exception as e:  # reported below
            results[i] = e

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    failures = [(i, res) for i, res in enumerate(results) if res != (200, f"cc-{i}")]
    assert not failures, f"{len(failures)} of {n} failed, e.g. {failures[:5]}"
    assert_healthy(srv)


def test_200_open_connections_each_served(srv):
    conns = []
    try:
        for _ in range(200):
            conns.append(RawConn(srv.port, timeout=10))
        for i, c in enumerate(conns):
            c.send(build_request("GET", "/health/live", headers=[("X-Request-Id", f"oc-{i}")]))
        for i, c in enumerate(conns):
            r = c.read_response()
            assert r is not None and r.status == 200, (i, r)
            assert r.header("x-request-id") == f"oc-{i}", r
    finally:
        for c in conns:
            c.close()
    assert_healthy(srv)
