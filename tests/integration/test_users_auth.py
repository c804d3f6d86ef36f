"""Authentication and authorization on /v1: bearer JWTs (HS256 with the
server's secret), exp/nbf, algorithm pinning, scopes per method, and the
order of checks (token before body). Also unknown /v1 routes, wrong methods
and the rate-limit headers that every /v1 response carries."""

import pytest

from users_support import (BAD_AUTHORIZATIONS, RATE_LIMIT_MAX, Client, assert_created,
                           assert_page, assert_problem_response, assert_user, make_token,
                           random_uuid7, requires_db, start_users_server, token_read_only,
                           token_without_scope, token_write_only, unique_email)

pytestmark = requires_db


@pytest.fixture(scope="module")
def existing(api):
    return api.create_user(name="Auth Target")


def _routes(uid):
    """Every /v1 operation, with a body that would be valid."""
    return [
        ("POST", "/v1/users", {"email": unique_email("auth"), "name": "Auth"}),
        ("GET", "/v1/users", None),
        ("GET", f"/v1/users/{uid}", None),
        ("PATCH", f"/v1/users/{uid}", {"name": "Auth Patched"}),
        ("DELETE", f"/v1/users/{uid}", None),
    ]


ROUTE_IDS = ["POST-users", "GET-users", "GET-user", "PATCH-user", "DELETE-user"]


def _call(api, method, path, body, token=None, headers=None):
    kw = {"json_body": body} if body is not None else {}
    return api.request(method, path, token=token, headers=headers, **kw)


def assert_401(r):
    assert_problem_response(r, 401)
    challenge = r.headers.get("WWW-Authenticate", "")
    assert challenge.startswith("Bearer"), f"WWW-Authenticate: {challenge!r}"


@pytest.mark.parametrize("idx", range(5), ids=ROUTE_IDS)
def test_no_token_is_401_with_bearer_challenge(api, existing, idx):
    method, path, body = _routes(existing["id"])[idx]
    assert_401(_call(api, method, path, body, token=None))
    # Nothing happened: the user is still there, unchanged.
    assert assert_user(api.get(f"/v1/users/{existing['id']}"))["name"] == "Auth Target"


@pytest.mark.parametrize("kind", list(BAD_AUTHORIZATIONS))
@pytest.mark.parametrize("idx", [0, 1, 3], ids=["POST-users", "GET-users", "PATCH-user"])
def test_invalid_credentials_are_401(api, existing, kind, idx):
    method, path, body = _routes(existing["id"])[idx]
    auth = BAD_AUTHORIZATIONS[kind]()
    r = _call(api, method, path, body, headers={"Authorization": auth})
    assert_401(r)


def test_lower_case_bearer_scheme_is_accepted(api):
    # RFC 9110 section 11.1: the auth scheme is case-insensitive.
    r = api.get("/v1/users", token=None, headers={"Authorization": "bearer " + make_token()})
    assert_page(r)


def test_read_only_token_can_read_but_not_write(api, existing):
    tok = token_read_only()
    uid = existing["id"]
    assert_page(api.get("/v1/users", token=tok))
    assert_user(api.get(f"/v1/users/{uid}", token=tok))
    for method, path, body in _routes(uid):
        if method != "GET":
            assert_problem_response(_call(api, method, path, body, token=tok), 403)
    assert assert_user(api.get(f"/v1/users/{uid}"))["name"] == "Auth Target"


def test_write_only_token_can_write_but_not_read(api):
    tok = token_write_only()
    user = assert_created(api, api.post("/v1/users", token=tok,
                                        json_body={"email": unique_email("wo"), "name": "W"}))
    assert_problem_response(api.get("/v1/users", token=tok), 403)
    assert_problem_response(api.get(f"/v1/users/{user['id']}", token=tok), 403)
    assert_user(api.patch(f"/v1/users/{user['id']}", token=tok, json_body={"name": "W2"}))
    r = api.delete(f"/v1/users/{user['id']}", token=tok)
    assert r.status_code == 204, r.text


@pytest.mark.parametrize("scope", [None, "", "users", "users:admin", "users:reader users:writer",
                                   "USERS:READ USERS:WRITE", "users:read,users:write",
                                   "openid profile"],
                         ids=["no-claim", "empty", "prefix", "other", "longer-names", "upper-case",
                              "comma-separated", "unrelated"])
def test_token_without_the_needed_scope_is_403(api, existing, scope):
    tok = token_without_scope() if scope is None else make_token(scope=scope)
    uid = existing["id"]
    assert_problem_response(api.get("/v1/users", token=tok), 403)
    assert_problem_response(api.get(f"/v1/users/{uid}", token=tok), 403)
    assert_problem_response(api.post("/v1/users", token=tok,
                                     json_body={"email": unique_email("sc"), "name": "S"}), 403)
    assert_problem_response(api.delete(f"/v1/users/{uid}", token=tok), 403)


def test_403_challenge_names_the_missing_scope(api):
    # RFC 6750 section 3.1, as documented in the OpenAPI Forbidden response.
    r = api.get("/v1/users", token=token_write_only())
    assert_problem_response(r, 403)
    challenge = r.headers.get("WWW-Authenticate", "")
    assert challenge.startswith("Bearer"), f"WWW-Authenticate: {challenge!r}"
    assert "insufficient_scope" in challenge and "users:read" in challenge, challenge


def test_scope_order_and_extra_scopes_do_not_matter(api):
    tok = make_token(scope="openid users:write profile users:read")
    assert_page(api.get("/v1/users", token=tok))
    api.create_user(token=tok)


def test_forbidden_is_checked_before_existence(api):
    r = api.get(f"/v1/users/{random_uuid7()}", token=token_write_only())
    assert_problem_response(r, 403)


# ---- authentication comes before the body ------------------------------------------

@pytest.mark.parametrize("data,ctype", [
    (b"{", "application/json"),
    (b"", "application/json"),
    (b'{"email":"a@b.co","name":"x"}', "text/plain"),
    (b'{"email":"a@b.co","name":"x"}', None),
    (b'{"email":5}', "application/json"),
], ids=["malformed-json", "empty-body", "text-plain", "no-content-type", "invalid-member"])
def test_post_without_token_is_401_whatever_the_body(api, data, ctype):
    r = api.post("/v1/users", data=data, content_type=ctype, token=None)
    assert_401(r)


def test_patch_with_bad_token_and_malformed_json_is_401(api, existing):
    r = api.patch(f"/v1/users/{existing['id']}", data=b"{", content_type="application/json",
                  token=None, headers={"Authorization": BAD_AUTHORIZATIONS["expired"]()})
    assert_401(r)


def test_read_only_token_with_malformed_json_is_403(api):
    r = api.post("/v1/users", data=b"{", content_type="application/json", token=token_read_only())
    assert_problem_response(r, 403)


# ---- routing ------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/v1/nope", "/v1/user", "/v1/users/extra/segment",
                                  f"/v1/users/{random_uuid7()}/friends", "/v1", "/v2/users"])
def test_unknown_v1_route_is_404(api, path):
    assert_problem_response(api.get(path), 404)


@pytest.mark.parametrize("method,path,allowed", [
    ("PUT", "/v1/users/{id}", {"GET", "PATCH", "DELETE"}),
    ("POST", "/v1/users/{id}", {"GET", "PATCH", "DELETE"}),
    ("PUT", "/v1/users", {"GET", "POST"}),
    ("DELETE", "/v1/users", {"GET", "POST"}),
    ("PATCH", "/v1/users", {"GET", "POST"}),
])
def test_wrong_method_is_405_with_allow(api, existing, method, path, allowed):
    r = api.request(method, path.format(id=existing["id"]), json_body={"name": "x"})
    assert_problem_response(r, 405)
    allow = {m.strip().upper() for m in r.headers.get("Allow", "").split(",") if m.strip()}
    assert allowed <= allow, f"Allow: {r.headers.get('Allow')!r}"
    assert method not in allow, f"Allow: {r.headers.get('Allow')!r}"


# ---- rate-limit headers on every /v1 response -------------------------------------------

def test_rate_limit_headers_on_every_v1_response(api, existing):
    uid = existing["id"]
    responses = {
        "201": api.post("/v1/users", json_body={"email": unique_email("rl"), "name": "RL"}),
        "200": api.get(f"/v1/users/{uid}"),
        "401": api.get("/v1/users", token=None),
        "403": api.get("/v1/users", token=token_write_only()),
        "404": api.get(f"/v1/users/{random_uuid7()}"),
        "405": api.request("PUT", f"/v1/users/{uid}", json_body={"name": "x"}),
        "422": api.post("/v1/users", json_body={"email": "bad", "name": "x"}),
    }
    for status, r in responses.items():
        assert str(r.status_code) == status, (status, r.status_code, r.text)
        for h in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"):
            v = r.headers.get(h)
            assert v is not None and v.isdigit(), f"{status}: {h}={v!r}"
        assert int(r.headers["X-RateLimit-Limit"]) == RATE_LIMIT_MAX, r.headers
        assert int(r.headers["X-RateLimit-Remaining"]) < RATE_LIMIT_MAX, r.headers
