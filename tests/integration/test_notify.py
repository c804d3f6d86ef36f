"""systemd notifications without systemd: the test owns the datagram socket
that NOTIFY_SOCKET names, as the service manager would, and checks READY=1
once the server listens, WATCHDOG=1 every WATCHDOG_USEC / 2 while every
worker's loop turns, none while a loop is blocked (GET /debug/block), and
STOPPING=1 when SIGTERM arrives."""

import os
import shutil
import tempfile
import time

import pytest

from harness import get
from systemd_support import NotifySocket

WATCHDOG_USEC = 1_000_000  # 1 s: pings expected every 0.5 s
PERIOD = WATCHDOG_USEC / 2e6


# Tests take `notify` before `server`: the socket outlives the server, so
# STOPPING=1 at teardown still has a receiver.
@pytest.fixture
def notify():
    # A short directory of its own: sun_path holds 108 bytes.
    d = tempfile.mkdtemp(prefix="api-notify-")
    ns = NotifySocket(os.path.join(d, "notify.sock"))
    yield ns
    ns.close()
    shutil.rmtree(d, ignore_errors=True)


def _gaps(times):
    return [b - a for a, b in zip(times, times[1:])]


def test_ready_watchdog_and_stopping(notify, server):
    srv = server(env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": WATCHDOG_USEC})
    ready = notify.wait_for("READY=1", 5)
    # READY=1 comes once every worker listens: /health/live answers by then.
    r = get(srv.port, "/health/live")
    assert r is not None and r.status == 200, r
    time.sleep(3.2)
    pings = notify.times("WATCHDOG=1", since=ready)
    # 3 s at one ping per 0.5 s: 6 (a loaded machine may add a little lag).
    assert 4 <= len(pings) <= 8, f"{len(pings)} pings in 3.2 s: {pings!r}"
    gaps = _gaps(pings)
    # One period apart; a missed ping would make a gap of a whole second.
    assert all(0.3 <= g <= 0.95 for g in gaps), f"ping gaps {gaps!r}"
    # systemd would kill the service after a gap over WATCHDOG_USEC.
    assert max(gaps) < WATCHDOG_USEC / 1e6
    assert notify.times("STOPPING=1") == []
    sent = time.monotonic()
    assert srv.stop() == 0
    stopping = notify.times("STOPPING=1")
    assert len(stopping) == 1, notify.snapshot()
    assert stopping[0] >= sent
    assert len(notify.times("READY=1")) == 1
    srv.wait_for_log(lambda o: "watchdog" in o.get("msg", ""), timeout=1)


def test_blocked_worker_loop_stops_the_pings(notify, server):
    srv = server(env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": WATCHDOG_USEC,
                      "API_DEBUG_ROUTES": "1", "WORKERS": "2"})
    notify.wait_for("READY=1", 5)
    notify.wait_for("WATCHDOG=1", 3)
    block_ms = 3000
    started = time.monotonic()
    r = get(srv.port, f"/debug/block?ms={block_ms}", timeout=10)
    ended = time.monotonic()
    assert r is not None and r.status == 200, r
    assert ended - started >= block_ms / 1000
    # The first look after the block began may still count turns made before
    # it (and the request may take a moment to reach its worker); from two
    # periods on, no ping while the loop is stuck.
    quiet_from = started + 2 * PERIOD
    during = notify.times("WATCHDOG=1", since=quiet_from, until=ended - 0.05)
    assert during == [], f"watchdog pinged while a worker loop was blocked: {during!r}"
    before = [t for t in notify.times("WATCHDOG=1") if t < quiet_from]
    assert before, notify.snapshot()
    # ... so the manager would have seen a gap longer than WATCHDOG_USEC.
    time.sleep(3 * PERIOD)
    after = notify.times("WATCHDOG=1", since=ended)
    assert len(after) >= 2, f"pings did not resume after the block: {notify.snapshot()!r}"
    assert after[0] - before[-1] > WATCHDOG_USEC / 1e6
    srv.wait_for_log(lambda o: "watchdog ping withheld" in o.get("msg", ""), timeout=1)
    srv.wait_for_log(lambda o: "pings resume" in o.get("msg", ""), timeout=1)


def test_no_watchdog_without_watchdog_usec(notify, server):
    srv = server(env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": None})
    notify.wait_for("READY=1", 5)
    time.sleep(1.2)
    assert notify.times("WATCHDOG=1") == [], notify.snapshot()
    assert srv.stop() == 0
    assert len(notify.times("STOPPING=1")) == 1


def test_watchdog_for_another_process_is_not_ours(notify, server):
    # sd_watchdog_enabled(3): WATCHDOG_PID names the process meant; pid 1 is
    # never the server.
    srv = server(env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": WATCHDOG_USEC,
                      "WATCHDOG_PID": "1"})
    notify.wait_for("READY=1", 5)
    time.sleep(1.2)
    assert notify.times("WATCHDOG=1") == [], notify.snapshot()
    assert srv.stop() == 0


@pytest.fixture(scope="module")
def plain_srv(module_server):
    return module_server()


@pytest.fixture(scope="module")
def debug_srv(module_server):
    return module_server(env={"API_DEBUG_ROUTES": "1"})


def test_debug_block_needs_debug_routes(plain_srv):
    r = get(plain_srv.port, "/debug/block?ms=1")
    assert r is not None and r.status == 404, r


@pytest.mark.parametrize("query", ["", "ms=", "ms=-1", "ms=60001", "ms=abc"])
def test_debug_block_rejects_bad_ms(debug_srv, query):
    r = get(debug_srv.port, "/debug/block" + ("?" + query if query else ""))
    assert r is not None and r.status == 400, r
