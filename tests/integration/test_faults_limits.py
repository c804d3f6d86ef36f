"""Limits under pressure: out of file descriptors, at MAX_CONNECTIONS, and
clients that never read their responses."""

import resource
import socket
import time

import pytest

from harness import RawConn, build_request


def _cpu_seconds(pid):
    """User + system CPU time of a process, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / 100.0  # USER_HZ on Linux


def _raise_own_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= n


def test_out_of_file_descriptors_does_not_spin(server):
    """With `ulimit -n 256`, 1,000 clients connect: the server clamps its
    connections to what it can open, the rest wait in the backlog, it keeps
    answering, and it does not burn CPU on a listener it cannot accept from."""
    if not _raise_own_nofile(1200):
        pytest.skip("this test process cannot open 1,200 sockets")
    srv = server(env={"WORKERS": "2"}, prefix=("prlimit", "--nofile=256:256", "--"))
    socks = []
    try:
        for _ in range(1000):
            s = socket.socket()
            s.settimeout(5)
            s.connect(("127.0.0.1", srv.port))  # the kernel's backlog completes it
            socks.append(s)
        time.sleep(0.5)
        before = _cpu_seconds(srv.proc.pid)
        time.sleep(2.0)
        used = _cpu_seconds(srv.proc.pid) - before
        assert used < 0.3, f"the server used {used:.2f} s of CPU in 2 s while idle at its fd limit"
        # The first connections were accepted: they are answered.
        socks[0].sendall(build_request("GET", "/health/live"))
        assert socks[0].recv(4096).startswith(b"HTTP/1.1 200"), "an accepted connection is not served"
    finally:
        for s in socks:
            s.close()
    # Once clients go away, new ones are accepted and served again.
    deadline = time.monotonic() + 10
    while True:
        try:
            with RawConn(srv.port, timeout=2) as c:
                c.send(build_request("GET", "/health/live"))
                r = c.read_response()
                if r is not None and r.status == 200:
                    break
        except OSError:
            pass
        assert time.monotonic() < deadline, "no new connection served after the others closed\n" + srv.describe()
        time.sleep(0.1)
    assert srv.wait_for_log(lambda o: "MAX_CONNECTIONS lowered" in o.get("msg", ""), timeout=1)


def test_accepting_resumes_after_max_connections(server):
    """At MAX_CONNECTIONS the listener pauses; when a connection closes it
    accepts again (and the waiting client is served)."""
    srv = server(env={"WORKERS": "1", "MAX_CONNECTIONS": "2"})
    a = RawConn(srv.port)
    b = RawConn(srv.port)
    for c in (a, b):
        c.send(build_request("GET", "/health/live"))
        assert c.read_response().status == 200
    waiting = RawConn(srv.port, timeout=5)  # completes in the kernel, not accepted yet
    waiting.send(build_request("GET", "/health/live"))
    time.sleep(0.3)
    a.close()
    r = waiting.read_response(timeout=5)
    assert r is not None and r.status == 200, r
    waiting.close()
    b.close()


def _non_reading_client(port, requests=120):
    """A client that asks for a large response again and again and never
    reads: the server's writes to it stall once the socket buffers are full
    (120 x 64 KB is past the 4 MB a send buffer grows to, tcp_wmem)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(build_request("GET", "/openapi.json") * requests)
    return s


def test_clients_that_never_read_do_not_hold_slots_forever(server):
    srv = server(env={"WORKERS": "1", "MAX_INFLIGHT": "2", "WRITE_TIMEOUT_MS": "1000"})
    stuck = [_non_reading_client(srv.port) for _ in range(2)]
    try:
        time.sleep(0.5)
        with RawConn(srv.port) as c:
            c.send(build_request("GET", "/health/live"))
            r = c.read_response()
        assert r is not None and r.status == 503, f"the two stalled writes should hold both slots: {r!r}"
        # After the write timeout their connections are closed and the
        # slots are free again.
        deadline = time.monotonic() + 5
        while True:
            with RawConn(srv.port) as c:
                c.send(build_request("GET", "/health/live"))
                r = c.read_response()
            if r is not None and r.status == 200:
                break
            assert time.monotonic() < deadline, "slots still held 5 s after WRITE_TIMEOUT_MS=1000"
            time.sleep(0.2)
        assert srv.wait_for_log(lambda o: "did not read its response" in o.get("msg", ""))
    finally:
        for s in stuck:
            s.close()
