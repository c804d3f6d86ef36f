"""POST /v1/users: creation, the shape of what comes back, and every way a body
can be refused (400 syntax, 422 rules, 409 duplicate, 413, 415)."""

import json
import uuid

import pytest

from harness import RawConn, build_request, media_type
from users_support import (Client, assert_created, assert_problem_response, assert_status_in,
                           assert_user, bearer, requires_db, start_users_server, strip_private,
                           unique_email, validate_schema)

pytestmark = requires_db


def post_raw(api, data, content_type="application/json", **kw):
    return api.post("/v1/users", data=data, content_type=content_type, **kw)


# ---- success -------------------------------------------------------------------

def test_create_returns_201_location_etag_and_user(api):
    email = unique_email("create")
    r = api.post("/v1/users", json_body={"email": email, "name": "Ada Lovelace"})
    user = assert_created(api, r)
    assert user["email"] == email
    assert user["name"] == "Ada Lovelace"
    assert user["createdAt"] == user["updatedAt"]
    # The created user is what GET returns, with the same version.
    g = api.get(f"/v1/users/{user['id']}")
    assert assert_user(g) == strip_private(user)
    assert g.headers.get("ETag") == user["_etag"]


def test_create_lower_cases_email(api):
    tag = uuid.uuid4().hex
    user = api.create_user(email=f"Ada-{tag}@Example.COM")
    assert user["email"] == f"ada-{tag}@example.com"
    assert api.get(f"/v1/users/{user['id']}").json()["email"] == f"ada-{tag}@example.com"


def test_ids_are_distinct_uuid_v7_in_creation_order(api):
    users = api.create_users(5, prefix="order")
    ids = [u["id"] for u in users]
    assert len(set(ids)) == 5
    assert ids == sorted(ids), f"UUID v7 ids not in creation order: {ids}"


@pytest.mark.parametrize("email", ["Dup-{t}@Example.com", "dup-{t}@example.com",
                                   "DUP-{t}@EXAMPLE.COM"])
def test_duplicate_email_is_409_case_insensitively(api, email):
    tag = uuid.uuid4().hex
    api.create_user(email=f"dup-{tag}@example.com")
    r = api.post("/v1/users", json_body={"email": email.format(t=tag), "name": "Again"})
    assert_problem_response(r, 409)


@pytest.mark.parametrize("name", [
    "a",
    "a" * 100,
    "é" * 100,                 # 2 bytes each in UTF-8: 200 bytes, 100 code points
    "\U0001F600" * 100,        # 4 bytes each: 400 bytes, 100 code points
    "中文名字" * 25,
    "O'Brien-Smith Jr.",
], ids=["1", "100-ascii", "100-e-acute", "100-emoji", "100-cjk", "punctuation"])
def test_name_limit_counts_code_points_not_bytes(api, name):
    user = api.create_user(name=name)
    assert user["name"] == name
    assert api.get(f"/v1/users/{user['id']}").json()["name"] == name


def test_name_sent_as_escaped_surrogate_pairs_is_accepted(api):
    # json.dumps with ensure_ascii escapes the emoji as \ud83d\ude00 pairs:
    # still 100 code points once decoded.
    name = "\U0001F600" * 100
    body = json.dumps({"email": unique_email("escaped"), "name": name}).encode("ascii")
    user = assert_created(api, post_raw(api, body))
    assert user["name"] == name


def test_charset_parameter_is_accepted(api):
    body = json.dumps({"email": unique_email("charset"), "name": "Charset"}).encode()
    assert_created(api, post_raw(api, body, content_type="application/json; charset=utf-8"))


# ---- 422: well-formed JSON that breaks the rules --------------------------------

# The last one is 255 characters: over the 254 that the schema allows.
BAD_EMAILS = ["no-at", "a@", "@b.c", "a b@c.d", "a@b..c", "", "a@@b.c", "x" * 250 + "@b.co"]


@pytest.mark.parametrize("email", BAD_EMAILS, ids=range(len(BAD_EMAILS)))
def test_bad_email_is_422(api, email):
    r = api.post("/v1/users", json_body={"email": email, "name": "Bad Email"})
    assert_problem_response(r, 422, fields=["/email"])


@pytest.mark.parametrize("body,field", [
    ({"name": "No Email"}, "/email"),
    ({"email": "missing-name@example.com"}, "/name"),
    ({"email": 42, "name": "Number Email"}, "/email"),
    ({"email": None, "name": "Null Email"}, "/email"),
    ({"email": ["a@b.co"], "name": "Array Email"}, "/email"),
    ({"email": "wrong-name-type@example.com", "name": 42}, "/name"),
    ({"email": "null-name@example.com", "name": None}, "/name"),
    ({"email": "bool-name@example.com", "name": True}, "/name"),
    ({"email": "obj-name@example.com", "name": {"first": "A"}}, "/name"),
    ({"email": "empty-name@example.com", "name": ""}, "/name"),
    ({"email": "long-name@example.com", "name": "a" * 101}, "/name"),
    ({"email": "long-mb-name@example.com", "name": "é" * 101}, "/name"),
    ({"email": "long-emoji-name@example.com", "name": "\U0001F600" * 101}, "/name"),
    ({"email": "nul-name@example.com", "name": "a\u0000b"}, "/name"),
    ({"email": "unknown@example.com", "name": "Unknown", "admin": True}, "/admin"),
    ({"email": "id@example.com", "name": "Client Id",
      "id": "0190b5a2-7c3e-7d41-9a2b-3c4d5e6f7a8b"}, "/id"),
], ids=["missing-email", "missing-name", "email-number", "email-null", "email-array",
        "name-number", "name-null", "name-bool", "name-object", "name-empty", "name-101",
        "name-101-e-acute", "name-101-emoji", "name-nul", "unknown-member", "client-id"])
def test_rule_violation_is_422_naming_the_field(api, body, field):
    body = {k: (unique_email("v") if isinstance(v, str) and v.endswith("@example.com") else v)
            for k, v in body.items()}
    r = api.post("/v1/users", json_body=body)
    assert_problem_response(r, 422, fields=[field])


def test_every_error_is_reported_at_once(api):
    r = api.post("/v1/users", json_body={"email": "no-at", "name": ""})
    body = assert_problem_response(r, 422, fields=["/email", "/name"])
    assert len(body["errors"]) >= 2


def test_unknown_member_and_bad_field_are_reported_together(api):
    r = api.post("/v1/users", json_body={"email": 7, "name": "x", "role": "admin"})
    assert_problem_response(r, 422, fields=["/email", "/role"])


def test_body_object_with_no_members_is_422(api):
    r = api.post("/v1/users", json_body={})
    assert_problem_response(r, 422, fields=["/email", "/name"])


def test_invalid_utf8_is_rejected_as_a_client_error(api):
    r = post_raw(api, b'{"email":"a@b.co","name":"\xff"}')
    assert_status_in(r, (400, 422))
    assert_problem_response(r, r.status_code)


def test_invalid_utf8_in_email_is_rejected(api):
    r = post_raw(api, b'{"email":"\xc3\x28@b.co","name":"ok"}')
    assert_status_in(r, (400, 422))
    assert_problem_response(r, r.status_code)


# ---- 400: not JSON, or not a JSON object --------------------------------------

@pytest.mark.parametrize("data", [
    b"{", b"{\"email\":", b"not json", b"{\"email\":\"a@b.co\",\"name\":\"x\",}",
    b"\"just a string\"x",
    b"{\"email\":\"a@b.co\" \"name\":\"x\"}", b"{'email':'a@b.co'}",
], ids=["open-brace", "truncated", "bare-words", "trailing-comma", "trailing-garbage",
        "missing-comma", "single-quotes"])
def test_malformed_json_is_400(api, data):
    assert_problem_response(post_raw(api, data), 400)


def test_empty_body_is_400(api):
    assert_problem_response(post_raw(api, b""), 400)


@pytest.mark.parametrize("data", [b"[]", b"[{\"email\":\"a@b.co\",\"name\":\"x\"}]", b"\"text\"",
                                  b"42", b"null", b"true"])
def test_json_that_is_not_an_object_is_400_or_422(api, data):
    r = post_raw(api, data)
    assert_status_in(r, (400, 422))
    assert_problem_response(r, r.status_code)


# ---- 415 / 413 -----------------------------------------------------------------

@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded",
                                   "multipart/form-data; boundary=x", "application/xml",
                                   "application/jsonx", "json"])
def test_wrong_content_type_is_415(api, ctype):
    body = json.dumps({"email": unique_email("ctype"), "name": "Type"}).encode()
    assert_problem_response(post_raw(api, body, content_type=ctype), 415)


def test_missing_content_type_with_body_is_415(api):
    body = json.dumps({"email": unique_email("notype"), "name": "No Type"}).encode()
    r = post_raw(api, body, content_type=None)
    assert "Content-Type" not in r.request.headers
    assert_problem_response(r, 415)


def test_body_over_one_mib_is_413(api):
    name = "a" * (1024 * 1024)
    body = json.dumps({"email": unique_email("big"), "name": name}).encode()
    assert len(body) > 1024 * 1024
    # A raw socket: the server may answer 413 before it has read the body, so
    # a failed send must not hide the answer that is already on its way.
    with RawConn(api.srv.port, timeout=10) as c:
        try:
            c.send(build_request("POST", "/v1/users", body=body, headers=[
                ("Authorization", bearer(api.token)), ("Content-Type", "application/json")]))
        except (BrokenPipeError, ConnectionResetError):
            pass
        r = c.read_response()
    assert r is not None, "connection closed without a response"
    assert r.status == 413, r
    assert media_type(r.header("content-type")) == "application/problem+json", r
    assert r.header("x-request-id"), r
    problem = r.json()
    validate_schema("Problem", problem)
    assert problem["status"] == 413 and problem["type"] == "/problems/body-too-large", problem
