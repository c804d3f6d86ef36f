"""HTTP basics: health endpoints, 404/405 problems, X-Request-Id, framing,
keep-alive, the Server header, structured access logs, and h2c opt-in."""

import re
import shutil
import subprocess
import uuid

import pytest

from harness import (LOG_LEVELS, REQUEST_ID_RE, RawConn, assert_framing,
                     assert_no_server_header, assert_problem, build_request,
                     get, media_type, rget)


@pytest.fixture(scope="module")
def srv(module_server):
    return module_server()


# ---- health ------------------------------------------------------------

def test_live_returns_ok_json(srv):
    r = rget(srv.url + "/health/live", timeout=5)
    assert r.status_code == 200
    assert media_type(r.headers.get("Content-Type")) == "application/json"
    assert r.json() == {"status": "ok"}
    assert r.headers.get("X-Request-Id")


def test_ready_returns_200(srv):
    srv.wait_readiness()
    r = get(srv.port, "/health/ready")
    assert r.status == 200, r
    assert_framing(r)
    assert r.header("x-request-id")


def test_head_live(srv):
    r = get(srv.port, "/health/live", method="HEAD")
    assert r.status == 200, r
    assert r.header("x-request-id")
    assert r.header("transfer-encoding") is None, r


def test_query_string_does_not_change_the_route(srv):
    r = get(srv.port, "/health/live?probe=1")
    assert r.status == 200, r


# ---- 404 / 405 -----------------------------------------------------------

@pytest.mark.parametrize("path", [
    "/", "/nope", "/health", "/health/", "/health/livez", "/health/live/extra",
    "/Health/live", "/v0/users", "/debug/sleep?ms=1",
])
def test_unknown_path_is_404_problem(srv, path):
    r = get(srv.port, path, headers=[("X-Request-Id", "nf-1")])
    assert_problem(r, 404)
    assert_framing(r)
    assert r.header("x-request-id") == "nf-1"
    assert_no_server_header(r)


@pytest.mark.parametrize("method,path", [
    ("POST", "/health/live"), ("PUT", "/health/live"),
    ("DELETE", "/health/ready"), ("PATCH", "/health/ready"),
])
def test_wrong_method_is_405_with_allow(srv, method, path):
    r = get(srv.port, path, method=method, headers=[("X-Request-Id", "m-1")])
    assert_problem(r, 405)
    assert_framing(r)
    allow = {m.strip().upper() for m in (r.header("allow") or "").split(",") if m.strip()}
    assert {"GET", "HEAD"} <= allow, f"Allow: {r.header('allow')!r}"
    assert method not in allow, f"Allow: {r.header('allow')!r}"
    assert r.header("x-request-id") == "m-1"
    assert_no_server_header(r)


def test_405_for_post_with_body(srv):
    with RawConn(srv.port) as c:
        c.send(build_request("POST", "/health/live",
                             headers=[("Content-Type", "application/json")], body=b'{"a":1}'))
        r = c.read_response()
        assert_problem(r, 405)
        # The body was consumed: the connection is still usable.
        c.send(build_request("GET", "/health/live"))
        r2 = c.read_response()
        assert r2 is not None and r2.status == 200, r2


# ---- X-Request-Id ----------------------------------------------------------

VALID_IDS = [
    "abc",
    "a" * 128,
    "A-Za-z0-9._~:/+=-",
    str(uuid.uuid4()),
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "=",
]


@pytest.mark.parametrize("rid", VALID_IDS, ids=range(len(VALID_IDS)))
@pytest.mark.parametrize("method,path,status", [
    ("GET", "/health/live", 200), ("GET", "/nope", 404), ("POST", "/health/live", 405),
])
def test_valid_request_id_is_echoed(srv, rid, method, path, status):
    r = get(srv.port, path, method=method, headers=[("X-Request-Id", rid)])
    assert r.status == status, r
    assert r.header_all("x-request-id") == [rid], r


INVALID_IDS = [
    b"",
    b"a" * 129,
    b"has space",
    b'quo"te',
    b"it's",
    b"semi;colon",
    b"comma,sep",
    b"<script>",
    b"caf\xc3\xa9",
    b"tab\tinside",
    b"back\\slash",
]


def _assert_generated(r, sent):
    values = r.header_all("x-request-id")
    assert len(values) == 1, r
    got = values[0]
    assert got, "generated request id is empty"
    assert got.encode("latin-1") != sent, r
    # Interpretation: a generated id is itself a sane id (so it can be passed on).
    assert REQUEST_ID_RE.match(got), f"generated id {got!r} is not a sane id"
    return got


@pytest.mark.parametrize("rid", INVALID_IDS, ids=range(len(INVALID_IDS)))
def test_insane_request_id_is_replaced(srv, rid):
    r = get(srv.port, "/health/live", headers=[("X-Request-Id", rid)])
    assert r is not None and r.status == 200, r
    _assert_generated(r, rid)


def test_insane_request_id_is_replaced_on_errors(srv):
    r = get(srv.port, "/nope", headers=[("X-Request-Id", b"bad id")])
    assert_problem(r, 404)
    _assert_generated(r, b"bad id")


def test_generated_request_ids_are_unique(srv):
    seen = []
    for _ in range(40):  # fresh connections: spread over both workers
        r = get(srv.port, "/health/live")
        seen.append(_assert_generated(r, b""))
    with RawConn(srv.port) as c:  # and on one keep-alive connection
        for path in ["/health/live", "/nope"] * 10:
            c.send(build_request("GET", path))
            seen.append(_assert_generated(c.read_response(), b""))
    assert len(set(seen)) == len(seen), "duplicate generated request ids"


# ---- framing and keep-alive ----------------------------------------------------

@pytest.mark.parametrize("method,path", [
    ("GET", "/health/live"), ("GET", "/health/ready"), ("GET", "/nope"),
    ("DELETE", "/health/live"),
])
def test_content_length_never_chunked(srv, method, path):
    r = get(srv.port, path, method=method)
    assert_framing(r)


def test_keep_alive_survives_errors(srv):
    with RawConn(srv.port) as c:
        for method, path, status in [("GET", "/nope", 404), ("GET", "/health/live", 200),
                                     ("POST", "/health/live", 405), ("GET", "/health/ready", 200),
                                     ("GET", "/", 404), ("GET", "/health/live", 200)]:
            c.send(build_request(method, path))
            r = c.read_response()
            assert r is not None, f"connection closed before {method} {path}"
            assert r.status == status, r
            assert_framing(r)
            assert "close" not in (r.header("connection") or "").lower(), r


def test_http_1_0_request(srv):
    with RawConn(srv.port) as c:
        c.send(build_request("GET", "/health/live", version="HTTP/1.0"))
        r = c.read_response()
        assert r is not None and r.status == 200, r
        assert_framing(r)
        assert c.wait_closed(3), "HTTP/1.0 without keep-alive must be closed after the response"


@pytest.mark.parametrize("method,path", [
    ("GET", "/health/live"), ("HEAD", "/health/live"), ("GET", "/health/ready"),
    ("GET", "/nope"), ("POST", "/health/ready"),
])
def test_no_server_header(srv, method, path):
    r = get(srv.port, path, method=method)
    assert r is not None
    assert_no_server_header(r)


# ---- logs --------------------------------------------------------------

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def _access_line(srv, rid):
    return srv.wait_for_log(lambda o: o.get("request_id") == rid and "status" in o)


def _check_access_line(line, method, path, status, body_len):
    for key in ("time", "level", "msg", "request_id", "method", "path", "status",
                "duration_ms", "bytes"):
        assert key in line, f"access log lacks {key!r}: {line}"
    assert isinstance(line["time"], str) and RFC3339.match(line["time"]), line
    assert line["level"] in LOG_LEVELS, line
    assert isinstance(line["msg"], str) and line["msg"], line
    assert line["method"] == method, line
    assert line["path"] == path, line
    assert type(line["status"]) is int and line["status"] == status, line
    d = line["duration_ms"]
    assert isinstance(d, (int, float)) and not isinstance(d, bool) and 0 <= d < 5000, line
    b = line["bytes"]
    assert type(b) is int and b >= body_len, line


def test_access_log_line_for_success(srv):
    rid = "log-" + uuid.uuid4().hex
    r = get(srv.port, "/health/live", headers=[("X-Request-Id", rid)])
    assert r.status == 200
    line = _access_line(srv, rid)
    _check_access_line(line, "GET", "/health/live", 200, len(r.body))


def test_access_log_line_for_errors_uses_generated_id(srv):
    r = get(srv.port, "/no/such/thing")
    assert r.status == 404
    rid = r.header("x-request-id")
    line = _access_line(srv, rid)
    _check_access_line(line, "GET", "/no/such/thing", 404, len(r.body))
    r = get(srv.port, "/health/live", method="DELETE", headers=[("X-Request-Id", "log-405")])
    line = _access_line(srv, "log-405")
    _check_access_line(line, "DELETE", "/health/live", 405, len(r.body))


def test_one_access_line_per_request(srv):
    rid = "once-" + uuid.uuid4().hex
    get(srv.port, "/health/ready", headers=[("X-Request-Id", rid)])
    _access_line(srv, rid)
    get(srv.port, "/health/live")  # a later request flushes past ours
    matching = [o for o in srv.log_lines() if o.get("request_id") == rid]
    assert len(matching) == 1, matching


def test_stdout_is_json_lines_including_startup(srv):
    lines = srv.log_lines()  # raises on any non-JSON line
    assert lines
    # Start-up lines are JSON too, and they are not request lines.
    assert any("request_id" not in o for o in lines), lines[:5]
    for o in lines:
        assert isinstance(o.get("time"), str) and isinstance(o.get("msg"), str), o
        assert o.get("level") in LOG_LEVELS, o


# ---- h2c is opt-in -----------------------------------------------------------

def _curl_has_http2():
    curl = shutil.which("curl")
    if not curl:
        return False
    out = subprocess.run([curl, "--version"], capture_output=True, text=True, timeout=10).stdout
    return "HTTP2" in out


needs_curl_h2 = pytest.mark.skipif(not _curl_has_http2(), reason="curl without HTTP/2")


def _curl_h2(url, extra=()):
    return subprocess.run(["curl", "--noproxy", "*", "--http2-prior-knowledge", "-s", "-m", "5", *extra, url],
                          capture_output=True, text=True, timeout=15)


@needs_curl_h2
def test_h2c_prior_knowledge_when_enabled(server):
    srv = server(env={"HTTP2": "1"})
    r = _curl_h2(srv.url + "/health/live", ["-o", "/dev/null", "-w", "%{http_version}"])
    assert r.stdout.strip() == "2", r
    r = _curl_h2(srv.url + "/health/live", ["-D", "-", "-o", "/dev/null",
                                            "-H", "X-Request-Id: h2-abc"])
    head = r.stdout.lower()
    assert head.startswith("http/2 200"), r.stdout
    assert "x-request-id: h2-abc" in head, r.stdout
    assert "\nserver:" not in head, r.stdout
    r = _curl_h2(srv.url + "/nope", ["-D", "-"])
    assert r.stdout.lower().startswith("http/2 404"), r.stdout
    assert "application/problem+json" in r.stdout.lower(), r.stdout


@needs_curl_h2
def test_h2c_prior_knowledge_refused_by_default(srv):
    r = _curl_h2(srv.url + "/health/live", ["-o", "/dev/null", "-w", "%{http_version}"])
    assert r.stdout.strip() != "2", r
