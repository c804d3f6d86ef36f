"""Helpers for the systemd tests (tests/integration/test_notify.py).

What lives here:

- `NotifySocket`: the service manager's end of NOTIFY_SOCKET (a datagram
  socket the test binds), recording what the server sends and when.
"""

import socket
import threading
import time


# ---- sd_notify -----------------------------------------------------------------

class NotifySocket:
    """A bound AF_UNIX datagram socket; a thread records (time, message)."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.05)
        self.messages = []
        self._lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self.messages.append((time.monotonic(), data.decode("utf-8", "replace")))

    def close(self):
        self._stop = True
        self._thread.join(2)
        self.sock.close()

    def snapshot(self):
        with self._lock:
            return list(self.messages)

    def times(self, field, since=0.0, until=float("inf")):
        """Arrival times of the messages holding the line `field` ("WATCHDOG=1")."""
        return [t for t, m in self.snapshot() if field in m.split("\n") and since <= t <= until]

    def wait_for(self, field, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.times(field)
            if found:
                return found[0]
            time.sleep(0.02)
        raise AssertionError(f"no {field} within {timeout}s; got {self.snapshot()!r}")
