"""Headless Chromium for black-box tests of pages the server serves (GET /docs).

`run_chromium(url, workdir)` loads one page in Debian's `chromium` with a
fresh profile, lets its scripts run (virtual time, bounded), and returns the
DOM as serialised after the scripts ran plus the browser's NetLog: every
request, connection attempt and datagram it made. Host resolution is mapped
so that nothing but 127.0.0.1 resolves, so even Chromium's own background
requests cannot leave the machine; the NetLog then shows what was tried.

`NetLog` reads that log: the URL requests (with whether they failed), and
the remote addresses of every TCP connection attempt and UDP send.
"""

import json
import shutil
import subprocess
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser")

# Flags checked on Debian 12's chromium as root in a container: no sandbox
# (root), no GPU, no QUIC, and as little background traffic as it allows.
BASE_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--hide-scrollbars",
    # Every name resolves to nothing except the literal loopback address.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)


def chromium_binary():
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    raise AssertionError("chromium is not installed (scripts/deps.sh installs Debian's chromium)")


def run_chromium(url, workdir, extra_flags=(), timeout=60, virtual_time_ms=10000):
    """Loads url; returns (dom_text, NetLog). Fails the test on a non-zero
    exit or a run longer than timeout seconds."""
    workdir = Path(workdir)
    profile = workdir / "chromium-profile"
    profile.mkdir(parents=True, exist_ok=True)
    netlog = workdir / "netlog.json"
    args = [chromium_binary(), *BASE_FLAGS, f"--user-data-dir={profile}",
            f"--log-net-log={netlog}", f"--virtual-time-budget={virtual_time_ms}",
            *extra_flags, url]
    try:
        p = subprocess.run(args, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL,
                           cwd=workdir)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"chromium did not finish within {timeout}s: {' '.join(args)}") from None
    stderr = p.stderr.decode("utf-8", "replace")
    assert p.returncode == 0, f"chromium exited with {p.returncode}\n{stderr[-3000:]}"
    assert netlog.is_file(), f"chromium wrote no NetLog\n{stderr[-3000:]}"
    return p.stdout.decode("utf-8", "replace"), NetLog(netlog)


def _host_of(address):
    """'127.0.0.1:443' or '[::1]:443' -> '127.0.0.1' / '::1'."""
    if address.startswith("["):
        return address[1:address.index("]")]
    return address.rsplit(":", 1)[0]


class NetLog:
    def __init__(self, path):
        text = Path(path).read_text(encoding="utf-8", errors="replace").rstrip()
        # A log cut short (a crash) lacks the closing brackets; Chromium's own
        # viewer accepts that too.
        if not text.endswith("}"):
            text = text.rstrip(",") + "]}"
        data = json.loads(text)
        names = {v: k for k, v in data["constants"]["logEventTypes"].items()}
        self.events = [(names.get(e["type"], str(e["type"])), e.get("source", {}).get("id"),
                        e.get("params") or {}) for e in data["events"]]

    def url_requests(self):
        """[{url, initiator, isolation_key, error}] for every URL request;
        error is the net error code (< 0) it ended with, or None."""
        started = {}
        errors = {}
        for name, src, params in self.events:
            if name == "URL_REQUEST_START_JOB" and "url" in params:
                started.setdefault(src, params)
            if name in ("URL_REQUEST_START_JOB", "REQUEST_ALIVE") and "net_error" in params:
                errors[src] = params["net_error"]
        return [{"url": p["url"], "initiator": p.get("initiator", ""),
                 "isolation_key": p.get("network_isolation_key", ""),
                 "error": errors.get(src)} for src, p in started.items()]

    def remote_hosts(self):
        """Hosts that got bytes or a connection attempt: every TCP connection
        attempt, and every UDP socket that sent a datagram. (Chromium
        connect()s UDP sockets to public addresses to learn its own local
        address; that sends nothing and is not counted.)"""
        hosts = set()
        udp_peer = {}
        for name, src, params in self.events:
            if name in ("TCP_CONNECT_ATTEMPT", "TCP_CONNECT_JOB_CONNECTOR_CONNECT_START") and "address" in params:
                hosts.add(_host_of(params["address"]))
            elif name == "TCP_CONNECT":
                for a in params.get("address_list", []):
                    hosts.add(_host_of(a))
                if "remote_address" in params:
                    hosts.add(_host_of(params["remote_address"]))
            elif name == "UDP_CONNECT" and "address" in params:
                udp_peer[src] = params["address"]
            elif name == "UDP_BYTES_SENT":
                addr = params.get("address") or udp_peer.get(src)
                hosts.add(_host_of(addr) if addr else "<unknown UDP peer>")
        return hosts
