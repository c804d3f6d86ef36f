"""/v1/users/{id}: GET with ETag and If-None-Match, PATCH with If-Match, DELETE,
and malformed or unknown ids."""

import time

import pytest

from users_support import (Client, assert_etag, assert_problem_response, assert_user,
                           parse_rfc3339_utc, random_uuid7, requires_db, start_users_server,
                           strip_private, unique_email)

pytestmark = requires_db


@pytest.fixture
def user(api):
    return api.create_user(name="Item Test")


def path_of(user_or_id):
    uid = user_or_id["id"] if isinstance(user_or_id, dict) else user_or_id
    return f"/v1/users/{uid}"


# ---- GET one -------------------------------------------------------------------

def test_get_returns_user_etag_and_private_cache_control(api, user):
    r = api.get(path_of(user))
    assert assert_user(r) == strip_private(user)
    assert assert_etag(r) == user["_etag"]
    cc = r.headers.get("Cache-Control", "")
    directives = {d.strip().split("=")[0].lower() for d in cc.split(",")}
    assert "private" in directives, f"Cache-Control: {cc!r}"
    assert "public" not in directives, f"Cache-Control: {cc!r}"


def test_if_none_match_with_current_etag_is_304(api, user):
    etag = assert_etag(api.get(path_of(user)))
    r = api.get(path_of(user), headers={"If-None-Match": etag})
    assert r.status_code == 304, r.text
    assert r.content == b""
    assert r.headers.get("ETag") == etag
    assert r.headers.get("X-Request-Id")


def test_if_none_match_list_containing_current_etag_is_304(api, user):
    etag = assert_etag(api.get(path_of(user)))
    r = api.get(path_of(user), headers={"If-None-Match": f'"999999", {etag}'})
    assert r.status_code == 304, r.text
    assert r.content == b""


@pytest.mark.parametrize("other", ['"999999"', '"0"', '"abc"'])
def test_if_none_match_with_other_etag_is_200(api, user, other):
    r = api.get(path_of(user), headers={"If-None-Match": other})
    assert assert_user(r) == strip_private(user)
    assert_etag(r)


def test_if_none_match_after_update_is_200_with_new_etag(api, user):
    old = user["_etag"]
    p = api.patch(path_of(user), json_body={"name": "Renamed"})
    assert_user(p)
    r = api.get(path_of(user), headers={"If-None-Match": old})
    assert assert_user(r)["name"] == "Renamed"
    assert assert_etag(r) != old


@pytest.mark.parametrize("bad_id", [
    "not-a-uuid", "123", "0190b5a2-7c3e-7d41-9a2b-3c4d5e6f7a8",
    "0190b5a2-7c3e-7d41-9a2b-3c4d5e6f7a8bb",
    "0190b5a27c3e7d419a2b3c4d5e6f7a8b0000", "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz",
    "%00", "0190b5a2-7c3e-7d41-9a2b-3c4d5e6f7a8%20",
], ids=["words", "digits", "short", "long", "no-dashes", "non-hex", "nul", "encoded-space"])
@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_malformed_id_is_400_naming_id(api, method, bad_id):
    kw = {"json_body": {"name": "x"}} if method == "PATCH" else {}
    r = api.request(method, f"/v1/users/{bad_id}", **kw)
    assert_problem_response(r, 400, fields=["id"])


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_unknown_well_formed_id_is_404(api, method):
    kw = {"json_body": {"name": "x"}} if method == "PATCH" else {}
    r = api.request(method, f"/v1/users/{random_uuid7()}", **kw)
    assert_problem_response(r, 404)


def test_unknown_uuid_of_another_version_is_404_not_400(api):
    # Well-formed ids that this server would never issue simply do not exist.
    r = api.get("/v1/users/00000000-0000-4000-8000-000000000000")
    assert_problem_response(r, 404)


# ---- PATCH ---------------------------------------------------------------------

def _patched(api, user, body, **kw):
    time.sleep(0.01)  # a timestamp with millisecond resolution must move
    r = api.patch(path_of(user), json_body=body, **kw)
    new = assert_user(r)
    etag = assert_etag(r)
    assert new["id"] == user["id"]
    assert new["createdAt"] == user["createdAt"]
    assert parse_rfc3339_utc(new["updatedAt"]) > parse_rfc3339_utc(user["updatedAt"]), (user, new)
    assert parse_rfc3339_utc(new["updatedAt"]) >= parse_rfc3339_utc(new["createdAt"])
    assert etag != user["_etag"], "ETag did not change on update"
    # What PATCH returned is what is stored now.
    g = api.get(path_of(user))
    assert assert_user(g) == new
    assert g.headers.get("ETag") == etag
    new["_etag"] = etag
    return new


def test_patch_name_only(api, user):
    new = _patched(api, user, {"name": "New Name"})
    assert new["name"] == "New Name" and new["email"] == user["email"]


def test_patch_email_only_lower_cases_it(api, user):
    email = unique_email("Patched").replace("@example.com", "@Example.ORG")
    new = _patched(api, user, {"email": email})
    assert new["email"] == email.lower() and new["name"] == user["name"]


def test_patch_both(api, user):
    email = unique_email("both")
    new = _patched(api, user, {"email": email, "name": "Both Changed"})
    assert new["email"] == email and new["name"] == "Both Changed"


def test_successive_patches_keep_changing_etag_and_updated_at(api, user):
    seen = {user["_etag"]}
    cur = user
    for i in range(3):
        cur = _patched(api, cur, {"name": f"Step {i}"})
        assert cur["_etag"] not in seen
        seen.add(cur["_etag"])


def test_patch_name_accepts_100_multibyte_code_points(api, user):
    new = _patched(api, user, {"name": "\U0001F600" * 100})
    assert new["name"] == "\U0001F600" * 100


def test_patch_with_current_if_match_is_200(api, user):
    new = _patched(api, user, {"name": "Conditional"}, headers={"If-Match": user["_etag"]})
    assert new["name"] == "Conditional"


def test_patch_with_stale_if_match_is_412_and_changes_nothing(api, user):
    stale = user["_etag"]
    current = _patched(api, user, {"name": "First Writer"})
    r = api.patch(path_of(user), json_body={"name": "Lost Update"}, headers={"If-Match": stale})
    assert_problem_response(r, 412)
    g = api.get(path_of(user))
    assert assert_user(g)["name"] == "First Writer"
    assert g.headers.get("ETag") == current["_etag"]


def test_patch_with_unknown_if_match_is_412(api, user):
    r = api.patch(path_of(user), json_body={"name": "Nope"}, headers={"If-Match": '"999999"'})
    assert_problem_response(r, 412)


def test_patch_with_if_match_spelled_with_leading_zeros_is_412(api, user):
    # Strong comparison is character by character (RFC 9110 8.8.3.2): "01"
    # is not the ETag "1", though both spell the same version number.
    padded = '"0' + user["_etag"][1:]
    r = api.patch(path_of(user), json_body={"name": "Padded"}, headers={"If-Match": padded})
    assert_problem_response(r, 412)
    g = api.get(path_of(user))
    assert g.headers.get("ETag") == user["_etag"]


def test_patch_to_another_users_email_is_409(api, user):
    other = api.create_user()
    r = api.patch(path_of(user), json_body={"email": other["email"].upper()})
    assert_problem_response(r, 409)
    assert assert_user(api.get(path_of(user)))["email"] == user["email"]


def test_patch_to_own_email_in_other_case_is_200(api, user):
    new = _patched(api, user, {"email": user["email"].upper(), "name": "Same Email"})
    assert new["email"] == user["email"]


@pytest.mark.parametrize("body,fields", [
    ({}, []),
    ({"admin": True}, ["/admin"]),
    ({"name": "ok", "role": "admin"}, ["/role"]),
    ({"name": ""}, ["/name"]),
    ({"name": "a" * 101}, ["/name"]),
    ({"name": None}, ["/name"]),
    ({"name": 5}, ["/name"]),
    ({"name": "nul\u0000"}, ["/name"]),
    ({"email": "no-at"}, ["/email"]),
    ({"email": None}, ["/email"]),
    ({"email": "a@b..c", "name": ""}, ["/email", "/name"]),
    ({"id": "0190b5a2-7c3e-7d41-9a2b-3c4d5e6f7a8b"}, ["/id"]),
    ({"createdAt": "2020-01-01T00:00:00Z"}, ["/createdAt"]),
], ids=["empty", "unknown-only", "unknown-extra", "name-empty", "name-101", "name-null",
        "name-number", "name-nul", "email-bad", "email-null", "two-errors", "id", "createdAt"])
def test_patch_rule_violation_is_422_and_changes_nothing(api, user, body, fields):
    r = api.patch(path_of(user), json_body=body)
    assert_problem_response(r, 422, fields=fields)
    g = api.get(path_of(user))
    assert assert_user(g) == strip_private(user)
    assert g.headers.get("ETag") == user["_etag"]


@pytest.mark.parametrize("data", [b"{", b"", b"{\"name\":}"],
                         ids=["open-brace", "empty", "no-value"])
def test_patch_malformed_json_is_400(api, user, data):
    r = api.patch(path_of(user), data=data, content_type="application/json")
    assert_problem_response(r, 400)


def test_patch_without_content_type_is_415(api, user):
    r = api.patch(path_of(user), data=b'{"name":"x"}', content_type=None)
    assert_problem_response(r, 415)


def test_patch_text_plain_is_415(api, user):
    r = api.patch(path_of(user), data=b'{"name":"x"}', content_type="text/plain")
    assert_problem_response(r, 415)


# ---- DELETE --------------------------------------------------------------------

def test_delete_is_204_then_gone(api, user):
    r = api.delete(path_of(user))
    assert r.status_code == 204, r.text
    assert r.content == b""
    assert r.headers.get("X-Request-Id")
    assert_problem_response(api.get(path_of(user)), 404)
    assert_problem_response(api.delete(path_of(user)), 404)
    assert_problem_response(api.patch(path_of(user), json_body={"name": "Ghost"}), 404)


def test_deleted_email_can_be_used_again(api, user):
    assert api.delete(path_of(user)).status_code == 204
    again = api.create_user(email=user["email"])
    assert again["id"] != user["id"]


def test_delete_leaves_other_users_alone(api, user):
    other = api.create_user()
    assert api.delete(path_of(user)).status_code == 204
    assert assert_user(api.get(path_of(other))) == strip_private(other)
