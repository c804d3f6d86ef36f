"""Secure defaults: the headers every response carries (nosniff; no-store
on errors; no Server header), request-smuggling framing with bare-LF line
endings, and passwords in DATABASE_URL / REDIS_URL / DATABASE_MIGRATION_URL
never showing in logs or error messages."""

import os
import uuid

import pytest

from harness import RawConn, build_request, chunked_body, free_port, get, run_cli
from users_support import Client, make_token, random_uuid7, requires_db, start_users_server, users_env

pytestmark = requires_db


@pytest.fixture(scope="module")
def srv(module_server):
    return start_users_server(module_server)


def _raw(srv, data, head=False):
    with RawConn(srv.port) as c:
        c.send(data)
        return c.read_response(head=head)


def _responses(srv):
    """One response of every kind: ours (2xx, 3xx, 4xx, 5xx-free), h2o's own
    errors (rewritten by the problem filter), HEAD."""
    tok = make_token()
    auth = [("Authorization", f"Bearer {tok}")]
    c = Client(srv)
    try:
        user = c.create_user()
        etag = c.get(f"/v1/users/{user['id']}").headers["ETag"]
    finally:
        c.close()
    big = b"x" * (1024 * 1024 + 10)
    return {
        "200-live": _raw(srv, build_request("GET", "/health/live")),
        "200-ready": _raw(srv, build_request("GET", "/health/ready")),
        "200-openapi": _raw(srv, build_request("GET", "/openapi.json")),
        "200-user": _raw(srv, build_request("GET", f"/v1/users/{user['id']}", headers=auth)),
        "201-create": _raw(srv, build_request("POST", "/v1/users", headers=auth + [("Content-Type", "application/json")],
                                              body=f'{{"email":"{uuid.uuid4().hex}@x.co","name":"h"}}'.encode())),
        "304-user": _raw(srv, build_request("GET", f"/v1/users/{user['id']}", headers=auth + [("If-None-Match", etag)])),
        "head-live": _raw(srv, build_request("HEAD", "/health/live"), head=True),
        "401": _raw(srv, build_request("GET", "/v1/users")),
        "403": _raw(srv, build_request("GET", "/v1/users", headers=[("Authorization",
                                                                     f"Bearer {make_token(scope='users:write')}")])),
        "404": _raw(srv, build_request("GET", "/nope")),
        "404-user": _raw(srv, build_request("GET", f"/v1/users/{random_uuid7()}", headers=auth)),
        "405": _raw(srv, build_request("PUT", "/v1/users", headers=auth)),
        "413": _raw(srv, build_request("POST", "/health/live", body=big)),
        "400-h2o-chunked": _raw(srv, build_request("POST", "/health/live", headers=[("Transfer-Encoding", "chunked")])
                                + b"zz\r\nhello\r\n0\r\n\r\n"),
        "413-h2o-chunked": _raw(srv, build_request("POST", "/health/live", headers=[("Transfer-Encoding", "chunked")])
                                + chunked_body(big, 65536)),
    }


def test_security_headers_on_every_response(srv):
    for name, r in _responses(srv).items():
        assert r is not None, f"{name}: no response"
        assert r.header_all("x-content-type-options") == ["nosniff"], f"{name}: {r!r}"
        assert r.header_all("server") == [], f"{name}: Server header {r.header_all('server')}"
        if r.status >= 400:
            assert r.header_all("cache-control") == ["no-store"], f"{name}: {r.header_all('cache-control')}"
        else:
            assert "no-store" not in (r.header("cache-control") or ""), f"{name}: {r!r}"


# ---- request smuggling with bare-LF heads -----------------------------------------------

SMUGGLING = {
    "cl-te-bare-lf": b"POST /health/live HTTP/1.1\nHost: x\nContent-Length: 5\nTransfer-Encoding: chunked\n\n0\r\n\r\n",
    "te-cl-bare-lf": b"POST /health/live HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\nContent-Length: 5\n\n0\r\n\r\n",
    "two-cl-bare-lf": b"POST /health/live HTTP/1.1\nHost: x\nContent-Length: 5\nContent-Length: 6\n\nhello!",
    "mixed-endings": b"POST /health/live HTTP/1.1\r\nHost: x\r\nContent-Length: 5\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "lf-then-crlf-end": b"POST /health/live HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\nContent-Length: 5\n\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("kind", list(SMUGGLING))
def test_smuggling_shapes_with_bare_lf_are_400_and_close(srv, kind):
    with RawConn(srv.port) as c:
        c.send(SMUGGLING[kind])
        r = c.read_response()
        assert r is not None and r.status == 400, r
        assert c.wait_closed(2), "connection kept open after a smuggling-shaped request"
    assert get(srv.port, "/health/live").status == 200


def test_plain_bare_lf_request_still_works(srv):
    r = _raw(srv, b"GET /health/live HTTP/1.1\nHost: x\n\n")
    assert r is not None and r.status == 200, r
    r = _raw(srv, b"POST /health/live HTTP/1.1\nHost: x\nContent-Length: 2\n\nok")
    assert r is not None and r.status in (200, 405), r


# ---- passwords never in logs or errors ------------------------------------------------------

def _secret():
    return f"Pw{uuid.uuid4().hex}"


def _assert_hidden(secret, *texts):
    for t in texts:
        assert secret not in t, f"password in output:\n{t[-3000:]}"
        assert secret[2:14] not in t, f"part of the password in output:\n{t[-3000:]}"


def test_database_password_not_logged_on_auth_failure(server):
    pw = _secret()
    url = f"postgresql://api_app:{pw}@127.0.0.1:{os.environ['PGPORT']}/api"
    srv = start_users_server(server, wait_ready=False, DATABASE_URL=url)
    srv.wait_for_log(lambda o: "password authentication failed" in o.get("msg", ""), timeout=10)
    _assert_hidden(pw, srv.stdout_text(), srv.stderr_text())


def test_database_password_not_logged_when_refused(server):
    pw = _secret()
    url = f"host=127.0.0.1 port={free_port()} dbname=api user=api_app password={pw}"
    srv = start_users_server(server, wait_ready=False, DATABASE_URL=url)
    srv.wait_for_log(lambda o: "connection lost or refused" in o.get("msg", ""), timeout=10)
    _assert_hidden(pw, srv.stdout_text(), srv.stderr_text())


@pytest.mark.parametrize("shape", [
    "postgresql://api_app:{pw}%zz@127.0.0.1/api",     # libpq quotes the bad %-escape
    "postgresql://api_app:{pw}@[::1/api",             # libpq quotes the whole URI
    "host=127.0.0.1 password={pw} {pw}",              # libpq quotes the stray word
])
def test_malformed_database_url_error_hides_the_password(shape):
    pw = _secret()
    for var in ("DATABASE_URL", "DATABASE_MIGRATION_URL"):
        for args in (["serve"], ["migrate"]):
            r = run_cli(args, env=users_env(**{var: shape.format(pw=pw)}))
            assert r.returncode == 2, (args, var, r.stdout, r.stderr)
            assert var in r.stderr, r.stderr
            _assert_hidden(pw, r.stdout, r.stderr)


def test_migrate_error_hides_the_owner_password():
    pw = _secret()
    env = users_env(DATABASE_MIGRATION_URL=f"postgresql://api_owner:{pw}@127.0.0.1:{os.environ['PGPORT']}/api")
    r = run_cli(["migrate"], env=env)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "password authentication failed" in r.stdout + r.stderr
    _assert_hidden(pw, r.stdout, r.stderr)


@pytest.mark.parametrize("shape", [
    "redis://:{pw}@127.0.0.1:notaport/0",
    "redis://user:{pw}@127.0.0.1:6379/x",
    "rediss://:{pw}@127.0.0.1:6379/0",
    "redis://:{pw}@part@127.0.0.1:x/0",
])
def test_malformed_redis_url_error_hides_the_password(shape):
    pw = _secret()
    r = run_cli(["serve"], env=users_env(REDIS_URL=shape.format(pw=pw)))
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "REDIS_URL" in r.stdout + r.stderr, (r.stdout, r.stderr)
    _assert_hidden(pw, r.stdout, r.stderr)


def test_redis_password_not_logged_when_auth_fails(server):
    # The test Redis has no password: AUTH fails, and the server says so.
    pw = _secret()
    srv = start_users_server(server, wait_ready=False,
                             REDIS_URL=f"redis://:{pw}@127.0.0.1:{os.environ['REDIS_PORT']}/0")
    srv.wait_for_log(lambda o: "AUTH" in o.get("msg", ""), timeout=10)
    _assert_hidden(pw, srv.stdout_text(), srv.stderr_text())

