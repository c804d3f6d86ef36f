"""Idempotency-Key on POST and PATCH /v1/users, seen from outside: a replay
returns the first answer (status, body, Idempotent-Replayed: true) without a
second write; the same key with another body is a 422; keys belong to the
caller; final client errors are replayed too; a malformed key is a 400."""

import uuid

import pytest

from users_support import (Client, assert_created, assert_problem_response, assert_user,
                           make_token, requires_db, start_users_server, strip_private,
                           unique_email)

pytestmark = requires_db


def key():
    return f"test-{uuid.uuid4()}"


def test_replayed_create_returns_the_first_response_and_writes_once(api):
    k = key()
    body = {"email": unique_email("idem"), "name": "Idempotent"}
    first = api.post("/v1/users", json_body=body, headers={"Idempotency-Key": k})
    user = assert_created(api, first)
    assert first.headers.get("Idempotent-Replayed") is None
    second = api.post("/v1/users", json_body=body, headers={"Idempotency-Key": k})
    assert second.status_code == 201, second.text
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert second.content == first.content
    assert second.headers.get("Location") == first.headers.get("Location")
    # Written once: a plain create with the same email is a duplicate, and
    # the stored user is the replayed one.
    assert_problem_response(api.post("/v1/users", json_body=body), 409)
    assert assert_user(api.get(f"/v1/users/{user['id']}")) == strip_private(user)


def test_same_key_with_another_body_is_422(api):
    k = key()
    assert_created(api, api.post("/v1/users", headers={"Idempotency-Key": k},
                                 json_body={"email": unique_email("idem"), "name": "One"}))
    r = api.post("/v1/users", headers={"Idempotency-Key": k},
                 json_body={"email": unique_email("idem"), "name": "Two"})
    assert_problem_response(r, 422, slug="idempotency-key-reused", need_errors=False)


def test_keys_are_scoped_to_the_caller(api):
    k = key()
    a = make_token(sub=f"alice-{uuid.uuid4()}")
    b = make_token(sub=f"bob-{uuid.uuid4()}")
    ua = assert_created(api, api.post("/v1/users", token=a, headers={"Idempotency-Key": k},
                                      json_body={"email": unique_email("alice"), "name": "A"}))
    rb = api.post("/v1/users", token=b, headers={"Idempotency-Key": k},
                  json_body={"email": unique_email("bob"), "name": "B"})
    ub = assert_created(api, rb)
    assert rb.headers.get("Idempotent-Replayed") is None
    assert ua["id"] != ub["id"]


def test_duplicate_email_answer_is_replayed(api):
    email = unique_email("idem-dup")
    api.create_user(email=email)
    k = key()
    body = {"email": email, "name": "Dup"}
    first = api.post("/v1/users", json_body=body, headers={"Idempotency-Key": k})
    assert_problem_response(first, 409)
    second = api.post("/v1/users", json_body=body, headers={"Idempotency-Key": k})
    assert_problem_response(second, 409)
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert second.json() == first.json()


def test_validation_answer_is_replayed(api):
    k = key()
    body = {"email": "not-an-email", "name": ""}
    first = api.post("/v1/users", json_body=body, headers={"Idempotency-Key": k})
    assert_problem_response(first, 422, fields=["/email", "/name"])
    second = api.post("/v1/users", json_body=body, headers={"Idempotency-Key": k})
    assert_problem_response(second, 422)
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert second.json() == first.json()


def test_replayed_patch_applies_once(api):
    user = api.create_user(name="Before")
    k = key()
    path = f"/v1/users/{user['id']}"
    first = api.patch(path, json_body={"name": "After"}, headers={"Idempotency-Key": k})
    after = assert_user(first)
    etag = first.headers.get("ETag")
    second = api.patch(path, json_body={"name": "After"}, headers={"Idempotency-Key": k})
    assert second.status_code == 200, second.text
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert second.content == first.content
    # Applied once: the version moved exactly one step.
    g = api.get(path)
    assert assert_user(g) == after
    assert g.headers.get("ETag") == etag


@pytest.mark.parametrize("bad", ["", "x" * 256], ids=["empty", "256-chars"])
def test_malformed_key_is_400(api, bad):
    r = api.post("/v1/users", headers={"Idempotency-Key": bad},
                 json_body={"email": unique_email("badkey"), "name": "K"})
    assert_problem_response(r, 400, need_errors=False)


def test_255_char_key_is_accepted(api):
    r = api.post("/v1/users", headers={"Idempotency-Key": "k" * 255},
                 json_body={"email": unique_email("longkey"), "name": "K"})
    assert_created(api, r)
