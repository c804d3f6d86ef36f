"""Helpers for the black-box tests of the users API (tests/integration/test_users_*.py).

What lives here:

- the environment a users-API server gets (database, JWT and cursor secrets,
  no Redis) and `requires_db`, the skip for runs without PostgreSQL;
- HS256 JWTs minted with hmac/hashlib/base64 (no PyJWT), plus the broken
  tokens the auth tests need;
- `Client`, a thin requests wrapper that stays on loopback and sends JSON
  bodies byte for byte as the test wrote them;
- validators built from openapi/openapi.json, so every 2xx body is checked
  against the published User / UserPage schemas and every error body against
  Problem; and the assertions built on them (`assert_user`, `assert_problem_response`).

Servers are started with the `server` / `module_server` factories of
conftest.py; nothing here knows the server's internals.
"""

import base64
import contextlib
import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests
from jsonschema import Draft202012Validator, FormatChecker

from harness import REPO_ROOT, media_type

# ---- environment -------------------------------------------------------------

DATABASE_URL = os.environ.get("DATABASE_URL", "")
DATABASE_ADMIN_URL = os.environ.get("DATABASE_ADMIN_URL", "")
SERVICES_DIR = os.environ.get("SERVICES_DIR", "")

requires_db = pytest.mark.skipif(
    not DATABASE_URL,
    reason="DATABASE_URL is not set: the users API tests need PostgreSQL "
           "(run scripts/test.sh, or `source DIR/env` after `scripts/services.sh start DIR` "
           "and `$API_BIN migrate`)")

# Test-only secrets, both over the 32-byte minimum the server enforces.
JWT_SECRET = "users-api-integration-tests-jwt-secret-0123456789abcdef"
CURSOR_SECRET = "users-api-integration-tests-cursor-secret-0123456789abcd"
OTHER_CURSOR_SECRET = "another-deployment-with-its-own-cursor-secret-0123456789"

# High enough that no test of this suite meets the rate limiter by accident;
# the value is asserted in X-RateLimit-Limit.
RATE_LIMIT_MAX = 100000

ALL_SCOPES = "users:read users:write"


def users_env(**overrides):
    """Environment for a users-API server: the test database, our secrets and
    no Redis. Inherited auth settings that would change what a token means are
    dropped (None deletes a variable)."""
    env = {
        "DATABASE_URL": DATABASE_URL,
        "JWT_SECRET": JWT_SECRET,
        "CURSOR_SECRET": CURSOR_SECRET,
        "REDIS_URL": "",
        "RATE_LIMIT_MAX": str(RATE_LIMIT_MAX),
        "RATE_LIMIT_WINDOW_S": "60",
        "JWT_JWKS_FILE": None,
        "JWT_ISSUER": None,
        "JWT_AUDIENCE": None,
    }
    env.update(overrides)
    return env


def wait_until(predicate, timeout, interval=0.1):
    """The first truthy value of predicate(), or its last value at timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def start_users_server(factory, wait_ready=True, prefix=(), **env_overrides):
    """Starts a server with users_env(**env_overrides) through a conftest
    factory (`server` or `module_server`) and, like a load balancer, sends it
    nothing until GET /health/ready answers 200 (at most 10 s). prefix: a
    command the server runs under (e.g. prlimit)."""
    srv = factory(env=users_env(**env_overrides), prefix=prefix)
    if wait_ready:
        wait_ready_200(srv)
    return srv


def wait_ready_200(srv, timeout=10.0):
    deadline = time.monotonic() + timeout
    last = None
    with requests.Session() as s:
        s.trust_env = False
        while time.monotonic() < deadline:
            srv.assert_running()
            try:
                r = s.get(srv.url + "/health/ready", timeout=2)
                if r.status_code == 200:
                    return
                last = f"{r.status_code} {r.text[:200]}"
            except requests.RequestException as e:
                last = repr(e)
            time.sleep(0.05)
    raise AssertionError(f"/health/ready not 200 within {timeout}s (last: {last})\n"
                         + srv.describe())


# ---- JWTs --------------------------------------------------------------------

def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _json_b64(obj):
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def make_token(scope=ALL_SCOPES, sub=None, exp_in=300, nbf_in=None, iat_in=0,
               alg="HS256", secret=JWT_SECRET, extra_claims=None, header=None):
    """A signed JWT. scope=None leaves the claim out; exp_in/nbf_in/iat_in are
    seconds from now (None leaves the claim out). alg is HS256 or HS512
    (signed with `secret`), or "none" (unsigned, empty signature)."""
    now = int(time.time())
    claims = {"sub": sub or f"test-{uuid.uuid4()}"}
    if scope is not None:
        claims["scope"] = scope
    if iat_in is not None:
        claims["iat"] = now + iat_in
    if exp_in is not None:
        claims["exp"] = now + exp_in
    if nbf_in is not None:
        claims["nbf"] = now + nbf_in
    claims.update(extra_claims or {})
    hdr = {"alg": alg, "typ": "JWT"}
    hdr.update(header or {})
    signing_input = f"{_json_b64(hdr)}.{_json_b64(claims)}"
    if alg == "none":
        return signing_input + "."
    digest = {"HS256": hashlib.sha256, "HS512": hashlib.sha512}[alg]
    sig = hmac.new(secret.encode(), signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64url(sig)}"


def token_read_only(**kw):
    return make_token(scope="users:read", **kw)


def token_write_only(**kw):
    return make_token(scope="users:write", **kw)


def token_without_scope(**kw):
    return make_token(scope=None, **kw)


def token_expired():
    # Two minutes past: beyond any sane clock-skew allowance.
    return make_token(exp_in=-120, iat_in=-600)


def token_not_yet_valid():
    return make_token(nbf_in=120)


def token_bad_signature():
    return make_token(secret="not-the-server-secret-but-just-as-long-0123456789")


def token_tampered():
    """A validly signed token whose claims were changed afterwards."""
    head, _, sig = make_token(scope="users:read").split(".")
    claims = _json_b64({"sub": "intruder", "scope": ALL_SCOPES,
                        "exp": int(time.time()) + 300, "iat": int(time.time())})
    return f"{head}.{claims}.{sig}"


def token_alg_none():
    return make_token(alg="none")


def token_hs512():
    # Signed correctly, with the right secret, but with an algorithm the
    # server does not accept for that key: must not be accepted.
    return make_token(alg="HS512")


def bearer(token):
    return f"Bearer {token}"


# Authorization header values that must all be rejected with 401.
BAD_AUTHORIZATIONS = {
    "expired": lambda: bearer(token_expired()),
    "nbf-in-future": lambda: bearer(token_not_yet_valid()),
    "bad-signature": lambda: bearer(token_bad_signature()),
    "tampered-claims": lambda: bearer(token_tampered()),
    "alg-none": lambda: bearer(token_alg_none()),
    "alg-hs512": lambda: bearer(token_hs512()),
    "garbage": lambda: "Bearer this-is-not-a-jwt",
    "garbage-three-parts": lambda: "Bearer e30.e30.e30",
    "empty-bearer": lambda: "Bearer ",
    "basic-scheme": lambda: "Basic " + base64.b64encode(b"admin:admin").decode(),
    "token-without-scheme": lambda: make_token(),
}


# ---- HTTP client -------------------------------------------------------------

_DEFAULT = object()


class Client:
    """Requests to one server, on loopback only (proxy variables ignored).

    token: the default bearer token (None: no Authorization header).
    Every call returns the requests.Response; nothing raises on 4xx/5xx."""

    def __init__(self, srv, token=_DEFAULT):
        self.srv = srv
        self.url = srv.url
        self.token = make_token() if token is _DEFAULT else token
        self.session = requests.Session()
        self.session.trust_env = False

    def close(self):
        self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def request(self, method, path, *, json_body=_DEFAULT, data=None, headers=None,
                params=None, token=_DEFAULT, content_type=_DEFAULT, timeout=10):
        hdrs = {}
        tok = self.token if token is _DEFAULT else token
        if tok is not None:
            hdrs["Authorization"] = bearer(tok)
        if json_body is not _DEFAULT:
            data = json.dumps(json_body, ensure_ascii=False).encode("utf-8")
            if content_type is _DEFAULT:
                content_type = "application/json"
        if content_type is not _DEFAULT and content_type is not None:
            hdrs["Content-Type"] = content_type
        hdrs.update(headers or {})
        # requests would add "Content-Type: application/json" only for json=;
        # with data= bytes it adds nothing, so a missing type stays missing.
        return self.session.request(method, self.url + path, data=data, headers=hdrs,
                                    params=params, timeout=timeout, allow_redirects=False)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def patch(self, path, **kw):
        return self.request("PATCH", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    # -- users shortcuts --
    def create_user(self, email=None, name=None, **kw):
        """POST /v1/users with a unique email unless given; asserts 201 and
        returns the validated user."""
        body = {"email": email or unique_email(), "name": name or "Test User"}
        r = self.post("/v1/users", json_body=body, **kw)
        return assert_created(self, r)

    def create_users(self, n, prefix="bulk"):
        return [self.create_user(email=unique_email(prefix), name=f"{prefix} {i}")
                for i in range(n)]


def unique_email(prefix="user"):
    return f"{prefix}-{uuid.uuid4().hex}@example.com"


def random_uuid7():
    """A well-formed UUID v7 that no server has issued (random bits)."""
    ms = int(time.time() * 1000)
    rand_a = int.from_bytes(os.urandom(2), "big") & 0xFFF
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    return str(uuid.UUID(int=value))


# ---- the OpenAPI document as the source of the schemas -------------------------

OPENAPI_PATH = REPO_ROOT / "openapi" / "openapi.json"


def load_openapi():
    with open(OPENAPI_PATH, encoding="utf-8") as f:
        return json.load(f)


OPENAPI = load_openapi()
_FORMATS = FormatChecker()


def schema_validator(name, doc=None):
    """A Draft 2020-12 validator for #/components/schemas/<name> whose
    internal $refs resolve inside the OpenAPI document. Works with jsonschema
    4.10 (RefResolver) and with releases that have `referencing`."""
    doc = OPENAPI if doc is None else doc
    try:
        from referencing import Registry
        from referencing.jsonschema import DRAFT202012
    except ImportError:
        from jsonschema import RefResolver
        return Draft202012Validator({"$ref": f"#/components/schemas/{name}"},
                                    resolver=RefResolver.from_schema(doc),
                                    format_checker=_FORMATS)
    base = "urn:api:openapi"
    registry = Registry().with_resource(base, DRAFT202012.create_resource(doc))
    return Draft202012Validator({"$ref": f"{base}#/components/schemas/{name}"},
                                registry=registry, format_checker=_FORMATS)


_VALIDATORS = {}


def validate_schema(name, instance):
    v = _VALIDATORS.get(name)
    if v is None:
        v = _VALIDATORS[name] = schema_validator(name)
    errors = sorted(v.iter_errors(instance), key=lambda e: list(e.absolute_path))
    assert not errors, (f"body does not match #/components/schemas/{name}:\n  "
                        + "\n  ".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)
                        + f"\nbody: {instance!r}")


# ---- assertions ----------------------------------------------------------------

UUID_V7_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
ETAG_RE = re.compile(r'^"[0-9]+"$')
RFC3339_UTC_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|\+00:00|-00:00)$")

PROBLEM_SLUG_BY_STATUS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    412: "precondition-failed",
    413: "body-too-large",
    415: "unsupported-media-type",
    422: "validation-failed",
    429: "quota-exceeded",
}


def describe(r):
    body = r.content[:600]
    return (f"{r.request.method} {r.request.url} -> {r.status_code}\n"
            f"headers: {dict(r.headers)!r}\nbody: {body!r}")


def parse_rfc3339_utc(value):
    """A timezone-aware datetime from an RFC 3339 UTC timestamp; fails the
    test on anything else (a local offset, no seconds, a space for T)."""
    assert isinstance(value, str), value
    m = RFC3339_UTC_RE.match(value)
    assert m, f"not an RFC 3339 UTC date-time: {value!r}"
    y, mo, d, h, mi, s, frac, _ = m.groups()
    micro = int((frac or "0").ljust(6, "0")[:6])
    return datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), micro, tzinfo=timezone.utc)


def uuid7_time(value):
    """The creation time embedded in a UUID v7 (its first 48 bits, in ms)."""
    ms = uuid.UUID(value).int >> 80
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def assert_uuid_v7(value, fresh=True):
    """A canonical UUID v7; fresh: its timestamp is close to our clock (a
    user just created - listed ones may be as old as the test run)."""
    assert isinstance(value, str) and UUID_V7_RE.match(value), \
        f"not a lower-case canonical UUID v7: {value!r}"
    u = uuid.UUID(value)
    assert u.version == 7, value
    assert u.variant == uuid.RFC_4122, value  # variant bits 10xx
    assert str(u) == value
    if fresh:
        skew = abs(uuid7_time(value) - datetime.now(timezone.utc))
        assert skew < timedelta(minutes=5), f"UUID v7 timestamp off by {skew}: {value}"


def assert_request_id(r):
    assert r.headers.get("X-Request-Id"), f"no X-Request-Id\n{describe(r)}"


def assert_json_response(r, status):
    assert r.status_code == status, f"expected {status}\n{describe(r)}"
    assert media_type(r.headers.get("Content-Type")) == "application/json", describe(r)
    assert_request_id(r)
    try:
        return r.json()
    except ValueError:
        raise AssertionError(f"body is not JSON\n{describe(r)}") from None


def check_user(user):
    """Schema plus the rules a schema cannot say; returns the user."""
    validate_schema("User", user)
    assert_uuid_v7(user["id"], fresh=False)  # listed users may be as old as the run
    created = parse_rfc3339_utc(user["createdAt"])
    updated = parse_rfc3339_utc(user["updatedAt"])
    assert updated >= created, user
    now = datetime.now(timezone.utc)
    assert abs(created - now) < timedelta(days=1), f"createdAt far from now: {user}"
    assert user["email"] == user["email"].lower(), f"email not lower-cased: {user}"
    return user


def assert_user(r, status=200):
    """A 2xx JSON response whose body is a valid User; returns the user."""
    return check_user(assert_json_response(r, status))


def assert_etag(r):
    etag = r.headers.get("ETag")
    assert etag is not None and ETAG_RE.match(etag), \
        f"expected a strong ETag \"<n>\", got {etag!r}\n{describe(r)}"
    return etag


def assert_created(client, r):
    """201 Created with Location and ETag; returns the user."""
    user = assert_user(r, 201)
    assert_uuid_v7(user["id"], fresh=True)  # made just now
    # The server makes the id and the timestamps together: the id's
    # embedded time is createdAt, to the millisecond.
    created = parse_rfc3339_utc(user["createdAt"])
    assert uuid7_time(user["id"]) == created.replace(microsecond=created.microsecond // 1000 * 1000), \
        f"the id's time {uuid7_time(user['id'])} is not createdAt: {user}"
    loc = r.headers.get("Location")
    assert loc, f"201 without Location\n{describe(r)}"
    assert urljoin(client.url + "/", loc) == f"{client.url}/v1/users/{user['id']}", \
        f"Location {loc!r} does not name /v1/users/{user['id']}"
    user["_etag"] = assert_etag(r)
    return user


def strip_private(user):
    """The user without the helper's own keys (such as _etag)."""
    return {k: v for k, v in user.items() if not k.startswith("_")}


def assert_page(r):
    page = assert_json_response(r, 200)
    validate_schema("UserPage", page)
    for u in page["data"]:
        check_user(u)
    assert len(page["data"]) <= page["meta"]["pageSize"], page["meta"]
    return page


def assert_problem_response(r, status, slug=_DEFAULT, fields=None, need_errors=_DEFAULT):
    """An RFC 9457 problem with this status, valid against #/components/schemas/Problem.

    slug: the expected type slug (default: the usual one for the status;
    None: any). fields: names that must appear among errors[].field.
    need_errors: whether a non-empty `errors` list is required (default: for
    400 and 422, which the contract says always carry one)."""
    assert r.status_code == status, f"expected {status}\n{describe(r)}"
    assert media_type(r.headers.get("Content-Type")) == "application/problem+json", describe(r)
    assert_request_id(r)
    try:
        body = r.json()
    except ValueError:
        raise AssertionError(f"problem body is not JSON\n{describe(r)}") from None
    validate_schema("Problem", body)
    assert body["status"] == status, body
    if slug is _DEFAULT:
        slug = PROBLEM_SLUG_BY_STATUS.get(status)
    if slug is not None:
        assert body["type"] == f"/problems/{slug}", f"expected type /problems/{slug}: {body}"
    if need_errors is _DEFAULT:
        need_errors = status in (400, 422)
    if need_errors:
        assert isinstance(body.get("errors"), list) and body["errors"], \
            f"a {status} must list the offending fields in `errors`: {body}"
    if fields:
        got = [e["field"] for e in body.get("errors", [])]
        for f in fields:
            assert f in got, f"errors do not name {f!r}: {body}"
    return body


def assert_status_in(r, statuses):
    assert r.status_code in statuses, f"expected one of {statuses}\n{describe(r)}"


# ---- control of the test PostgreSQL (test_users_pg_control.py) ----------------------

SERVICES_SH = REPO_ROOT / "scripts" / "services.sh"

requires_services = pytest.mark.skipif(
    not (SERVICES_DIR and DATABASE_URL and DATABASE_ADMIN_URL),
    reason="SERVICES_DIR, DATABASE_URL and DATABASE_ADMIN_URL must be set (scripts/test.sh "
           "exports them): these tests lock, stop and restart the test PostgreSQL")


def app_conninfo():
    """The app role's connection parameters from DATABASE_URL (user, dbname, ...)."""
    from psycopg.conninfo import conninfo_to_dict
    return conninfo_to_dict(DATABASE_URL)


def admin_connect(dbname=None, autocommit=True):
    """A superuser connection (DATABASE_ADMIN_URL, over the cluster's unix
    socket); dbname=None keeps the admin URL's database."""
    import psycopg
    kw = {"autocommit": autocommit, "connect_timeout": 5}
    if dbname:
        kw["dbname"] = dbname
    return psycopg.connect(DATABASE_ADMIN_URL, **kw)


def app_dbname():
    return app_conninfo().get("dbname", "api")


def count_users_with_email(email):
    """The ground truth: rows in the database with this (lower-cased) email."""
    with admin_connect(dbname=app_dbname()) as conn:
        return conn.execute("SELECT count(*) FROM users WHERE email = %s",
                            (email.lower(),)).fetchone()[0]


def services(cmd, timeout=90):
    """Runs `scripts/services.sh CMD $SERVICES_DIR`; fails the test on error."""
    r = subprocess.run([str(SERVICES_SH), cmd, SERVICES_DIR], cwd=REPO_ROOT,
                       stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, f"services.sh {cmd} failed ({r.returncode}): {r.stderr[-2000:]}"


# ---- freezing a dependency (SIGSTOP: accepts connections, answers nothing) ------

def _children(pid):
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def pg_processes():
    """The test PostgreSQL's postmaster and every process it has forked (the
    cluster of $SERVICES_DIR only: nothing else is touched)."""
    data = Path(SERVICES_DIR, "pg").resolve() / "data" / "postmaster.pid"
    pm = int(data.read_text().split()[0])
    return [pm, *_children(pm)]


def redis_process():
    return int(Path(SERVICES_DIR, "redis", "redis.pid").read_text().strip())


@contextlib.contextmanager
def frozen(pids):
    """The processes are stopped (SIGSTOP) inside the block - like a hung
    host, the kernel still accepts their connections - and always continued
    when it ends."""
    pids = list(pids)
    try:
        for p in pids:
            os.kill(p, signal.SIGSTOP)
        yield time.monotonic()
    finally:
        for p in pids:
            try:
                os.kill(p, signal.SIGCONT)
            except ProcessLookupError:
                pass
