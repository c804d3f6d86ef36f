"""Shutdown that loses nothing: a request is in flight from its first byte.

At SIGTERM a client may be in the middle of sending a request - its head,
its body, or its body after `Expect: 100-continue`, over HTTP/1 or as an
HTTP/2 stream still receiving DATA. Each must be read, handled and answered
(and its write done) before the process exits 0. Also: a SIGTERM that
arrives while the process is still starting is a clean shutdown, and a
second signal forces the exit without touching freed memory."""

import json
import signal
import socket
import struct
import subprocess
import time

import pytest

from harness import RawConn, build_request
from users_support import (Client, bearer, count_users_with_email, make_token, requires_db,
                           start_users_server, unique_email)

pytestmark = requires_db


def _post_head(token, body_len, extra=()):
    return build_request("POST", "/v1/users",
                         headers=[("Authorization", bearer(token)),
                                  ("Content-Type", "application/json"),
                                  ("Content-Length", str(body_len)), *extra])


def _body(email):
    return json.dumps({"email": email, "name": "Uploading"}).encode()


def _term_and_settle(srv, settle=0.5):
    """SIGTERM, then long enough for the workers to be draining."""
    srv.send_signal(signal.SIGTERM)
    time.sleep(settle)


@pytest.mark.parametrize("split", ["body", "head"])
def test_request_still_arriving_at_sigterm_is_answered(server, split):
    srv = start_users_server(server, SHUTDOWN_GRACE_MS="10000")
    token = make_token()
    email = unique_email("upload")
    body = _body(email)
    raw = _post_head(token, len(body)) + body
    # "body": the head and half the body are in; "head": half the head is.
    cut = len(raw) - len(body) // 2 if split == "body" else 40
    with RawConn(srv.port, timeout=10) as c:
        c.send(raw[:cut])
        time.sleep(0.2)  # the server has read what was sent
        _term_and_settle(srv)
        assert srv.running(), "the server exited with a request half received\n" + srv.describe()
        c.send(raw[cut:])
        r = c.read_response()
    assert r is not None and r.status == 201, r
    assert srv.wait(10) == 0, srv.describe()
    assert count_users_with_email(email) == 1


def test_expect_100_continue_upload_at_sigterm_is_answered(server):
    srv = start_users_server(server, SHUTDOWN_GRACE_MS="10000")
    email = unique_email("continue")
    body = _body(email)
    with RawConn(srv.port, timeout=10) as c:
        c.send(_post_head(make_token(), len(body), extra=[("Expect", "100-continue")]))
        deadline = time.monotonic() + 5
        while b"\r\n\r\n" not in c.buf:
            assert c._recv_more(deadline), "closed before 100 Continue"
        interim, c.buf = c.buf.split(b"\r\n\r\n", 1)
        assert interim.startswith(b"HTTP/1.1 100 "), interim
        _term_and_settle(srv)
        c.send(body)
        r = c.read_response()
    assert r is not None and r.status == 201, r
    assert srv.wait(10) == 0, srv.describe()
    assert count_users_with_email(email) == 1


def test_h2_stream_receiving_data_at_sigterm_is_answered(server):
    """curl (nghttp2) streams its body from stdin as DATA frames: half of it
    is sent before SIGTERM, the rest well after h2o would have sent its
    final GOAWAY (one second after the first) and started dropping DATA."""
    srv = start_users_server(server, HTTP2="1", SHUTDOWN_GRACE_MS="10000")
    email = unique_email("h2upload")
    body = _body(email)
    curl = subprocess.Popen(
        ["curl", "-sS", "--http2-prior-knowledge", "--noproxy", "*", "-X", "POST", "-T", "-",
         "-H", f"Authorization: {bearer(make_token())}", "-H", "Content-Type: application/json",
         "-o", "-", "-w", "\n%{http_code} %{http_version}", f"{srv.url}/v1/users"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        curl.stdin.write(body[:len(body) // 2])
        curl.stdin.flush()
        time.sleep(0.3)
        _term_and_settle(srv, settle=1.6)
        assert srv.running(), srv.describe()
        out, err = curl.communicate(input=body[len(body) // 2:], timeout=10)
    finally:
        if curl.poll() is None:
            curl.kill()
            curl.wait()
    text = out.decode(errors="replace")
    assert text.endswith("201 2"), (text[-400:], err[-400:])
    assert json.loads(text.rsplit("\n", 1)[0])["email"] == email
    assert srv.wait(10) == 0, srv.describe()
    assert count_users_with_email(email) == 1


def _h2_frame(ftype, flags, stream_id, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream_id) + payload


def test_h2_requests_during_teardown_never_reach_freed_subsystems(server):
    """A client that keeps opening HTTP/2 streams after the GOAWAY (raw
    frames: client libraries stop at it) while the worker drains and tears
    down gets answers or a closed connection - a stream must never be
    dispatched into a pool or service being freed (ASan would abort)."""
    import hpack

    srv = start_users_server(server, HTTP2="1", SHUTDOWN_GRACE_MS="3000", WORKERS="1",
                             API_DEBUG_ROUTES="1")
    c = Client(srv)
    user = c.create_user(name="H2 teardown")
    c.close()
    # a slow request keeps the worker draining while the streams come in
    slow = RawConn(srv.port, timeout=10)
    slow.send(build_request("GET", "/debug/sleep?ms=800"))
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _h2_frame(4, 0, 0))
    enc, dec = hpack.Encoder(), hpack.Decoder()
    headers = [(":method", "GET"), (":path", f"/v1/users/{user['id']}"), (":scheme", "http"),
               (":authority", "127.0.0.1"), ("authorization", bearer(make_token()))]
    statuses, buf, sid, acked = [], b"", 1, False
    end = time.monotonic() + 4.0
    signalled = False
    sock.settimeout(0.005)
    try:
        while time.monotonic() < end:
            try:
                sock.sendall(_h2_frame(1, 0x5, sid, enc.encode(headers)))  # END_STREAM|END_HEADERS
            except OSError:
                break
            sid += 2
            if sid == 11 and not signalled:
                srv.send_signal(signal.SIGTERM)
                signalled = True
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
            while len(buf) >= 9:
                n = int.from_bytes(buf[:3], "big")
                if len(buf) < 9 + n:
                    break
                ftype, flags, payload = buf[3], buf[4], buf[9:9 + n]
                buf = buf[9 + n:]
                if ftype == 4 and not (flags & 1) and not acked:
                    acked = True
                    try:
                        sock.sendall(_h2_frame(4, 1, 0))  # SETTINGS ACK
                    except OSError:
                        break
                elif ftype == 1:
                    statuses.append(int(dict(dec.decode(payload))[":status"]))
    finally:
        sock.close()
        slow.close()
    assert signalled
    assert srv.wait(10) == 0, srv.describe()
    assert statuses and set(statuses) <= {200, 503}, statuses


def test_sigterm_during_startup_is_a_clean_shutdown(server):
    """The termination signals are blocked before any thread starts: a
    SIGTERM that arrives while the server is still starting (just after its
    first log line) is taken by the shutdown sequence, never by another
    thread's default action that would kill the process."""
    for attempt in range(3):
        srv = server(env={"JWT_SECRET": None, "LOG_LEVEL": "info"}, wait=False)
        deadline = time.monotonic() + 10
        while not srv.stdout_text() and time.monotonic() < deadline and srv.running():
            time.sleep(0.001)
        srv.send_signal(signal.SIGTERM)
        rc = srv.wait(15)
        assert rc == 0, f"attempt {attempt}: exit {rc} (negative: killed by the signal)\n" + srv.describe()


def test_second_signal_while_workers_log_touches_no_freed_memory(server):
    """The forced exit frees nothing that workers still write to: with
    requests finishing (and logging) while it happens, the process exits 1
    and ASan reports no use after free."""
    srv = server(env={"API_DEBUG_ROUTES": "1", "SHUTDOWN_GRACE_MS": "10000", "WORKERS": "2"})
    srv.ignore_leaks = True  # a forced exit does not free everything
    srv.expected_exit = None
    conns = []
    for i in range(40):
        c = RawConn(srv.port, timeout=10)
        c.send(build_request("GET", f"/debug/sleep?ms={200 + 20 * i}"))
        conns.append(c)
    time.sleep(0.3)
    srv.send_signal(signal.SIGTERM)
    time.sleep(0.5)  # requests are finishing and logging now
    srv.proc.send_signal(signal.SIGTERM)
    rc = srv.wait(10)
    for c in conns:
        c.close()
    assert rc == 1, srv.describe()
    assert "use-after-free" not in srv.stderr_text(), srv.describe()
