#!/usr/bin/env python3
"""Memory per idle keep-alive connection of a server, from outside.

    idle-conns.py PORT COUNT PID [PID...]

Opens COUNT connections to 127.0.0.1:PORT, sends one GET /health/live on
each (so every one is a real, served keep-alive connection), then holds them
idle and measures the server's resident memory (the sum of VmRSS over the
given processes) before and after. Prints one JSON object:
{"count", "open", "rss_before_kib", "rss_after_kib", "per_conn_kib", "seconds"}.
"open" counts the connections still open after the measurement (a server
that dropped some would show it). Standard library only; loopback only.
"""

import json
import resource
import selectors
import socket
import sys
import time

REQUEST = b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
BATCH = 500


def rss_kib(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def main():
    port, count, pids = int(sys.argv[1]), int(sys.argv[2]), [int(p) for p in sys.argv[3:]]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = count + 100
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    t0 = time.monotonic()
    time.sleep(0.5)
    before = rss_kib(pids)
    socks = []
    sel = selectors.DefaultSelector()
    try:
        pending = {}
        for start in range(0, count, BATCH):
            for _ in range(min(BATCH, count - start)):
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
                s.sendall(REQUEST)
                s.setblocking(False)
                socks.append(s)
                pending[s] = b""
                sel.register(s, selectors.EVENT_READ)
            # Read every answer of this batch before opening more.
            deadline = time.monotonic() + 30
            while any(b"\r\n\r\n" not in v for v in pending.values()):
                if time.monotonic() > deadline:
                    raise SystemExit("idle-conns.py: answers did not arrive within 30 s")
                for key, _ in sel.select(timeout=1):
                    data = key.fileobj.recv(4096)
                    if not data:
                        raise SystemExit("idle-conns.py: the server closed a connection")
                    pending[key.fileobj] += data
            for s in list(pending):
                sel.unregister(s)
            pending.clear()
        time.sleep(0.5)
        after = rss_kib(pids)
        # Still open: no EOF waiting on any of them.
        still = 0
        for s in socks:
            try:
                still += s.recv(1) != b""
            except BlockingIOError:
                still += 1
            except OSError:
                pass
        print(json.dumps({
            "count": count,
            "open": still,
            "rss_before_kib": before,
            "rss_after_kib": after,
            "per_conn_kib": round((after - before) / count, 2),
            "seconds": round(time.monotonic() - t0, 1),
        }))
    finally:
        for s in socks:
            s.close()


if __name__ == "__main__":
    main()
