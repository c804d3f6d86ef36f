"""api.service's SystemCallFilter= and RestrictAddressFamilies= hold every
system call and socket family the server uses.

Under the unit, a call outside the filter fails with EPERM
(SystemCallErrorNumber=) and a socket of another family with EAFNOSUPPORT,
so a missing entry is a production outage that no test without systemd would
see. Running all ~470 black-box tests under strace is far too slow; instead
the release binary (the one the package ships) runs under `strace -f -C`
while one workload drives every code path that reaches the kernel
differently: every route (each GET path of the OpenAPI document, the whole
users API with its error paths), PostgreSQL (pipelined reads, write
transactions, a query cancelled at its deadline through the cancel thread),
Redis (cache, rate limits up to 429, idempotency keys and replays), the
sd_notify watchdog thread, a large body, a malformed request, and the
shutdown sequence with a request still in flight; then `api migrate` under
strace too. The union of the calls is compared with the set the unit's
SystemCallFilter= lines allow (expanded by `systemd-analyze syscall-filter`).
See docs/install.md, "How the sandbox is checked".
"""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

import pytest
import requests

from harness import (REPO_ROOT, Background, build_request, free_port, get, raw_exchange,
                     server_env)
from redis_support import REDIS_URL
from systemd_support import NotifySocket, UNITS_DIR, allowed_syscalls, read_unit
from users_support import (CURSOR_SECRET, DATABASE_ADMIN_URL, DATABASE_URL, JWT_SECRET,
                           admin_connect, app_conninfo, bearer, make_token, unique_email)

pytestmark = pytest.mark.skipif(
    not (DATABASE_URL and DATABASE_ADMIN_URL and REDIS_URL),
    reason="DATABASE_URL, DATABASE_ADMIN_URL and REDIS_URL must be set (scripts/test.sh "
           "exports them): the workload needs the test PostgreSQL and Redis")

RELEASE_BIN = REPO_ROOT / "build" / "api"
UNIT = UNITS_DIR / "api.service"
MIGRATE_UNIT = UNITS_DIR / "api-migrate.service"

# "1234  socket(AF_INET, ..." with -f; the summary table's rows end in the name.
SOCKET_RE = re.compile(r"^\d+\s+socket\((AF_[A-Z0-9]+|\d+)")
# open/openat/creat: the path and the flags (the line may end "<unfinished ...>").
OPEN_RE = re.compile(r'^(\d+)\s+(?:open|openat|creat)\((?:[A-Z_]+, |\d+, )?"([^"]*)", ([A-Z0-9_|]+)')
SUMMARY_ROW_RE = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+\d+\s+(?:\d+\s+)?([a-z_0-9]+)\s*$")


def parse_strace(path, opens=None):
    """(syscalls from the -C summary, socket families from the trace); the
    files opened, as (pid, path, flags), are appended to `opens`."""
    calls, families = set(), set()
    in_summary = False
    for line in path.read_text(errors="replace").splitlines():
        m = SOCKET_RE.match(line)
        if m:
            families.add(m.group(1))
        m = OPEN_RE.match(line)
        if m and opens is not None:
            opens.append((int(m.group(1)), m.group(2), m.group(3)))
        if line.startswith("% time"):
            in_summary = True
            continue
        if in_summary:
            m = SUMMARY_ROW_RE.match(line)
            if m and m.group(1) != "total":
                calls.add(m.group(1))
    assert in_summary and calls, f"no strace summary in {path}"
    return calls, families


def strace_cmd(out, *args):
    # -C: the trace (for socket families) and the per-call summary; -qq: no
    # attach/exit chatter; -f: every thread.
    return ["strace", "-f", "-qq", "-C", "-o", str(out), "--", str(RELEASE_BIN), *args]


def traced_child(strace_pid, timeout=10):
    """The pid of the server strace started: its child running RELEASE_BIN
    (strace also forks short-lived children of its own to probe ptrace)."""
    deadline = time.monotonic() + timeout
    path = f"/proc/{strace_pid}/task/{strace_pid}/children"
    want = os.path.realpath(RELEASE_BIN)
    while time.monotonic() < deadline:
        try:
            kids = open(path).read().split()
        except OSError:
            kids = []
        for kid in kids:
            try:
                if os.readlink(f"/proc/{kid}/exe") == want:
                    return int(kid)
            except OSError:
                continue
        time.sleep(0.02)
    raise AssertionError(f"strace started no {want}")


def wait_ready(url, proc, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the traced server exited during start-up"
        try:
            if requests.get(url + "/health/ready", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError("the traced server did not become ready")


def openapi_get_paths():
    doc = json.loads((REPO_ROOT / "openapi" / "openapi.json").read_text())
    return [p for p, item in doc["paths"].items() if "get" in item and "{" not in p]


def workload(url, port):
    """Every route and dependency path the server has; returns what it saw."""
    s = requests.Session()
    s.trust_env = False
    seen = {}

    def call(method, path, token=None, **kw):
        headers = kw.pop("headers", {})
        if token is not None:
            headers["Authorization"] = bearer(token)
        r = s.request(method, url + path, headers=headers, timeout=15, **kw)
        seen.setdefault((method, path.split("?")[0], r.status_code), 0)
        return r

    for path in openapi_get_paths():
        call("GET", path)
    tok = make_token()
    # users: create (plain and keyed, replayed and reused), read (+304), list
    # with a cursor, update (+412), delete, and the errors
    users = []
    for i in range(3):
        r = call("POST", "/v1/users", tok, json={"email": unique_email("sys"), "name": f"S {i}"})
        assert r.status_code == 201, r.text
        users.append(r.json())
    key = str(uuid.uuid4())
    body = {"email": unique_email("sys-idem"), "name": "Idem"}
    for _ in range(2):
        r = call("POST", "/v1/users", tok, json=body, headers={"Idempotency-Key": key})
        assert r.status_code == 201, r.text
    r = call("POST", "/v1/users", tok, json={"email": unique_email(), "name": "Other"},
             headers={"Idempotency-Key": key})
    assert r.status_code == 422, r.text
    uid = users[0]["id"]
    for _ in range(3):  # the second read comes from the Redis cache
        r = call("GET", f"/v1/users/{uid}", tok)
        assert r.status_code == 200, r.text
    etag = r.headers["ETag"]
    assert call("GET", f"/v1/users/{uid}", tok, headers={"If-None-Match": etag}).status_code == 304
    r = call("GET", "/v1/users?limit=2", tok)
    assert r.status_code == 200, r.text
    nxt = r.json()["meta"]["nextCursor"]
    if nxt:
        assert call("GET", f"/v1/users?limit=2&cursor={nxt}", tok).status_code == 200
    assert call("PATCH", f"/v1/users/{uid}", tok, json={"name": "Renamed"},
                headers={"If-Match": etag}).status_code == 200
    assert call("PATCH", f"/v1/users/{uid}", tok, json={"name": "Stale"},
                headers={"If-Match": etag}).status_code == 412
    assert call("DELETE", f"/v1/users/{users[1]['id']}", tok).status_code == 204
    assert call("GET", f"/v1/users/{users[1]['id']}", tok).status_code == 404
    assert call("GET", "/v1/users").status_code == 401
    assert call("POST", "/v1/users", tok, data=b"{not json",
                headers={"Content-Type": "application/json"}).status_code == 400
    assert call("POST", "/v1/users", tok, json={"email": "nope"}).status_code == 422
    assert call("PUT", "/v1/users", tok).status_code == 405
    assert call("GET", "/no/such/route").status_code == 404
    big = b"x" * (2 * 1024 * 1024)
    try:
        r = call("POST", "/v1/users", tok, data=big, headers={"Content-Type": "application/json"})
        assert r.status_code == 413
    except requests.ConnectionError:
        pass  # the server may close before reading it all: still the 413 path
    raw, conn = raw_exchange(port, build_request("POST", "/health/live", body=b"hello!", headers=[
        ("Content-Length", "5"), ("Content-Length", "6")]))
    conn.close()
    assert raw is not None and raw.status == 400, raw
    # rate limit: one identity past its budget (RATE_LIMIT_MAX below)
    hot = make_token(sub=f"sys-hot-{uuid.uuid4().hex}")
    statuses = [call("GET", f"/v1/users/{uid}", hot).status_code for _ in range(RATE_LIMIT + 5)]
    assert 429 in statuses, statuses
    # a query stuck behind a lock: 503/504 at the deadline, cancelled by PQcancel
    locker = admin_connect(dbname=app_conninfo().get("dbname", "api"), autocommit=False)
    try:
        locker.execute("SET lock_timeout = '5s'")
        locker.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        r = call("GET", f"/v1/users/{users[2]['id']}", make_token())
        assert r.status_code in (503, 504), r.text
    finally:
        locker.rollback()
        locker.close()
    time.sleep(0.3)
    s.close()
    return seen


RATE_LIMIT = 20

# PrivateDevices=yes leaves only these device nodes.
PRIVATE_DEVICES = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty"}


def check_file_access(opens):
    """What the file-system side of the sandbox allows: ProtectSystem=strict
    (nothing opened for writing), ProtectHome=yes (nothing under /home,
    /root, /run/user), PrivateDevices=yes, ProtectProc=invisible (no other
    process's /proc entries)."""
    assert opens, "no open() calls traced?"
    pids = {pid for pid, _, _ in opens}
    for pid, path, flags in opens:
        names = set(flags.split("|"))
        if names & {"O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND"}:
            assert path == "/dev/null", f"opened {path} for writing ({flags}): ProtectSystem=strict"
        assert not re.match(r"^/(home|root|run/user)(/|$)", path), f"{path}: ProtectHome=yes"
        if path.startswith("/dev/"):
            assert path in PRIVATE_DEVICES, f"{path}: PrivateDevices=yes"
        m = re.match(r"^/proc/(\d+)(/|$)", path)
        if m:
            assert int(m.group(1)) in pids, f"{path}: another process (ProtectProc=invisible)"


@pytest.fixture
def notify():
    d = tempfile.mkdtemp(prefix="api-notify-")
    ns = NotifySocket(os.path.join(d, "n.sock"))
    yield ns
    ns.close()
    shutil.rmtree(d, ignore_errors=True)


def test_every_syscall_and_socket_family_is_allowed_by_the_unit(tmp_path, notify):
    assert RELEASE_BIN.is_file(), f"{RELEASE_BIN} is missing (make build/api; make test builds it)"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = server_env({
        # A host name for Redis: name resolution (nss, /etc/hosts) is a path too.
        "PORT": port, "DATABASE_URL": DATABASE_URL,
        "REDIS_URL": REDIS_URL.replace("//127.0.0.1:", "//localhost:"),
        "JWT_SECRET": JWT_SECRET, "CURSOR_SECRET": CURSOR_SECRET,
        "RATE_LIMIT_MAX": RATE_LIMIT, "RATE_LIMIT_WINDOW_S": 60,
        "REQUEST_TIMEOUT_MS": 1000, "SHUTDOWN_GRACE_MS": 1000, "API_DEBUG_ROUTES": 1,
        "NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": 1_000_000,
        "JWT_JWKS_FILE": None, "JWT_ISSUER": None, "JWT_AUDIENCE": None,
    })
    serve_trace = tmp_path / "serve.strace"
    with open(tmp_path / "stdout.log", "wb") as out, open(tmp_path / "stderr.log", "wb") as err:
        proc = subprocess.Popen(strace_cmd(serve_trace, "serve"), env=env, cwd=REPO_ROOT,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                start_new_session=True)
    try:
        wait_ready(url, proc)
        child = traced_child(proc.pid)
        notify.wait_for("READY=1", 5)
        workload(url, port)
        notify.wait_for("WATCHDOG=1", 3)
        # Shutdown with a request in flight that outlives the grace: the
        # drain, the abort and the pools' and threads' ends.
        held = Background(lambda: get(port, "/debug/sleep?ms=5000", timeout=10))
        time.sleep(0.3)
        os.kill(child, signal.SIGTERM)
        rc = proc.wait(timeout=30)
        held.join(10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    stderr = (tmp_path / "stderr.log").read_text(errors="replace")
    assert rc == 0, f"traced server exited with {rc}\n{stderr[-2000:]}"
    assert notify.times("STOPPING=1"), notify.snapshot()
    opens = []
    calls, families = parse_strace(serve_trace, opens)

    migrate_trace = tmp_path / "migrate.strace"
    migration_url = os.environ.get("DATABASE_MIGRATION_URL") or DATABASE_URL
    menv = server_env({"DATABASE_URL": DATABASE_URL,
                       "DATABASE_MIGRATION_URL": migration_url.replace("@127.0.0.1:", "@localhost:")})
    r = subprocess.run(strace_cmd(migrate_trace, "migrate"), env=menv, cwd=REPO_ROOT,
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"api migrate under strace failed:\n{r.stderr[-2000:]}"
    mcalls, mfamilies = parse_strace(migrate_trace, opens)
    check_file_access(opens)

    for unit, used, fams in ((UNIT, calls, families), (MIGRATE_UNIT, mcalls, mfamilies)):
        allowed = allowed_syscalls(unit)
        missing = sorted(used - allowed)
        assert not missing, (f"{unit.name}: SystemCallFilter= does not allow {missing} "
                             f"(used: {sorted(used)})")
        permitted = set(read_unit(unit)["RestrictAddressFamilies"][-1].split())
        assert fams and fams <= permitted, \
            f"{unit.name}: RestrictAddressFamilies={sorted(permitted)} misses {sorted(fams - permitted)}"
    print(f"serve: {len(calls)} system calls, families {sorted(families)}; "
          f"migrate: {len(mcalls)} system calls")


def test_the_filter_check_can_fail(tmp_path):
    # The comparison above is only as good as the expansion: what the unit
    # denies must be missing from the allowed set, what it needs present.
    allowed = allowed_syscalls(UNIT)
    assert {"accept4", "epoll_wait", "connect", "sendmsg", "clone3", "execve"} <= allowed
    assert not {"setuid", "reboot", "setrlimit", "sched_setaffinity", "mount"} & allowed
    narrower = tmp_path / "narrow.service"
    narrower.write_text(UNIT.read_text() + "\n[Service]\nSystemCallFilter=~@network-io\n")
    assert "connect" not in allowed_syscalls(narrower)
    sample = tmp_path / "sample.strace"
    sample.write_text(
        "101   socket(AF_INET6, SOCK_STREAM, IPPROTO_TCP) = 3\n"
        "% time     seconds  usecs/call     calls    errors syscall\n"
        "------ ----------- ----------- --------- --------- ----------------\n"
        " 60.00    0.000060          30         2           epoll_wait\n"
        " 40.00    0.000040          40         1         1 connect\n"
        "------ ----------- ----------- --------- --------- ----------------\n"
        "100.00    0.000100          33         3         1 total\n")
    assert parse_strace(sample) == ({"epoll_wait", "connect"}, {"AF_INET6"})
    sample.write_text(
        '101   openat(AT_FDCWD, "/etc/ssl/openssl.cnf", O_RDONLY) = 3\n'
        '102   openat(AT_FDCWD, "/var/lib/x", O_WRONLY|O_CREAT|O_CLOEXEC, 0600 <unfinished ...>\n'
        "% time     seconds  usecs/call     calls    errors syscall\n"
        " 100.00    0.000060          30         2           openat\n")
    opens = []
    parse_strace(sample, opens)
    assert opens == [(101, "/etc/ssl/openssl.cnf", "O_RDONLY"),
                     (102, "/var/lib/x", "O_WRONLY|O_CREAT|O_CLOEXEC")]
    check_file_access(opens[:1])
    for bad in (opens, [(101, "/home/u/.pgpass", "O_RDONLY")], [(101, "/dev/sda", "O_RDONLY")],
                [(101, "/proc/1/status", "O_RDONLY")]):
        with pytest.raises(AssertionError):
            check_file_access(bad)
