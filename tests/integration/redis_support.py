"""Helpers for the black-box tests of the Redis-backed patterns
(tests/integration/test_redis_*.py): rate limiting, degraded mode, the user
cache and idempotency keys.

Builds on users_support (servers, tokens, Client, assertions). What is added:

- `requires_redis` / `requires_service_control`: skips with a reason when the
  run has no Redis, or cannot stop and restart the test services;
- `start_redis_server`: a users-API server that really uses $REDIS_URL (the
  users_support default is REDIS_URL='', i.e. no Redis);
- rate-limit header parsing that checks the five headers against each other;
- `SourceConn` / `raw_request`: requests from another loopback address
  (127.x.y.z), so an address-based budget is never shared with other tests;
- `redis_stopped()` / `pg_stopped()`: stop a service for the body of a
  `with`, and always restart it (and wait until it answers) afterwards;
- `count_users_with_email`: the ground truth from the database.
"""

import contextlib
import os
import random
import re
import socket
import subprocess
import time
import uuid

import pytest
import requests

from harness import LOOPBACK, RawConn, build_request
from users_support import (DATABASE_ADMIN_URL, DATABASE_URL, SERVICES_DIR, admin_connect,  # noqa: F401
                           app_conninfo, app_dbname, bearer, count_users_with_email, describe,
                           services, start_users_server, wait_ready_200, wait_until)

REDIS_URL = os.environ.get("REDIS_URL", "")
REDIS_PORT = os.environ.get("REDIS_PORT", "")

requires_redis = pytest.mark.skipif(
    not (REDIS_URL and DATABASE_URL and DATABASE_ADMIN_URL),
    reason="REDIS_URL, DATABASE_URL and DATABASE_ADMIN_URL must be set (scripts/test.sh "
           "exports them): these tests run servers against the test Redis and PostgreSQL")

requires_service_control = pytest.mark.skipif(
    not (REDIS_URL and REDIS_PORT and SERVICES_DIR and DATABASE_URL and DATABASE_ADMIN_URL),
    reason="REDIS_URL, REDIS_PORT, SERVICES_DIR, DATABASE_URL and DATABASE_ADMIN_URL must be "
           "set (scripts/test.sh exports them): these tests stop and restart the test "
           "Redis or PostgreSQL through scripts/services.sh")


def start_redis_server(factory, wait_ready=True, **overrides):
    """A users-API server on the test database and the test Redis.

    RATE_LIMIT_FAIL_MODE is not in the harness's list of server variables,
    so an inherited value is dropped here unless the test sets one."""
    env = {"REDIS_URL": REDIS_URL, "RATE_LIMIT_FAIL_MODE": None}
    env.update({k: (None if v is None else str(v)) for k, v in overrides.items()})
    return start_users_server(factory, wait_ready=wait_ready, **env)


def idem_key(prefix="k"):
    return f"{prefix}-{uuid.uuid4()}"


def fresh_sub(prefix="rl"):
    return f"{prefix}-{uuid.uuid4()}"


# ---- rate-limit headers -------------------------------------------------------

RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset",
                "RateLimit-Policy", "RateLimit")

_INT_RE = re.compile(r"^[0-9]+$")


def _header(r, name):
    """A header of a requests.Response or a harness RawResponse."""
    if hasattr(r, "status_code"):
        return r.headers.get(name)
    return r.header(name)


def _status(r):
    return r.status_code if hasattr(r, "status_code") else r.status


def _describe(r):
    return describe(r) if hasattr(r, "status_code") else repr(r)


def rate_state(r, limit, window):
    """Checks the five rate-limit headers of one response against each other
    and the configuration; returns (remaining, reset) as ints."""
    values = {h: _header(r, h) for h in RATE_HEADERS}
    missing = [h for h, v in values.items() if v is None]
    assert not missing, f"rate-limit headers missing: {missing}\n{_describe(r)}"
    for h in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"):
        assert _INT_RE.match(values[h]), f"{h}: {values[h]!r} is not an integer >= 0\n{_describe(r)}"
    assert int(values["X-RateLimit-Limit"]) == limit, \
        f"X-RateLimit-Limit {values['X-RateLimit-Limit']!r}, configured {limit}\n{_describe(r)}"
    remaining = int(values["X-RateLimit-Remaining"])
    reset = int(values["X-RateLimit-Reset"])
    assert remaining <= limit, _describe(r)
    assert values["RateLimit-Policy"] == f'"default";q={limit};w={window}', \
        f"RateLimit-Policy: {values['RateLimit-Policy']!r}\n{_describe(r)}"
    assert values["RateLimit"] == f'"default";r={remaining};t={reset}', \
        f"RateLimit {values['RateLimit']!r} disagrees with X-RateLimit-Remaining " \
        f"{remaining} / X-RateLimit-Reset {reset}\n{_describe(r)}"
    return remaining, reset


def assert_no_rate_headers(r):
    present = {h: _header(r, h) for h in RATE_HEADERS if _header(r, h) is not None}
    assert not present, f"rate-limit headers present although limiting is off: {present}\n" \
                        f"{_describe(r)}"


def retry_after(r, minimum=0):
    value = _header(r, "Retry-After")
    assert value is not None and _INT_RE.match(value) and int(value) >= minimum, \
        f"Retry-After {value!r}: expected an integer >= {minimum}\n{_describe(r)}"
    return int(value)


def statuses(responses):
    return [_status(r) for r in responses]


# ---- requests from other loopback addresses --------------------------------------

def fresh_loopback_address():
    """A random 127.x.y.z other than 127.0.0.1: on Linux the whole of
    127.0.0.0/8 is local, so a socket bound to it reaches the server on
    127.0.0.1 with that address as its peer."""
    while True:
        addr = f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
        if addr != LOOPBACK:
            return addr


class SourceConn(RawConn):
    """RawConn whose socket is bound to `source` before connecting."""

    def __init__(self, port, source, host=LOOPBACK, timeout=5.0):
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0))
        self.buf = b""
        self.eof = False


def raw_request(srv, method, path, source, token=None, authorization=None, timeout=5.0):
    """One request on a fresh connection from `source`; the RawResponse.
    token: a JWT sent as a bearer token; authorization: a literal header value."""
    headers = []
    if token is not None:
        headers.append(("Authorization", bearer(token)))
    elif authorization is not None:
        headers.append(("Authorization", authorization))
    headers.append(("Connection", "close"))
    with SourceConn(srv.port, source, timeout=timeout) as c:
        c.send(build_request(method, path, headers=headers))
        resp = c.read_response()
    assert resp is not None, f"{method} {path} from {source}: connection closed without a response"
    return resp


# ---- Redis and PostgreSQL control ---------------------------------------------------

def redis_ping(timeout=2.0):
    """True if the test Redis answers PING with PONG."""
    try:
        r = subprocess.run(["redis-cli", "-h", LOOPBACK, "-p", str(REDIS_PORT), "ping"],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=timeout)
    except (subprocess.TimeoutExpired, OSError):
        return False
    return r.returncode == 0 and r.stdout.strip() == "PONG"


def wait_redis_up(timeout=15.0):
    if not wait_until(redis_ping, timeout, interval=0.1):
        raise AssertionError(f"Redis on port {REDIS_PORT} did not answer PONG within {timeout}s "
                             "of redis-start: later tests will be affected")


@contextlib.contextmanager
def redis_stopped():
    """Redis is stopped inside the block and always restarted (same port,
    keys lost) and answering PING when the block ends."""
    try:
        services("redis-stop")
        assert not redis_ping(), "Redis still answers PING after redis-stop"
        yield
    finally:
        services("redis-start")
        wait_redis_up()


def pg_accepts():
    """True if PostgreSQL accepts a superuser connection and runs SELECT 1."""
    try:
        conn = admin_connect()
    except Exception:  # any connection failure means "not yet"
        return False
    try:
        conn.execute("SELECT 1")
        return True
    except Exception:
        return False
    finally:
        conn.close()


@contextlib.contextmanager
def pg_stopped(servers_to_wait=()):
    """PostgreSQL is stopped inside the block; afterwards it is restarted,
    accepts connections, and every server in servers_to_wait is ready again."""
    try:
        services("pg-stop")
        yield
    finally:
        services("pg-start")
        if not wait_until(pg_accepts, 15.0, interval=0.1):
            raise AssertionError("PostgreSQL does not accept connections 15 s after pg-start")
        for srv in servers_to_wait:
            if srv.running():
                wait_ready_200(srv, timeout=15.0)


def ready_status(srv, timeout=2.0):
    """Status of GET /health/ready on a fresh connection (None on error)."""
    try:
        with requests.Session() as s:
            s.trust_env = False
            return s.get(srv.url + "/health/ready", timeout=timeout).status_code
    except requests.RequestException:
        return None


# ---- the database as ground truth --------------------------------------------------

def etag_version(etag):
    """The version number inside a strong ETag "<n>"."""
    m = re.match(r'^"([0-9]+)"$', etag or "")
    assert m, f"not an ETag of the form \"<version>\": {etag!r}"
    return int(m.group(1))
