"""Helpers for the delivery tests: the Debian package, the systemd units and
the sd_notify protocol (tests/integration/test_notify.py, test_package.py,
test_syscalls.py).

What lives here:

- `NotifySocket`: the service manager's end of NOTIFY_SOCKET (a datagram
  socket the test binds), recording what the server sends and when;
- `read_unit`: a systemd unit file as {key: [values, in order]};
- `allowed_syscalls`: the set of system calls a unit's SystemCallFilter=
  lines allow, expanded with `systemd-analyze syscall-filter`;
- `built_deb`: runs `make deb` once per test session and returns the paths.
"""

import re
import socket
import subprocess
import threading
import time
from pathlib import Path

from harness import REPO_ROOT

UNITS_DIR = REPO_ROOT / "deploy" / "systemd"


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


# ---- unit files ----------------------------------------------------------------

def read_unit(path):
    """{key: [value, ...]} over all sections (the units use no key twice in
    different sections); repeated keys keep their order, as systemd reads them."""
    keys = {}
    for raw in Path(path).read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;" or line.startswith("["):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path}: not a key=value line: {raw!r}"
        keys.setdefault(key.strip(), []).append(value.strip())
    return keys


def parse_seconds(value):
    """A systemd time span ("30s", "1min 30s", "10min", "500ms") in seconds."""
    units = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}
    total = 0.0
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value)
    assert parts and "".join(n + u for n, u in parts) == value.replace(" ", ""), value
    for number, unit in parts:
        total += float(number) * units[unit or "s"]
    return total


def syscall_groups():
    """{"@group": [member, ...]} from `systemd-analyze syscall-filter`; a
    member is a system call or another @group."""
    out = subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    groups, current = {}, None
    for line in out.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.strip(), [])
        elif line.startswith("    ") and current is not None:
            item = line.strip()
            if item and not item.startswith("#"):
                current.append(item)
        elif not line.strip():
            current = None
    assert "@system-service" in groups and "@default" in groups, "unexpected syscall-filter output"
    return groups


def expand(items, groups):
    names, seen = set(), set()
    todo = list(items)
    while todo:
        item = todo.pop()
        if item.startswith("@"):
            if item not in seen:
                seen.add(item)
                assert item in groups, f"unknown system call group {item}"
                todo.extend(groups[item])
        else:
            names.add(item)
    return names


def allowed_syscalls(unit_path, groups=None):
    """What SystemCallFilter= allows (systemd.exec(5)): the first line sets an
    allow list ("~" would make it a deny list: not supported here, the units
    use an allow list); later "~" lines remove from it, others add. @default
    is always permitted."""
    groups = groups or syscall_groups()
    lines = read_unit(unit_path).get("SystemCallFilter", [])
    assert lines and not lines[0].startswith("~"), \
        f"{unit_path}: expected SystemCallFilter= to start with an allow list"
    allowed = expand(["@default"], groups)
    for line in lines:
        deny = line.startswith("~")
        names = expand(line.lstrip("~").split(), groups)
        allowed = allowed - names if deny else allowed | names
    return allowed


# ---- the package ---------------------------------------------------------------

_deb = {}


def _git_status():
    """`git status --porcelain` of the tree, or None outside a checkout."""
    r = subprocess.run(["git", "status", "--porcelain"], cwd=REPO_ROOT, capture_output=True,
                       text=True, timeout=30)
    return r.stdout if r.returncode == 0 else None


def built_deb():
    """Runs `make deb` (once per session) and returns {"deb": Path, "changes":
    Path, "version": str, "arch": str, "seconds": float, "git_status_before",
    "git_status_after": the tree's status around the build}."""
    if not _deb:
        version = (REPO_ROOT / "VERSION").read_text().strip()
        arch = subprocess.run(["dpkg-architecture", "-qDEB_HOST_ARCH"], capture_output=True,
                              text=True, check=True).stdout.strip()
        before = _git_status()
        t0 = time.monotonic()
        r = subprocess.run(["make", "-s", "deb"], cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, f"make deb failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
        out = REPO_ROOT / "build" / "deb"
        _deb.update(deb=out / f"api_{version}_{arch}.deb",
                    changes=out / f"api_{version}_{arch}.changes",
                    version=version, arch=arch, seconds=time.monotonic() - t0,
                    git_status_before=before, git_status_after=_git_status())
        assert _deb["deb"].is_file(), f"make deb did not write {_deb['deb']}: {r.stdout}"
    return dict(_deb)
