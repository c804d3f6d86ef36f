"""Black-box test harness for the api server.

Starts the real binary (the ASan + UBSan build by default) on a free port of
127.0.0.1, captures its stdout (JSON log lines) and stderr to files, and talks
to it over real sockets. Nothing here knows the server's internals: every
check goes through HTTP, signals, exit codes and the captured output.

Helpers are deliberately strict about time: every socket has a timeout and
every process wait is bounded, so a hang turns into a failure, never into a
stuck test run.
"""

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"

# Sanitizer findings. LeakSanitizer is listed on its own so that a test which
# deliberately forces an exit (second signal) can tolerate leak reports only:
# memory, and under ThreadSanitizer the worker threads it leaves running.
_SANITIZER_PATTERNS = [
    re.compile(r"ERROR: AddressSanitizer"),
    re.compile(r"ERROR: LeakSanitizer"),
    re.compile(r"runtime error:"),
    re.compile(r"ERROR: (Thread|Memory)Sanitizer"),
    re.compile(r"WARNING: ThreadSanitizer"),
    re.compile(r"SUMMARY: UndefinedBehaviorSanitizer"),
]
_LEAK_ONLY = re.compile(r"LeakSanitizer|SUMMARY: AddressSanitizer: \d+ byte\(s\) leaked"
                        r"|ThreadSanitizer: thread leak")

# Variables that configure the server; inherited values are dropped so a
# developer's shell cannot change what a test sees. Database variables are
# left alone on purpose: the foundation tests neither need nor set them.
SERVER_ENV_VARS = (
    "HOST", "PORT", "WORKERS", "REQUEST_TIMEOUT_MS", "SHUTDOWN_GRACE_MS",
    "SHUTDOWN_DELAY_MS", "HEADER_TIMEOUT_MS", "LOG_LEVEL", "MAX_BODY_BYTES",
    "MAX_CONNECTIONS", "MAX_INFLIGHT", "HTTP2", "API_DEBUG_ROUTES",
    "REDIS_URL", "REDIS_REQUIRED", "OTEL_EXPORTER_OTLP_ENDPOINT",
    "RATE_LIMIT_MAX", "RATE_LIMIT_WINDOW_S",
    # systemd's: a test run under a service manager must not hand them on.
    "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID",
)

LOG_LEVELS = ("trace", "debug", "info", "warn", "error", "fatal")

# X-Request-Id values the server must echo: 1..128 of these characters.
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._~:/+=-]{1,128}$")


def api_bin():
    """Path of the binary under test: $API_BIN, else build/asan/api."""
    p = Path(os.environ.get("API_BIN") or "build/asan/api")
    if not p.is_absolute():
        p = REPO_ROOT / p
    return p


def require_api_bin():
    p = api_bin()
    if not (p.is_file() and os.access(p, os.X_OK)):
        raise AssertionError(
            f"server binary not found or not executable: {p} "
            "(build it with `make asan`, or point API_BIN at it)")
    return p


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def server_env(overrides=None, port=None):
    """The environment for a server process: the inherited one minus server
    configuration, then the test defaults, then `overrides` (None deletes)."""
    env = {k: v for k, v in os.environ.items() if k not in SERVER_ENV_VARS}
    # The same sanitizer defaults as scripts/test.sh, so a direct pytest run
    # behaves like `make test`; values the caller set win.
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1:halt_on_error=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    supp = REPO_ROOT / "tests" / "lsan.supp"
    if not env.get("LSAN_OPTIONS") and supp.is_file():
        env["LSAN_OPTIONS"] = f"suppressions={supp}"
    env.update({
        "HOST": LOOPBACK,
        "WORKERS": "2",
        "LOG_LEVEL": "info",
        "REDIS_URL": "",
    })
    if port is not None:
        env["PORT"] = str(port)
    for k, v in (overrides or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


def sanitizer_findings(text, ignore_leaks=False):
    found = []
    for line in text.splitlines():
        if ignore_leaks and _LEAK_ONLY.search(line):
            continue
        if any(p.search(line) for p in _SANITIZER_PATTERNS):
            found.append(line)
    return found


def _tail(text, n):
    lines = text.splitlines()
    return "\n".join(lines[-n:])


def run_cli(args, env=None, timeout=10):
    """Runs the binary to completion (for --help, --version, bad config)."""
    binary = require_api_bin()
    try:
        return subprocess.run([str(binary), *args], env=server_env(env), cwd=REPO_ROOT,
                              stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout, text=True, errors="replace")
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"`api {' '.join(args)}` did not exit within {timeout}s "
                             f"(stdout={e.stdout!r}, stderr={e.stderr!r})") from None


class ServerProcess:
    """One running server. Created by the `server` fixtures in conftest."""

    def __init__(self, workdir, env=None, args=("serve",), prefix=()):
        self.binary = require_api_bin()
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.host = LOOPBACK
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.env = server_env(env, port=self.port)
        self.args = list(args)
        self.stdout_path = self.workdir / "stdout.log"
        self.stderr_path = self.workdir / "stderr.log"
        # What teardown expects: exit code after SIGTERM (None: any) and
        # whether LeakSanitizer reports are acceptable (forced exits only).
        self.expected_exit = 0
        self.ignore_leaks = False
        self._signalled = False
        self.returncode = None
        out = open(self.stdout_path, "wb")
        err = open(self.stderr_path, "wb")
        try:
            # A new session keeps a Ctrl-C of pytest from reaching the server.
            # prefix: a command the server runs under (e.g. prlimit)
            self.proc = subprocess.Popen([*prefix, str(self.binary), *self.args], env=self.env,
                                         cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=err, start_new_session=True)
        finally:
            out.close()
            err.close()
        self.started_at = time.monotonic()

    # ---- output -------------------------------------------------------
    def stdout_text(self):
        return self.stdout_path.read_bytes().decode("utf-8", "replace")

    def stderr_text(self):
        return self.stderr_path.read_bytes().decode("utf-8", "replace")

    def describe(self, n=40):
        rc = self.proc.poll()
        return (f"server pid {self.proc.pid} port {self.port} "
                f"(exit code: {rc if rc is not None else 'still running'})\n"
                f"--- stderr (tail) ---\n{_tail(self.stderr_text(), n)}\n"
                f"--- stdout (tail) ---\n{_tail(self.stdout_text(), n)}")

    def log_lines(self):
        """Parsed JSON objects, one per complete stdout line. Any complete line
        that is not a JSON object is an assertion failure (logs are JSON)."""
        text = self.stdout_text()
        lines = text.split("\n")
        if not text.endswith("\n"):
            lines = lines[:-1]  # still being written
        parsed = []
        for line in lines:
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                raise AssertionError(f"stdout line is not JSON: {line!r}") from None
            if not isinstance(obj, dict):
                raise AssertionError(f"stdout line is not a JSON object: {line!r}")
            parsed.append(obj)
        return parsed

    def wait_for_log(self, predicate, timeout=3.0):
        """The first log object satisfying predicate, waiting up to timeout
        (logs are written off-loop, so they may lag the response)."""
        deadline = time.monotonic() + timeout
        while True:
            for obj in self.log_lines():
                if predicate(obj):
                    return obj
            if time.monotonic() > deadline:
                raise AssertionError("no matching log line within "
                                     f"{timeout}s\n{self.describe()}")
            time.sleep(0.05)

    def sanitizer_report(self):
        return sanitizer_findings(self.stderr_text(), ignore_leaks=self.ignore_leaks)

    # ---- lifecycle ----------------------------------------------------
    def running(self):
        return self.proc.poll() is None

    def assert_running(self):
        if not self.running():
            raise AssertionError("server is not running\n" + self.describe())

    def wait_readiness(self, timeout=10.0):
        """Polls GET /health/ready until it answers 200, bounded by timeout:
        a fresh instance is ready only once every worker has connected to
        PostgreSQL, as a load balancer would wait for."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            self.assert_running()
            r = get(self.port, "/health/ready")
            if r is not None and r.status == 200:
                return
            last = r and r.status
            time.sleep(0.05)
        raise AssertionError(f"/health/ready not 200 within {timeout}s (last {last})\n" + self.describe())

    def wait_ready(self, timeout=10.0):
        """Polls GET /health/live until it answers 200, bounded by timeout."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if not self.running():
                raise AssertionError("server exited during start-up\n" + self.describe())
            try:
                with RawConn(self.port, timeout=1.0) as c:
                    c.send(build_request("GET", "/health/live"))
                    r = c.read_response()
                    if r is not None and r.status == 200:
                        return
                    last = r and r.status
            except OSError as e:
                last = e
            time.sleep(0.05)
        raise AssertionError(f"server did not answer /health/live within {timeout}s "
                             f"(last: {last!r})\n" + self.describe())

    def send_signal(self, sig):
        if self.running():
            self._signalled = True
            self.proc.send_signal(sig)

    def wait(self, timeout):
        """Exit code, or None if still running after timeout."""
        try:
            self.returncode = self.proc.wait(timeout=timeout)
            return self.returncode
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        if self.running():
            self._signalled = True
            self.proc.kill()
        self.returncode = self.proc.wait(timeout=10)
        return self.returncode

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        """Sends sig (SIGTERM) and waits; returns the exit code. A process that
        does not exit within timeout is killed and the call fails."""
        if self.running():
            self.send_signal(sig)
        rc = self.wait(timeout)
        if rc is None:
            self.kill()
            raise AssertionError(f"server did not exit within {timeout}s of "
                                 f"{signal.Signals(sig).name}; killed\n" + self.describe())
        return rc

    def finish(self):
        """Teardown: stop if running, then list what went wrong (empty: ok)."""
        problems = []
        if self.running() and self._signalled:
            # The test already started a shutdown: a second signal here would
            # force the exit and blame the server, so let the drain finish.
            if self.wait(15) is None:
                problems.append("server still running 15 s after the test signalled it")
        if self.running():
            try:
                rc = self.stop()
                if self.expected_exit is not None and rc != self.expected_exit:
                    problems.append(f"exit code after SIGTERM was {rc}, "
                                    f"expected {self.expected_exit}")
            except AssertionError as e:
                problems.append(str(e).splitlines()[0])
        elif not self._signalled:
            problems.append(f"server exited on its own with code {self.proc.returncode}")
        report = self.sanitizer_report()
        if report:
            problems.append("sanitizer report in stderr:\n  " + "\n  ".join(report[:20]))
        if problems:
            problems.append(self.describe(80))
        return problems


def start_server(workdir, env=None, args=("serve",), wait=True, prefix=()):
    srv = ServerProcess(workdir, env=env, args=args, prefix=prefix)
    if wait:
        try:
            srv.wait_ready()
        except AssertionError:
            if srv.running():
                srv.kill()
            raise
    return srv


# ---- raw HTTP/1.1 ------------------------------------------------------

def build_request(method, path, headers=None, body=b"", version="HTTP/1.1", host=True):
    """Bytes of one request. headers: list of (name, value) pairs (str or
    bytes); Host is added unless host=False or given explicitly."""
    def b(x):
        return x if isinstance(x, bytes) else x.encode("latin-1")
    hdrs = list(headers or [])
    names = {b(n).lower() for n, _ in hdrs}
    if host and b"host" not in names:
        hdrs.insert(0, ("Host", f"{LOOPBACK}"))
    if body and b"content-length" not in names and b"transfer-encoding" not in names:
        hdrs.append(("Content-Length", str(len(body))))
    out = b(method) + b" " + b(path) + b" " + b(version) + b"\r\n"
    for n, v in hdrs:
        out += b(n) + b": " + b(v) + b"\r\n"
    return out + b"\r\n" + b(body)


def chunked_body(data, chunk_size):
    out = b""
    for i in range(0, len(data), chunk_size):
        piece = data[i:i + chunk_size]
        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    return out + b"0\r\n\r\n"


class ResponseError(Exception):
    pass


class RawResponse:
    def __init__(self, version, status, reason, headers, body, chunked):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (lower-case name, value)
        self.body = body
        self.chunked = chunked

    def header(self, name):
        name = name.lower()
        for n, v in self.headers:
            if n == name:
                return v
        return None

    def header_all(self, name):
        name = name.lower()
        return [v for n, v in self.headers if n == name]

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<RawResponse {self.status} {self.headers!r} {self.body[:200]!r}>"


class RawConn:
    """A client socket with an input buffer; every read has a deadline."""

    def __init__(self, port, host=LOOPBACK, timeout=5.0):
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.eof = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        self.sock.sendall(data)

    def _recv_more(self, deadline):
        """Appends to buf; False on EOF or reset; TimeoutError at deadline."""
        if self.eof:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no data from server before the deadline")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("no data from server before the deadline") from None
        except (ConnectionResetError, ConnectionAbortedError):
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def read_response(self, timeout=None, head=False):
        """The next response, or None if the connection closed before its
        first byte. Raises TimeoutError if the server neither answers nor
        closes in time, ResponseError on a malformed or truncated response."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while True:
            while b"\r\n\r\n" not in self.buf:
                if not self._recv_more(deadline):
                    if self.buf:
                        raise ResponseError(f"connection closed mid-response: {self.buf[:300]!r}")
                    return None
            head_bytes, self.buf = self.buf.split(b"\r\n\r\n", 1)
            lines = head_bytes.split(b"\r\n")
            m = re.match(rb"^(HTTP/\d\.\d) (\d{3})(?: (.*))?$", lines[0])
            if not m:
                raise ResponseError(f"bad status line: {lines[0][:200]!r}")
            version, status, reason = m.group(1).decode(), int(m.group(2)), (m.group(3) or b"").decode("latin-1")
            headers = []
            for line in lines[1:]:
                if b":" not in line:
                    raise ResponseError(f"bad header line: {line[:200]!r}")
                n, v = line.split(b":", 1)
                headers.append((n.decode("latin-1").strip().lower(), v.decode("latin-1").strip()))
            if 100 <= status < 200 and status != 101:
                continue  # interim response; read the final one
            break
        resp = RawResponse(version, status, reason, headers, b"", False)
        if head or status in (101, 204, 304):
            return resp
        te = resp.header("transfer-encoding")
        cl = resp.header("content-length")
        if te is not None and "chunked" in te.lower():
            resp.chunked = True
            resp.body = self._read_chunked(deadline)
        elif cl is not None:
            n = int(cl)
            while len(self.buf) < n:
                if not self._recv_more(deadline):
                    raise ResponseError(f"body shorter than Content-Length {n}: {self.buf[:200]!r}")
            resp.body, self.buf = self.buf[:n], self.buf[n:]
        else:
            while self._recv_more(deadline):
                pass
            resp.body, self.buf = self.buf, b""
        return resp

    def _read_chunked(self, deadline):
        body = b""
        while True:
            while b"\r\n" not in self.buf:
                if not self._recv_more(deadline):
                    raise ResponseError("closed inside chunked body")
            size_line, self.buf = self.buf.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            while len(self.buf) < size + 2:
                if not self._recv_more(deadline):
                    raise ResponseError("closed inside chunk")
            body += self.buf[:size]
            self.buf = self.buf[size + 2:]
            if size == 0:
                return body

    def wait_closed(self, timeout):
        """True if the server closes (EOF or reset) within timeout; any data
        received meanwhile is kept in buf. False on timeout."""
        deadline = time.monotonic() + timeout
        try:
            while self._recv_more(deadline):
                pass
            return True
        except TimeoutError:
            return False


def raw_exchange(port, data, timeout=5.0, head=False):
    """Opens a connection, sends data, returns (first response or None, conn).
    The caller closes conn."""
    c = RawConn(port, timeout=timeout)
    c.send(data)
    return c.read_response(head=head), c


def get(port, path, headers=None, timeout=5.0, method="GET"):
    """One request on a fresh connection; the response (None if closed)."""
    with RawConn(port, timeout=timeout) as c:
        c.send(build_request(method, path, headers=headers))
        return c.read_response(head=(method == "HEAD"))


def assert_healthy(srv, timeout=5.0):
    """The server is still up: a fresh connection gets 200 from /health/live."""
    try:
        r = get(srv.port, "/health/live", timeout=timeout)
    except (OSError, ResponseError) as e:
        raise AssertionError(f"server not healthy: {e!r}\n" + srv.describe()) from None
    assert r is not None and r.status == 200, f"/health/live: {r!r}\n" + srv.describe()


def media_type(value):
    return (value or "").split(";")[0].strip().lower()


def assert_problem(resp, status):
    """An RFC 9457 problem response with the given status."""
    assert resp is not None, "connection closed without a response"
    assert resp.status == status, f"expected {status}, got {resp!r}"
    assert media_type(resp.header("content-type")) == "application/problem+json", resp
    body = resp.json()
    assert isinstance(body, dict), body
    assert isinstance(body.get("type"), str) and body["type"], body
    assert isinstance(body.get("title"), str) and body["title"], body
    assert type(body.get("status")) is int and body["status"] == status, body
    assert isinstance(body.get("detail"), str), body
    return body


def assert_framing(resp):
    """Not chunked, with a Content-Length that matches the body."""
    assert not resp.chunked, f"chunked response: {resp!r}"
    assert resp.header("transfer-encoding") is None, resp
    cl = resp.header_all("content-length")
    assert len(cl) == 1, f"expected one Content-Length, got {cl}: {resp!r}"
    assert int(cl[0]) == len(resp.body), resp


def assert_no_server_header(resp):
    values = resp.header_all("server")
    assert all(v == "" for v in values), f"Server header present: {values}"


class Background:
    """Runs fn() in a thread; remembers its result or exception and when it
    finished (time.monotonic())."""

    def __init__(self, fn):
        self.result = None
        self.error = None
        self.finished_at = None
        self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self._thread.start()

    def _run(self, fn):
        try:
            self.result = fn()
        except BaseException as e:  # reported to the test through .error
            self.error = e
        finally:
            self.finished_at = time.monotonic()

    def done(self):
        return not self._thread.is_alive()

    def join(self, timeout):
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"background request still running after {timeout}s")
        return self.result


def rget(url, **kwargs):
    """requests.get that ignores proxy variables: traffic stays on loopback."""
    with requests.Session() as s:
        s.trust_env = False
        return s.get(url, **kwargs)


def signal_name(sig):
    return signal.Signals(sig).name
