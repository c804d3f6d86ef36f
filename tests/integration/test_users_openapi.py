"""The OpenAPI document (openapi/openapi.json) as the test suite relies on it:
its schemas are valid JSON Schema 2020-12, its examples match them, every
/v1 operation documents what the contract promises, and the running server
serves the same document at /openapi.json."""

import json

import pytest
from jsonschema import Draft202012Validator

from harness import media_type
from users_support import (OPENAPI, OPENAPI_PATH, Client, assert_json_response, requires_db,
                           schema_validator, start_users_server)

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
PROBLEM_SLUGS = {
    "not-found", "method-not-allowed", "bad-request", "validation-failed", "unauthorized",
    "forbidden", "conflict", "precondition-failed", "unsupported-media-type", "body-too-large",
    "quota-exceeded", "overloaded", "unavailable", "timeout", "idempotency-key-reused",
    "idempotency-key-in-flight", "not-ready", "shutting-down", "internal",
}


def _operations():
    for path, item in OPENAPI["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def _resolve(obj):
    while isinstance(obj, dict) and "$ref" in obj:
        node = OPENAPI
        for part in obj["$ref"].lstrip("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        obj = node
    return obj


def test_document_is_two_space_indented_openapi_3_1():
    text = OPENAPI_PATH.read_text(encoding="utf-8")
    assert OPENAPI["openapi"] == "3.1.0"
    assert text == json.dumps(OPENAPI, indent=2, ensure_ascii=False) + "\n", \
        "openapi.json is not in canonical 2-space JSON form"


@pytest.mark.parametrize("name", sorted(OPENAPI["components"]["schemas"]))
def test_component_schema_is_valid_json_schema(name):
    Draft202012Validator.check_schema(OPENAPI["components"]["schemas"][name])
    schema_validator(name)  # its $refs resolve


def test_media_type_examples_match_their_schemas():
    checked = 0
    for path, method, op in _operations():
        for status, resp in op["responses"].items():
            for mt, content in _resolve(resp).get("content", {}).items():
                schema = content.get("schema", {})
                if "example" in content and "$ref" in schema:
                    name = schema["$ref"].rsplit("/", 1)[-1]
                    errors = list(schema_validator(name).iter_errors(content["example"]))
                    assert not errors, f"{method.upper()} {path} {status} {mt}: {errors[0].message}"
                    checked += 1
    assert checked >= 10


def test_problem_types_are_the_documented_slugs():
    enum = OPENAPI["components"]["schemas"]["Problem"]["properties"]["type"]["enum"]
    slugs = {t.removeprefix("/problems/") for t in enum}
    assert all(t.startswith("/problems/") for t in enum)
    assert PROBLEM_SLUGS <= slugs, PROBLEM_SLUGS - slugs


V1_OPERATIONS = [(p, m) for p, m, _ in _operations() if p.startswith("/v1/")]


@pytest.mark.parametrize("path,method", V1_OPERATIONS)
def test_v1_operations_document_auth_rate_limits_and_errors(path, method):
    op = OPENAPI["paths"][path][method]
    scope = "users:read" if method == "get" else "users:write"
    assert {"bearerAuth": [scope]} in op["security"], op["security"]
    for status in ("400", "401", "403", "405", "429", "503", "504"):
        assert status in op["responses"], f"{method.upper()} {path} lacks {status}"
    assert "WWW-Authenticate" in _resolve(op["responses"]["401"])["headers"]
    assert "Retry-After" in _resolve(op["responses"]["429"])["headers"]
    assert "Allow" in _resolve(op["responses"]["405"])["headers"]
    for status, resp in op["responses"].items():
        headers = _resolve(resp).get("headers", {})
        assert "X-Request-Id" in headers, f"{method.upper()} {path} {status}"
        if status != "413" and status != "500":
            for h in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"):
                assert h in headers, f"{method.upper()} {path} {status} lacks {h}"
    if method in ("post", "patch"):
        names = {_resolve(p)["name"] for p in op.get("parameters", [])}
        assert "Idempotency-Key" in names
        for status in ("409", "413", "415", "422"):
            assert status in op["responses"], f"{method.upper()} {path} lacks {status}"


def test_conditional_requests_are_documented():
    get_one = OPENAPI["paths"]["/v1/users/{id}"]["get"]
    patch = OPENAPI["paths"]["/v1/users/{id}"]["patch"]
    assert "304" in get_one["responses"] and "412" in patch["responses"]
    assert {"ETag", "Cache-Control"} <= set(get_one["responses"]["200"]["headers"])
    create = OPENAPI["paths"]["/v1/users"]["post"]["responses"]["201"]["headers"]
    assert {"Location", "ETag"} <= set(create)


@requires_db
def test_server_serves_this_document(server):
    srv = start_users_server(server)
    c = Client(srv, token=None)
    try:
        r = c.get("/openapi.json")
        assert_json_response(r, 200)
        assert r.json() == OPENAPI, "GET /openapi.json differs from openapi/openapi.json"
        assert media_type(r.headers.get("Content-Type")) == "application/json"
    finally:
        c.close()
